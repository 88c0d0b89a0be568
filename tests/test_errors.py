"""Issue #19, items 2 and 4: what a newcomer sees for a mini checkpoint without --scale and for
the usual mistakes: one line naming the file and the fix, the traceback only with --verbose."""
import pytest
import torch
from mmseg.registry import MODELS

import benchmarks.test as bench_test
import benchmarks.train as bench_train
from aeroseg import infer
from aeroseg.apis import _load_image, init_model
from aeroseg.config import ScaleError, load_config
from aeroseg.datasets.splits import ClassListError, resolve_class_names
from aeroseg.hooks import clear_outside_weights
from aeroseg.utils.checkpoint import CheckpointError

CONFIG = 'configs/catseg/catseg_vitb16_isaid.py'


@pytest.fixture(scope='module')
def mini_ckpt(tmp_path_factory):
    """A mini CAT-Seg ``final_weights.pth`` as benchmarks.train writes it (meta with the scale)."""
    cfg = load_config(CONFIG, scale='mini', data_root='unused')
    clear_outside_weights(cfg.model)
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('ckpt') / 'final_weights.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'config': CONFIG, 'config_hash': 'x', 'iter': 1, 'scale': 'mini'}}, path)
    return path


@pytest.fixture()
def truncated(mini_ckpt, tmp_path):
    p = tmp_path / 'cut.pth'
    data = mini_ckpt.read_bytes()
    p.write_bytes(data[:len(data) // 2])
    return p


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'Traceback' not in err, err
    return err


def test_mini_checkpoint_loads_without_scale_and_names_the_contradiction(mini_ckpt):
    model = init_model(CONFIG, str(mini_ckpt))             # no scale: the checkpoint's (mini)
    assert model.cfg.scale == 'mini'
    with pytest.raises(ScaleError, match="this checkpoint is mini scale: pass scale='mini'"):
        init_model(CONFIG, str(mini_ckpt), scale='full')


def test_benchmarks_test_reads_the_checkpoint_scale(mini_ckpt, monkeypatch, capsys):
    seen = {}

    def stop(args):
        seen['scale'] = args.scale
        raise SystemExit(0)
    monkeypatch.setattr(bench_test, 'prepare_run', stop)
    with pytest.raises(SystemExit):
        bench_test.main([CONFIG, str(mini_ckpt)])
    assert seen['scale'] == 'mini'
    assert bench_test.main([CONFIG, str(mini_ckpt), '--scale', 'full']) == 2
    assert _one_line(capsys) == (f'benchmarks.test: error: {mini_ckpt}: this checkpoint is mini '
                                 f'scale: pass --scale mini (--verbose for the traceback)')


def test_truncated_checkpoint_is_one_line_naming_the_file(truncated, capsys):
    assert bench_test.main([CONFIG, str(truncated), '--scale', 'mini']) == 2
    err = _one_line(capsys)
    assert str(truncated) in err and 'truncated or corrupt' in err and 're-save' not in err
    with pytest.raises(CheckpointError, match='truncated or corrupt') as e:
        init_model(CONFIG, str(truncated), scale='mini')
    assert 're-save' not in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(CheckpointError):                   # --verbose: the real exception
        bench_test.main([CONFIG, str(truncated), '--verbose'])


def test_missing_config_is_one_line(tmp_path, capsys):
    nope = str(tmp_path / 'nope.py')
    for main in (bench_train.main, bench_test.main):
        assert main([nope]) == 2
        err = _one_line(capsys)
        assert nope in err and 'config not found' in err
    assert infer.main([nope, '--images', 'tests/data/real_samples/neon/OSBS_029.tif',
                       '--classes', 'a,b', '--out', str(tmp_path)]) == 2
    assert nope in _one_line(capsys)


def test_checkpoint_folder_is_named(tmp_path, capsys):
    assert bench_test.main([CONFIG, str(tmp_path)]) == 2
    assert f'{tmp_path}' in _one_line(capsys)


def test_class_list_as_one_string_is_an_error():
    with pytest.raises(ClassListError, match=r"single string 'building'.*pass \['building'\]"):
        resolve_class_names('building')
    assert resolve_class_names(['building', 'oil tank 2']) == ('building', 'oil tank 2')  # free text


def test_set_vocabulary_rejects_one_string(mini_ckpt):
    model = init_model(CONFIG, str(mini_ckpt))
    with pytest.raises(ClassListError):
        model.set_vocabulary('abc')


def test_directory_as_image_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match=f'{tmp_path}.*is a folder, not an image'):
        _load_image(str(tmp_path))


class _FakeRunner:
    """Stands in for mmengine's Runner: the built model, and a test() that records the call."""

    def __init__(self, model):
        self.model, self.tested = model, False

    def test(self):
        self.tested = True
        return {'mIoU': 1.0}


def _run_test_on(ckpt, tmp_path, monkeypatch):
    cfg = load_config(CONFIG, scale='mini', data_root='unused')
    clear_outside_weights(cfg.model)
    runner = _FakeRunner(MODELS.build(cfg.model))
    monkeypatch.setattr(bench_test, 'build_runner', lambda cfg: runner)
    rc = bench_test.main([CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'w'),
                          '--data-root', str(tmp_path)])
    return rc, runner


def test_benchmarks_test_loads_every_key_of_the_checkpoint(mini_ckpt, tmp_path, monkeypatch):
    rc, runner = _run_test_on(mini_ckpt, tmp_path, monkeypatch)
    assert rc == 0 and runner.tested
    want = torch.load(mini_ckpt, weights_only=True)['state_dict']
    got = runner.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_benchmarks_test_refuses_a_checkpoint_that_does_not_fit(mini_ckpt, tmp_path, monkeypatch,
                                                               capsys):
    """mmengine's load_from only warns on missing / unexpected keys and tests a partly random
    model; benchmarks.test stops with one line naming the file and the keys instead."""
    obj = torch.load(mini_ckpt, weights_only=True)
    dropped = sorted(obj['state_dict'])[-1]
    del obj['state_dict'][dropped]
    obj['state_dict']['head.not_in_model'] = torch.zeros(1)
    bad = tmp_path / 'other_model.pth'
    torch.save(obj, bad)
    rc, runner = _run_test_on(bad, tmp_path, monkeypatch)
    err = _one_line(capsys)
    assert rc == 2 and not runner.tested
    assert str(bad) in err and f'missing in file (1): {dropped}' in err
    assert 'unexpected in file (1): head.not_in_model' in err


def test_train_only_weights_of_another_vocabulary_size_are_left_and_the_rest_is_strict(tmp_path):
    """A Table 9 cross test: AerOSeg's back-projection (training loss only) is sized by the source's
    seen classes; it keeps the model's weights, every other key loads; a mismatch elsewhere fails."""
    import torch
    from torch import nn
    from aeroseg.utils.checkpoint import CheckpointError, load_trained_weights

    class M(nn.Module):
        train_only_prefixes = ('back_projection.',)

        def __init__(self, n):
            super().__init__()
            self.head = nn.Linear(4, 4)
            self.back_projection = nn.Linear(n, 2)

    src, dst = M(9), M(10)
    torch.save({'state_dict': src.state_dict()}, tmp_path / 'w.pth')
    before = dst.back_projection.weight.clone()
    load_trained_weights(dst, tmp_path / 'w.pth', 'x.py')
    assert torch.equal(dst.head.weight, src.head.weight)
    assert torch.equal(dst.back_projection.weight, before)
    bad = M(9)
    bad.head = nn.Linear(4, 5)
    with pytest.raises(CheckpointError, match='head.weight'):
        load_trained_weights(bad, tmp_path / 'w.pth', 'x.py')

"""benchmarks.process_cost: the commands it times are the runner's, cut short; the arithmetic; the
test subset really is that many images; failures name the command and keep the speed row."""
import sys
from pathlib import Path

import pytest

from benchmarks import process_cost as pc

CONFIG = 'configs/catseg/catseg_vitb16_isaid.py'


def _fake_run(walls):
    calls = []

    def run(argv, threads, log_path):
        calls.append((list(argv), threads, Path(log_path)))
        return walls[len(calls) - 1]
    return run, calls


def test_train_then_test_process_minus_their_steps(tmp_path):
    run, calls = _fake_run([20.0, 10.0])
    out = pc.measure_process(CONFIG, train_s=1.5, infer_s=0.5, threads=1, work_root=tmp_path,
                             run=run, log=lambda s: None)
    assert out == {'process_train_s': pytest.approx(20.0 - pc.TRAIN_ITERS * 1.5),
                   'process_test_s': pytest.approx(10.0 - pc.TEST_IMAGES * 0.5)}
    (train, t1, _), (test, t2, _) = calls
    assert t1 == t2 == 1                                     # the slot's threads, both processes
    assert train[1:4] == ['-m', 'benchmarks.train', CONFIG]
    assert f'train_cfg.max_iters={pc.TRAIN_ITERS}' in train and '--no-validate' in train
    assert train[train.index('--scale') + 1] == 'mini'
    assert test[1:4] == ['-m', 'benchmarks.test', CONFIG]
    wd = Path(train[train.index('--work-dir') + 1])
    assert test[4] == str(wd / 'final_weights.pth')          # the weights the train process wrote
    assert f'test_dataloader.dataset.indices={pc.TEST_IMAGES}' in test
    assert not wd.exists()                                   # the temporary work dir is removed


def test_training_free_method_has_only_a_test_process(tmp_path):
    run, calls = _fake_run([3.0])
    out = pc.measure_process('configs/segearthov/segearthov_vitb16_isaid.py', None, 2.0, threads=2,
                             work_root=tmp_path, run=run, log=lambda s: None)
    assert out == {'process_test_s': 0.0}                    # never negative
    (argv, _, _), = calls
    assert argv[2] == 'benchmarks.test' and argv[4] == '--work-dir'   # no checkpoint argument


def test_the_measured_test_process_reads_that_many_images():
    """The cfg option the test process gets cuts the mini val set (mmengine BaseDataset indices)."""
    pytest.importorskip('torch')
    from aeroseg.config import load_config
    from aeroseg.mini import ensure_mini
    from benchmarks import test as bench_test
    from benchmarks.common import register_all
    from mmseg.registry import DATASETS
    ensure_mini('isaid')
    argv = pc.test_argv(CONFIG, Path('unused'), None)
    args = bench_test.parse_args(argv[3:])
    register_all()
    full = load_config(CONFIG, scale='mini')
    cut = load_config(CONFIG, scale='mini', cfg_options=args.cfg_options)
    n_full = len(DATASETS.build(full.test_dataloader.dataset))
    assert n_full > pc.TEST_IMAGES
    assert len(DATASETS.build(cut.test_dataloader.dataset)) == pc.TEST_IMAGES


def test_a_failing_process_names_its_command_and_log(tmp_path):
    ok = [sys.executable, '-c', 'import os; print("threads", os.environ["OMP_NUM_THREADS"])']
    assert pc._run(ok, 3, tmp_path / 'ok.log') > 0
    assert (tmp_path / 'ok.log').read_text().strip() == 'threads 3'
    bad = [sys.executable, '-c', 'import sys; print("no such dataset"); sys.exit(3)']
    with pytest.raises(RuntimeError, match=r'exited 3 \(log .*bad\.log\):\nno such dataset'):
        pc._run(bad, 1, tmp_path / 'bad.log')


def test_speed_row_keeps_its_figures_when_the_process_cost_fails(monkeypatch):
    pytest.importorskip('torch')
    from benchmarks import speed

    def boom(*a, **k):
        raise RuntimeError('benchmarks.train exited 1')
    monkeypatch.setattr(pc, 'measure_process', boom)
    row = dict(method='catseg', status='ok', config=CONFIG, threads=1, train_s=0.3, infer_s=0.05)
    speed.add_process_cost(row, log=lambda s: None)
    assert row['status'] == 'ok; process cost: RuntimeError: benchmarks.train exited 1'
    assert row['train_s'] == 0.3 and 'process_test_s' not in row

"""#19 item 5: logs a user can read, and --show-dir saving what it says.

A mini AerOSeg training used to open its log with ~129 ``<param> is skipped since its
requires_grad=False`` warnings (mmengine's optimizer constructor, one per frozen tensor) and
dozens of ``paramwise_options`` lines; ``benchmarks.test --show-dir`` painted 2 of 100 images
(mmseg's SegVisualizationHook interval 50) without a word."""
import glob

import pytest

from aeroseg.utils import quiet

pytest.importorskip('mmseg')
NOISE = ('requires_grad=False', 'paramwise_options', '"FileClient" will be deprecated',
         '"HardDiskBackend"', 'The draw is False', 'The prefix is not set')


def test_mini_training_log_has_no_frozen_parameter_noise(tmp_path, capfd):
    from benchmarks import train as bench_train
    opts = ['train_cfg.max_iters=1', 'default_hooks.checkpoint.interval=1000',
            'default_hooks.logger.interval=1']
    assert bench_train.main(['configs/aeroseg/aeroseg_vitb16_isaid.py', '--scale', 'mini',
                             '--work-dir', str(tmp_path), '--no-validate', '--cfg-options', *opts]) == 0
    console = capfd.readouterr()
    (log,) = glob.glob(str(tmp_path / '*' / '*.log'))
    text = open(log).read()
    for seen in (text, console.out + console.err):
        assert not [n for n in NOISE if n in seen], [ln for ln in seen.splitlines() if any(n in ln for n in NOISE)][:5]
    # ... and one line saying what the optimizer got instead (frozen SAM guidance and CLIP left out)
    (line,) = [ln for ln in text.splitlines() if 'optimizer: ' in ln]
    assert 'lr 1e-03 x ' in line and 'lr 1e-05 x ' in line, line
    frozen = int(line.split('; ')[1].split()[0])
    assert frozen > 100, line
    assert 'Iter(train) [1/1]' in text  # the rest of the log is untouched


def test_filter_drops_only_the_listed_lines():
    import logging
    logger = logging.getLogger('aeroseg.test_quiet')
    f = quiet.install(logger)
    assert quiet.install(logger) is f  # once
    keep = logging.LogRecord('x', logging.WARNING, '', 0, 'clip.x is skipped since its requires_grad=True', None, None)
    drop = logging.LogRecord('x', logging.WARNING, '', 0, 'clip.x is skipped since its requires_grad=False', None, None)
    other = logging.LogRecord('x', logging.WARNING, '', 0, 'The dataset has no images', None, None)
    assert f.filter(keep) and f.filter(other) and not f.filter(drop)
    assert f.counts == {'frozen': 1}


def test_show_dir_paints_every_test_image(tmp_path, capfd):
    from benchmarks import test as bench_test
    n = 4
    show = tmp_path / 'show'
    assert bench_test.main(['configs/segearthov/segearthov_vitb16_isaid.py', '--scale', 'mini',
                            '--work-dir', str(tmp_path), '--show-dir', str(show),
                            '--cfg-options', f'test_dataloader.dataset.indices={n}']) == 0
    out = capfd.readouterr().out
    painted = sorted((show / 'vis_data' / 'vis_image').glob('*.png'))
    assert len(painted) == n, painted
    assert f'painted {n} of {n} test predictions (every test image) to {show}/vis_data/vis_image' in out


def test_show_interval_says_how_many_and_why(tmp_path):
    from benchmarks import test as bench_test
    (tmp_path / 'a.png').write_bytes(b'')
    msg = bench_test.report_painted(str(tmp_path), 0, 100, 50)
    assert msg == f'painted 1 of 100 test predictions (every 50-th test batch (--show-interval)) to {tmp_path}'

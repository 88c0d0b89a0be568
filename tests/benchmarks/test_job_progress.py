"""#19 item 5: the runner says how far each running job is (step, iteration / total, mmengine's
ETA) in one line per running job, instead of nothing for hours unless --verbose."""
import sys
from pathlib import Path

import pytest

from bench_helpers import fake_steps
from benchmarks.runner import cli, launch

# verbatim LoggerHook lines of a mini AerOSeg run's run.log (mmengine 0.10.7)
TRAIN = ('12/01 22:18:35 - mmengine - INFO - Iter(train) [ 20/200]  base_lr: 9.7790e-04 lr: '
         '9.7790e-06  eta: 0:11:18  time: 4.2262  data_time: 0.0417  grad_norm: 1.0797  loss: 0.1314')
TEST = '12/01 22:31:08 - mmengine - INFO - Iter(test) [ 20/100]    eta: 0:01:51  time: 1.5840  data_time: 0.0040'


def test_parse_progress_reads_mmengine_lines():
    assert launch.parse_progress(TRAIN) == {'mode': 'train', 'iter': 20, 'max_iters': 200, 'eta': '0:11:18'}
    assert launch.parse_progress(TEST) == {'mode': 'test', 'iter': 20, 'max_iters': 100, 'eta': '0:01:51'}
    long = TRAIN.replace('eta: 0:11:18', 'eta: 2 days, 3:04:05')
    assert launch.parse_progress(long)['eta'] == '2 days, 3:04:05'
    assert launch.parse_progress('12/01 22:17:19 - mmengine - INFO - Checkpoints will be saved') is None
    p = dict(launch.parse_progress(TRAIN), step='train')
    assert launch.format_progress(p) == 'train 20/200 (10%), ETA 0:11:18'
    assert launch.format_progress({'step': 'test', 'iter': None}) == 'test starting'


# a child that logs like mmengine: 4 lines over ~1.5 s
CHILD = ('import time, sys\n'
         'for k in (5, 10, 15, 20):\n'
         '    time.sleep(0.3)\n'
         '    print(f"01/01 00:00:00 - mmengine - INFO - Iter(train) [{k:3d}/20]  lr: 1e-3  '
         'eta: 0:00:{(20 - k) // 5:02d}  time: 0.3", flush=True)\n'
         'time.sleep(0.3)\n')


def test_runner_prints_a_progress_line_per_running_job(fake_world, tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    root, spec = fake_world
    real, base = launch.run_logged, fake_steps()

    def steps(cmd, log, verbose, env_extra=None):
        if 'benchmarks.train' in cmd:  # a real subprocess through the real reader, then the outputs
            assert real([sys.executable, '-c', CHILD, 'benchmarks.train'], log, verbose, env_extra) == 0
            assert launch._PROGRESS == {}  # a finished step leaves no progress behind
        return base(cmd, log, verbose, env_extra)

    monkeypatch.setattr(launch, 'run_logged', steps)
    rc = cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'),
                   '--results-dir', str(tmp_path / 'r'), '--progress-every', '0.1'])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith('[2/3] ...   ext/fake_isaid seed0: train ')]
    shown = [ln.split(': ', 1)[1] for ln in lines]
    # each iteration it logged, once, in order, with mmengine's ETA and the job's running time
    its = [s.split(' (')[0] for s in shown if '/20' in s]
    assert its == ['train 5/20', 'train 10/20', 'train 15/20', 'train 20/20'], out
    assert 'train 10/20 (50%), ETA 0:00:02 (running 0:00:0' in out


def test_progress_lines_off_with_zero(fake_world, tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    root, spec = fake_world
    monkeypatch.setattr(launch, 'run_logged', fake_steps())
    assert cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'),
                     '--results-dir', str(tmp_path / 'r'), '--progress-every', '0']) == 0
    assert ' ...   ' not in capsys.readouterr().out

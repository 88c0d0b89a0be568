"""Helpers for the runner's tests: a fake spec + fake mmengine configs, running the runner."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

FAKE_CONFIG = '''
custom_imports = dict(imports=['fake_mm'], allow_failed_imports=False)
model = dict(type='{model}')
_loader = dict(num_workers=0, collate_fn=dict(type='default_collate'))
train_dataloader = dict(batch_size=8, sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(type='FakeVectors', n=64, seed=1), **_loader)
test_dataloader = dict(batch_size=16, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(type='FakeVectors', n=48, seed=2), **_loader)
test_evaluator = dict(type='FakeOpenVocabMetric')
test_cfg = dict(type='TestLoop')
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=0.05, weight_decay=0.01))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=20, by_epoch=False, begin=0, end=20)]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=5, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=5))
log_processor = dict(by_epoch=False)
log_level = 'INFO'
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
'''


def write_fake_world(root: Path) -> Path:
    """Configs + a spec file under ``root``; returns the spec path.

    Spec: T2 with a trained row (AerOSeg) and a missing-config row (SAN); T8 with a
    training-free row and the same AerOSeg config (shared job: it must run once).
    """
    cfg_dir = root / 'configs'
    cfg_dir.mkdir(parents=True, exist_ok=True)
    for ds in ('isaid', 'dlrsd'):
        (cfg_dir / f'fake_{ds}.py').write_text(FAKE_CONFIG.format(model='FakeSegmentor'))
    (cfg_dir / 'free_isaid.py').write_text(FAKE_CONFIG.format(model='FakeTrainingFree'))
    spec = root / 'fake_spec.py'
    spec.write_text(textwrap.dedent(f'''
        from benchmarks.tables import Row, Table
        C = {str(cfg_dir)!r}
        TABLES = (
            Table('T2', 'fake comparison', (
                Row('SAN', C + '/missing_{{ds}}.py'),
                Row('AerOSeg', C + '/fake_{{ds}}.py'),
            ), ('isaid',), ('s-mIoU', 'u-mIoU', 'h-mIoU'), average=True),
            Table('T8', 'fake training-free', (
                Row('SegEarth-OV', C + '/free_{{ds}}.py', train=False),
                Row('AerOSeg', C + '/fake_{{ds}}.py'),
            ), ('isaid',), ('mIoU',)),
        )
    '''))
    return spec


def bench_env(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), str(HERE)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env['OMP_NUM_THREADS'] = '1'
    env['MKL_NUM_THREADS'] = '1'
    env.pop('AEROSEG_DATA', None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_bench(args, env=None, timeout=300, **kw):
    return subprocess.run([sys.executable, '-m', 'benchmarks.run', *map(str, args)], cwd=REPO,
                          env=env or bench_env(), capture_output=True, text=True, timeout=timeout, **kw)


METRICS = {'mIoU': 12.5, 's-mIoU': 20.0, 'u-mIoU': 10.0, 'h-mIoU': 13.33, 'IoU.ship': 1.0}


def fake_steps(fail_train_of=None, interrupt=False, calls=None, error='ValueError: boom',
               metrics=METRICS):
    """Stand-in for ``benchmarks.runner.launch.run_logged``: train 'succeeds' (or, for a job dir
    containing ``fail_train_of``, fails with ``error`` in its log / is interrupted), test writes
    ``metrics`` with the job's hash; each step is appended to ``calls`` as (module, job dir).
    Lets the runner's orchestration be tested without subprocesses."""
    def fake(cmd, log, verbose, env_extra=None):
        wd = Path(cmd[cmd.index('--work-dir') + 1])
        step = 'benchmarks.train' if 'benchmarks.train' in cmd else 'benchmarks.test'
        if calls is not None:
            calls.append((step, wd))
        h = json.loads((wd / 'job.json').read_text())['config_hash']
        if step == 'benchmarks.train':
            if fail_train_of and fail_train_of in str(wd):
                if interrupt:
                    raise KeyboardInterrupt
                log.write_text(f'Traceback (most recent call last):\n{error}\n')
                return 1
            (wd / 'final_weights.pth').write_bytes(b'w')
            (wd / 'train_done.json').write_text(json.dumps({'config_hash': h, 'iter': 20, 'wall_s': 1}))
        else:
            (wd / 'metrics.json').write_text(json.dumps({'config_hash': h, 'wall_s': 1,
                                                         'metrics': dict(metrics)}))
        return 0
    return fake

"""Test one config (MMSegmentation ``tools/test.py`` conventions, on mmengine's Runner).

    python -m benchmarks.test CONFIG [CHECKPOINT] [--work-dir DIR] [--show-dir DIR]
        [--scale mini|full] [--data-root DIR] [--cfg-options k=v ...] [--launcher ...]

CHECKPOINT may be omitted (or ``none``) for a training-free method whose config loads its own
weights (SegEarth-OV). Checkpoints load through mmengine with torch's default
``weights_only=True``: the ``final_weights.pth`` that ``benchmarks.train`` writes, its
``iter_*.pth`` (saved by ``SafeCheckpointHook``), or any plain state-dict file.

Rank 0 writes the metrics (mmengine's test metrics dict: ``mIoU``, ``s-mIoU``, ``u-mIoU``,
``h-mIoU``, ``IoU.<class>``) with config hash, checkpoint, timings and environment, atomically,
to ``<work_dir>/metrics.json`` (``--metrics-out`` to change; the run-dir files: ``docs/run_dir.md``).
"""
from __future__ import annotations

import argparse
import numbers
import os
import os.path as osp
import sys
import time
from datetime import datetime, timezone

from benchmarks.common import (atomic_write_json, environment, peak_memory, prepare_run, run_cli,
                               scale_help)
from benchmarks.train import build_runner

METRICS = 'metrics.json'


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Test a segmentor (aeroseg-bench; mmseg conventions).')
    p.add_argument('config', help='config file path')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='weights file (omit or "none" for a training-free method)')
    p.add_argument('--work-dir', help='where logs and metrics.json go')
    p.add_argument('--show-dir', help='save painted predictions here (needs the config\'s '
                   'default_hooks.visualization)')
    p.add_argument('--scale', choices=['full', 'mini'], default=None, help=scale_help())
    p.add_argument('--data-root', help='this dataset\'s processed root (overrides the config)')
    p.add_argument('--metrics-out', help=f'metrics JSON path (default <work_dir>/{METRICS})')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config keys, "xxx=yyy" (mmengine DictAction syntax)')
    p.add_argument('--amp', action='store_true',
                   help='autocast the test on a GPU (off by default: reproduction)')
    p.add_argument('--amp-dtype', choices=['bf16', 'fp16'], default='bf16', help='autocast dtype of --amp')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--verbose', action='store_true', help='full tracebacks on errors')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if args.checkpoint is not None and args.checkpoint.lower() == 'none':
        args.checkpoint = None
    if args.checkpoint is not None and not osp.exists(args.checkpoint):
        p.error(f'checkpoint not found: {args.checkpoint}')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, show_dir: str) -> None:
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise RuntimeError('--show-dir needs a visualization hook: add default_hooks.visualization='
                           'dict(type="SegVisualizationHook") to the config')
    hooks['visualization']['draw'] = True
    cfg.visualizer['save_dir'] = show_dir


def amp_autocast(amp):
    """``torch.autocast('cuda', bf16 | fp16)`` for ``--amp``, a no-op without it; CUDA only."""
    import contextlib
    import torch
    if not amp:
        return contextlib.nullcontext()
    if not torch.cuda.is_available():
        raise RuntimeError('--amp autocasts on a GPU, but torch sees no CUDA device: drop --amp')
    return torch.autocast('cuda', dtype={'bf16': torch.bfloat16, 'fp16': torch.float16}[amp])


def to_plain(metrics) -> dict:
    """mmengine metric values (numpy / torch scalars) as plain floats."""
    out = {}
    for k, v in dict(metrics).items():
        if hasattr(v, 'item') and getattr(v, 'ndim', 0) == 0:
            v = v.item()
        if isinstance(v, numbers.Number):
            v = float(v)
        elif hasattr(v, 'tolist'):
            v = v.tolist()
        out[k] = v
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('benchmarks.test', args.verbose, lambda: _test(args))


def _test(args) -> int:
    from aeroseg.config import choose_scale
    from aeroseg.utils.checkpoint import read_checkpoint_meta
    t0 = time.time()
    meta = read_checkpoint_meta(args.checkpoint) if args.checkpoint is not None else {}
    args.scale = choose_scale(args.scale, meta.get('scale'), checkpoint=str(args.checkpoint))
    cfg, h, work_dir = prepare_run(args)
    if args.checkpoint is not None:
        cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        trigger_visualization_hook(cfg, args.show_dir)

    runner = build_runner(cfg)
    with amp_autocast(args.amp_dtype if args.amp else None):
        metrics = to_plain(runner.test() or {})

    from mmengine.dist import is_main_process
    if is_main_process():
        out = args.metrics_out or osp.join(work_dir, METRICS)
        atomic_write_json(out, {
            'metrics': metrics, 'config': args.config, 'config_hash': h, 'scale': args.scale,
            'checkpoint': args.checkpoint, 'checkpoint_config_hash': meta.get('config_hash'), 'data_root': args.data_root,
            'cfg_options': args.cfg_options, 'launcher': args.launcher, 'amp': args.amp_dtype if args.amp else False,
            'wall_s': round(time.time() - t0, 2), 'argv': sys.argv,
            'finished_at': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            **peak_memory(), **environment()})
        print(f'metrics written to {out}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

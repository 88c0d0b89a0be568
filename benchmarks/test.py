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
    p.add_argument('--show-dir', help='save a painted prediction of every test image (or every '
                   '--show-interval-th) under DIR/vis_data/vis_image/ (mmseg\'s SegVisualizationHook '
                   'and LocalVisBackend; the config needs default_hooks.visualization)')
    p.add_argument('--show-interval', type=int, default=1, metavar='K',
                   help='with --show-dir: paint every K-th test batch (default 1 = all)')
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


def trigger_visualization_hook(cfg, show_dir: str, interval: int = 1) -> str:
    """Paint every ``interval``-th test batch into ``show_dir``; returns the folder the images go to.

    mmseg's SegVisualizationHook paints only every ``interval``-th batch, 50 by default (and
    never batch 0): a plain ``draw=True`` saved 2 of 100 test images. Here the interval is set
    (1 = every image)."""
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise RuntimeError('--show-dir needs a visualization hook: add default_hooks.visualization='
                           'dict(type="SegVisualizationHook") to the config')
    if interval < 1:
        raise ValueError(f'--show-interval must be >= 1, got {interval}')
    hooks['visualization']['draw'] = True
    hooks['visualization']['interval'] = interval
    cfg.visualizer['save_dir'] = show_dir
    # a fresh instance: mmengine keeps one Visualizer per name per process and ignores the
    # save_dir of a second one with a name already taken
    cfg.visualizer['name'] = f'show_dir:{osp.abspath(show_dir)}:{time.time()}'
    # mmengine's Visualizer puts its backends under <save_dir>/vis_data, LocalVisBackend's images
    # under vis_image/ there
    return osp.join(show_dir, 'vis_data', 'vis_image')


def report_painted(folder: str, since: float, n_images: int, interval: int) -> str:
    """One line: how many painted predictions this run wrote to ``folder`` and which."""
    n = sum(1 for f in (os.scandir(folder) if osp.isdir(folder) else ())
            if f.name.endswith('.png') and f.stat().st_mtime >= since)
    which = 'every test image' if interval == 1 else f'every {interval}-th test batch (--show-interval)'
    return f'painted {n} of {n_images} test predictions ({which}) to {folder}'


def load_weights_strict(runner, checkpoint: str, config: str) -> None:
    """The runner's model from ``checkpoint``, strictly (one line naming the file and the keys on a
    mismatch): mmengine's ``load_from`` would only warn and test a partly random model (e.g. a
    ViT-L checkpoint on a ViT-B config, or a cross-dataset job handed another method's weights)."""
    from mmengine.model import is_model_wrapper

    from aeroseg.utils.checkpoint import load_trained_weights
    load_trained_weights(runner.model.module if is_model_wrapper(runner.model) else runner.model,
                         checkpoint, config)


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
    from mmengine.dist import is_main_process
    from aeroseg.config import choose_scale
    from aeroseg.utils.checkpoint import read_checkpoint_meta
    t0 = time.time()
    meta = read_checkpoint_meta(args.checkpoint) if args.checkpoint is not None else {}
    args.scale = choose_scale(args.scale, meta.get('scale'), checkpoint=str(args.checkpoint))
    cfg, h, work_dir = prepare_run(args)
    # loaded strictly below, not by mmengine's lenient load_checkpoint (a config's own load_from
    # too, when no CHECKPOINT is given)
    checkpoint, cfg.load_from = args.checkpoint or cfg.get('load_from'), None
    cfg.resume = False
    painted = None
    if args.show_dir:
        painted = trigger_visualization_hook(cfg, args.show_dir, args.show_interval)
    t_show = time.time() - 1

    runner = build_runner(cfg)
    if checkpoint:
        load_weights_strict(runner, checkpoint, args.config)
    with amp_autocast(args.amp_dtype if args.amp else None):
        metrics = to_plain(runner.test() or {})
    if painted is not None and is_main_process():
        print(report_painted(painted, t_show, len(runner.test_dataloader.dataset),
                             args.show_interval), flush=True)

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
    from aeroseg.utils.malloc import retain_freed_memory
    from aeroseg.utils.process import exit_now
    retain_freed_memory()  # freed tensors' pages reused, not faulted in again (its docstring)
    exit_now(main())

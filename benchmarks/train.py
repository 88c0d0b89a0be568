"""Train one config (MMSegmentation ``tools/train.py`` conventions, on mmengine's Runner).

    python -m benchmarks.train CONFIG [--work-dir DIR] [--resume] [--amp] [--scale mini|full]
        [--data-root DIR] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

Multi-GPU: ``python -m torch.distributed.run --standalone --nproc_per_node N -m benchmarks.train
CONFIG --launcher pytorch``; Slurm: ``srun ... python -m benchmarks.train CONFIG --launcher slurm``.

Besides mmengine's own checkpoints (``iter_*.pth``, used by ``--resume``), rank 0 writes on
success, atomically, into the work dir (the run-dir files: ``docs/run_dir.md``):

* ``final_weights.pth`` - ``{'state_dict': tensors, 'meta': plain values}``: loads with
  ``torch.load(weights_only=True)``, so testing never needs to unpickle a training checkpoint;
* ``train_done.json`` - config hash, iterations, wall time, peak memory, versions, device.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time
import warnings
from datetime import datetime, timezone

from benchmarks.common import (atomic_write_json, environment, peak_memory, prepare_run, run_cli,
                               scale_help)

FINAL_WEIGHTS = 'final_weights.pth'
TRAIN_DONE = 'train_done.json'


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Train a segmentor (aeroseg-bench; mmseg conventions).')
    p.add_argument('config', help='config file path')
    p.add_argument('--work-dir', help='where logs and checkpoints go (default: the config\'s '
                   'work_dir, else ./work_dirs/<config name>)')
    p.add_argument('--resume', action='store_true',
                   help='resume from the latest checkpoint in the work dir (if any)')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision on a GPU (AmpOptimWrapper; off by default: reproduction)')
    p.add_argument('--amp-dtype', choices=['bf16', 'fp16'], default='bf16',
                   help='autocast dtype of --amp (fp16 gets a dynamic loss scale)')
    p.add_argument('--no-validate', action='store_true',
                   help='skip validation during training (the runner tests separately)')
    p.add_argument('--scale', choices=['full', 'mini'], default=None, help=scale_help())
    p.add_argument('--data-root', help='this dataset\'s processed root (overrides the config)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config keys, "xxx=yyy" (mmengine DictAction syntax)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--verbose', action='store_true', help='full tracebacks on errors')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)  # torch.distributed.launch
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_amp(cfg, dtype: str = 'fp16') -> None:
    """``optim_wrapper`` -> ``AmpOptimWrapper``: autocast to ``dtype`` ('bf16' | 'fp16'; fp16 with
    a dynamic loss scale)."""
    ow = cfg.get('optim_wrapper')
    if ow is None:
        raise ValueError('--amp needs an optim_wrapper in the config')
    if ow.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        print('AMP is already enabled in the config.', flush=True)
        return
    if ow.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError(f'--amp only converts optim_wrapper.type "OptimWrapper", got {ow["type"]!r}')
    ow['type'] = 'AmpOptimWrapper'
    if dtype == 'bf16':
        ow['dtype'] = 'bfloat16'  # bf16 has fp32's range: no loss scale needed
    else:
        ow['loss_scale'] = 'dynamic'


def ensure_safe_checkpoints(runner) -> bool:
    """Make the run's checkpoints resumable under torch >= 2.6 (``weights_only=True``).

    mmengine 0.10.7 pickles ``HistoryBuffer`` objects into its checkpoints, which
    ``weights_only`` refuses (``Unsupported global: mmengine.logging.history_buffer.
    HistoryBuffer``). The lead's ``aeroseg.utils.resume.SafeCheckpointHook`` saves them as plain
    containers and restores them on load, so weights_only is never switched off. It is
    registered here for every run (configs with ``runner_type='AerosegRunner'`` already have
    it): the checkpoints of the *first* attempt must be safe for a later ``--resume``.
    Returns False (with a warning) when the hook is not available.
    """
    try:
        from aeroseg.utils.resume import SafeCheckpointHook
    except ImportError as e:
        warnings.warn(f'aeroseg.utils.resume.SafeCheckpointHook unavailable ({e}): resuming may fail '
                      f'under torch>=2.6 with "Unsupported global: mmengine.logging.history_buffer.'
                      f'HistoryBuffer".')
        return False
    if not any(isinstance(h, SafeCheckpointHook) for h in runner.hooks):
        runner.register_hook(SafeCheckpointHook())
    return True


def build_runner(cfg):
    """mmengine Runner, or the config's ``runner_type`` built in its default scope."""
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    from mmengine.registry import RUNNERS, init_default_scope
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)  # so the root registry finds e.g. mmseg's runners
    return RUNNERS.build(cfg)


def save_final_weights(runner, path: str, meta: dict) -> None:
    """Model weights only (CPU tensors) + plain meta, atomically; loads with weights_only=True."""
    import torch
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = f'{path}.tmp.{os.getpid()}'
    try:
        torch.save({'state_dict': sd, 'meta': meta}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('benchmarks.train', args.verbose, lambda: _train(args))


def _train(args) -> int:
    from aeroseg.config import choose_scale
    t0 = time.time()
    args.scale = choose_scale(args.scale)
    cfg, h, work_dir = prepare_run(args)
    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    cfg.resume = bool(args.resume)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None

    runner = build_runner(cfg)
    safe = ensure_safe_checkpoints(runner)
    runner.train()

    from mmengine.dist import is_main_process
    if is_main_process():
        meta = {'config': args.config, 'config_hash': h, 'iter': int(runner.iter),
                'scale': args.scale}
        save_final_weights(runner, osp.join(work_dir, FINAL_WEIGHTS), meta)
        done = dict(meta, final_weights=FINAL_WEIGHTS, data_root=args.data_root,
                    cfg_options=args.cfg_options, resumed=bool(args.resume),
                    safe_checkpoints=safe, amp=args.amp_dtype if args.amp else False, launcher=args.launcher,
                    wall_s=round(time.time() - t0, 2), argv=sys.argv,
                    finished_at=datetime.now(timezone.utc).isoformat(timespec='seconds'),
                    **peak_memory(), **environment())
        atomic_write_json(osp.join(work_dir, TRAIN_DONE), done)
    return 0


if __name__ == '__main__':
    from aeroseg.utils.malloc import retain_freed_memory
    from aeroseg.utils.process import exit_now
    retain_freed_memory()  # freed tensors' pages reused, not faulted in again (its docstring)
    exit_now(main())

"""What a mini job's process costs outside its model compute, measured on this machine.

A mini job of ``benchmarks.run`` is two processes (``benchmarks.train``, then ``benchmarks.test``
on its ``final_weights.pth``); each spends seconds on imports, config, model and data build,
checkpoint loads and saves and exit, besides its steps. ``python -m benchmarks.speed`` runs
both entry points here, as the runner runs them (same modules, ``--scale mini``, the slot's
thread count in ``OMP_NUM_THREADS``), but with ``train_cfg.max_iters`` = :data:`TRAIN_ITERS` and
``test_dataloader.dataset.indices`` = :data:`TEST_IMAGES`, and charges the process what is left
of its wall time after that many steps / images at the speed row's measured s per step / image:

    process_train_s = wall(train process) - TRAIN_ITERS x train_s
    process_test_s  = wall(test process)  - TEST_IMAGES x infer_s

The first step's and image's warm-up counts as process cost, as it does in a real job. The
dry-run adds these to the compute of a mini job (``benchmarks/runner/cli.py``) in place of the
constant it assumed before (``MINI_PROCESS_S``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks.common import REPO_ROOT
from benchmarks.runner.launch import THREAD_VARS
from benchmarks.train import FINAL_WEIGHTS

__all__ = ['TRAIN_ITERS', 'TEST_IMAGES', 'train_argv', 'test_argv', 'measure_process']

TRAIN_ITERS = 2      # steps of the measured training process (the checkpoint hook saves the last)
TEST_IMAGES = 2      # val images of the measured test process (mmengine BaseDataset ``indices``)


def train_argv(config: str, work_dir: Path, iters: int = TRAIN_ITERS) -> List[str]:
    """``benchmarks.train`` as the runner starts a mini job (runner.launch.train_command), cut to
    ``iters`` steps."""
    return [sys.executable, '-m', 'benchmarks.train', config, '--work-dir', str(work_dir),
            '--scale', 'mini', '--no-validate', '--cfg-options', 'randomness.seed=0',
            f'train_cfg.max_iters={iters}', '--launcher', 'none']


def test_argv(config: str, work_dir: Path, checkpoint: Optional[Path],
              images: int = TEST_IMAGES) -> List[str]:
    """``benchmarks.test`` as the runner starts it (runner.launch.test_command), on the first
    ``images`` val images."""
    ckpt = [str(checkpoint)] if checkpoint is not None else []
    return [sys.executable, '-m', 'benchmarks.test', config, *ckpt, '--work-dir', str(work_dir),
            '--scale', 'mini', '--cfg-options', 'randomness.seed=0',
            f'test_dataloader.dataset.indices={images}', '--launcher', 'none']


def _run(argv: Sequence[str], threads: int, log_path: Path) -> float:
    """Wall seconds of ``argv`` run from the repository root with ``threads`` per library;
    raises RuntimeError naming the command and the log's last lines when it fails."""
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    t0 = time.perf_counter()
    with open(log_path, 'w') as log:
        rc = subprocess.run(list(argv), cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        tail = ''.join(log_path.read_text(errors='replace').splitlines(True)[-8:])
        raise RuntimeError(f'{" ".join(argv[1:4])} exited {rc} (log {log_path}):\n{tail}')
    return wall


def measure_process(config: str, train_s: Optional[float], infer_s: float, threads: int,
                    work_root: Optional[Path] = None,
                    run: Callable[[Sequence[str], int, Path], float] = _run,
                    log=print) -> Dict[str, float]:
    """{'process_train_s' (unless ``train_s`` is None: a training-free method), 'process_test_s'}:
    the seconds of a mini job's process beyond its compute (module docstring) for ``config``,
    whose speed row measured ``train_s`` per step and ``infer_s`` per image at ``threads``
    threads. Folders under ``work_root`` (a temporary one by default, removed after)."""
    with tempfile.TemporaryDirectory(prefix='aeroseg-process-', dir=work_root) as tmp:
        wd = Path(tmp)
        out: Dict[str, float] = {}
        ckpt = None
        if train_s is not None:
            log(f'[speed] process cost: {config}: benchmarks.train, {TRAIN_ITERS} steps ...')
            wall = run(train_argv(config, wd), threads, wd / 'train.log')
            out['process_train_s'] = max(0.0, wall - TRAIN_ITERS * train_s)
            ckpt = wd / FINAL_WEIGHTS
        log(f'[speed] process cost: {config}: benchmarks.test, {TEST_IMAGES} images ...')
        wall = run(test_argv(config, wd, ckpt), threads, wd / 'test.log')
        out['process_test_s'] = max(0.0, wall - TEST_IMAGES * float(infer_s))
    return out

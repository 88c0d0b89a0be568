"""Full-size training-step cost per method: ``benchmarks.speed`` at full size, training only.

    python -m benchmarks.model_cost [--methods catseg ovrs aeroseg] [--batch 1] [--device cpu|cuda]
        [--amp bf16|fp16|none] [--steps N] [--threads 2] [--json out.json]

Kept for the commands in docs/measurements.md; the one harness is :mod:`benchmarks.speed`
(``--steps`` = its ``--repeats``; the table is printed, nothing is written under results/).
The helpers (``build_full_model``, ``make_batch``, ``train_step``, ...) are re-exported from it.
"""
from __future__ import annotations

import sys

from benchmarks.speed import (WEIGHTS_NOTE, _setup_imports, _shim_mmcv_ops, build_full_model,  # noqa: F401
                              count_params, make_batch, method_configs, num_classes_of,
                              resolve_config, train_step)
from benchmarks import speed


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = ['--repeats' if a == '--steps' else a for a in argv]
    return speed.main(['--scales', 'full', '--parts', 'train', '--no-compare', '--no-write'] + argv,
                      prog='python -m benchmarks.model_cost')


if __name__ == '__main__':
    sys.exit(main())

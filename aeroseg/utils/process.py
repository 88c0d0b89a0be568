"""Ending a command-line process without the interpreter's final sweep of the whole heap.

At exit CPython garbage-collects every object still alive; after importing torch, mmseg and
the suite (and, in a test or training process, holding a model, its data and mmengine's
runner) that sweep took 3-4 s of the process's life on the 2-core CPU box, against 0.5 s with
the objects frozen first (``benchmarks.test`` on the SAN mini checkpoint, 2 runs each:
``tests/utils/test_process.py`` pins the behaviour, docs/measurements.md the figures). The
mini benchmark starts two such processes per job. :func:`gc.freeze` only moves the live
objects out of the collector's view: finalisers, ``atexit`` handlers and buffered output still
run, so nothing written is lost. For ``if __name__ == '__main__'`` only: a library call inside
a long-lived process (pytest) must not freeze its heap.
"""
from __future__ import annotations

import gc
import sys

__all__ = ['exit_now']


def exit_now(rc) -> None:
    """``sys.exit(rc)`` after ``gc.freeze()``: skips the exit-time collection of everything alive."""
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    sys.exit(rc)

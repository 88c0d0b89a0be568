"""Keep freed CPU memory in the process, so a large tensor does not cost fresh pages every call.

PyTorch's CPU tensors come from the C library's ``malloc`` (no caching allocator, unlike CUDA).
glibc serves a block over its mmap threshold (128 KiB at start, raised by frees up to 32 MiB)
with a fresh ``mmap`` and gives it back on ``free``; what it frees at the top of the heap beyond
the trim threshold goes back too. Every such block is new memory to the kernel, which zeroes each
4 KiB page at its first touch: at mini scale OVRS's slide inference took ~40,000 page faults per
image (the decoder's per-class maps are 4-24 MB each) and spent ~15% of its time in them.
:func:`retain_freed_memory` sets ``M_MMAP_MAX = 0`` (every block from the heap) and a trim threshold
that never trims (freed heap kept; an explicit ``malloc_trim`` still gives it back), so the process reuses its own pages: the faults drop to ~0 after the
first call (``python -m benchmarks.speed``'s ``retain_memory`` before/after; docs/measurements.md).

Nothing computed changes (the same kernels on the same values; tests/utils/test_malloc.py). The
cost: the process keeps its peak heap resident until it exits (the same peak; it is not returned
between calls). Applied by the command-line entry points (``benchmarks.train`` / ``test`` /
``speed``, ``aeroseg.infer``) before they import torch's models, never on import of the library.
``AEROSEG_MALLOC=system`` leaves the C library's defaults; a C library other than glibc (no
``mallopt``) is left as it is.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional

__all__ = ['retain_freed_memory', 'malloc_policy', 'ENV']

ENV = 'AEROSEG_MALLOC'                  # 'retain' (default) or 'system'
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4   # glibc <malloc.h>
NEVER = -1                              # mallopt's int -1 is SIZE_MAX as a trim threshold: never
_applied: Optional[str] = None


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        return libc if hasattr(libc, 'mallopt') else None
    except OSError:
        return None


def retain_freed_memory(policy: Optional[str] = None) -> str:
    """Apply the malloc ``policy`` ('retain' or 'system'; default ``$AEROSEG_MALLOC`` or 'retain')
    to this process; returns what is in effect: 'retain', 'system' or 'system (no glibc mallopt)'."""
    global _applied
    policy = (policy or os.environ.get(ENV) or 'retain').strip().lower()
    if policy not in ('retain', 'system'):
        raise ValueError(f"{ENV}={policy!r}: use 'retain' (keep freed memory, the default) or 'system' "
                         "(the C library's defaults)")
    if policy == 'system':
        _applied = _applied or 'system'
        return _applied
    libc = _libc()
    if libc is None:
        _applied = 'system (no glibc mallopt)'
        return _applied
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, NEVER) == 1
    _applied = 'retain' if ok else 'system (mallopt refused)'
    return _applied


def malloc_policy() -> str:
    """What :func:`retain_freed_memory` put in effect in this process ('system' if never called)."""
    return _applied or 'system'

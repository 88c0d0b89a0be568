"""Training / test logs a user can read (#19 item 5).

mmengine 0.10.7 writes, at the start of every training whose optimizer has a ``paramwise_cfg``
(every config here: CLIP and the guidance at x0.01), one WARNING per frozen parameter tensor
(``<name> is skipped since its requires_grad=False``: ``mmengine/optim/optimizer/
default_constructor.py``, ``add_params``; 129 of them for AerOSeg, whose SAM guidance and most
of CLIP are frozen by design) and one INFO line per parameter that a custom key matches
(``paramwise_options -- <name>:lr=...``); its CheckpointHook warns that ``FileClient`` /
``HardDiskBackend`` are deprecated (its own internal calls); mmseg's SegVisualizationHook warns
in every run without ``--show-dir`` that it will draw nothing. None of these is something a user
can or should act on. :func:`install` puts a filter on the runner's logger that drops exactly
those lines (counted), and :func:`optimizer_summary` says in one line what the optimizer got:
trainable tensors per learning rate, and how many frozen tensors were left out.
"""
from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from contextlib import contextmanager

__all__ = ['install', 'optimizer_summary', 'no_idle_visualizer_warning', 'DROPPED']

# message start -> counter key (mmengine 0.10.7's exact wording)
DROPPED = (
    (re.compile(r'\S+ is skipped since its requires_grad=False$'), 'frozen'),
    (re.compile(r'paramwise_options -- '), 'paramwise'),
    (re.compile(r'"FileClient" will be deprecated in future'), 'deprecation'),
    (re.compile(r'"HardDiskBackend" is the alias of "LocalBackend"'), 'deprecation'),
)


class _Drop(logging.Filter):
    def __init__(self):
        super().__init__('aeroseg.quiet')
        self.counts: Counter = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for pattern, key in DROPPED:
            if pattern.match(msg):
                self.counts[key] += 1
                return False
        return True


def install(logger: logging.Logger) -> _Drop:
    """The filter on ``logger`` (once); returns it (``.counts`` of what it dropped)."""
    for f in logger.filters:
        if isinstance(f, _Drop):
            return f
    f = _Drop()
    logger.addFilter(f)
    return f


@contextmanager
def no_idle_visualizer_warning():
    """mmseg's SegVisualizationHook(draw=False) warns "The draw is False, ... will NOT be
    visualized or stored" when built: true of every run that did not ask for ``--show-dir``."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='The draw is False', category=UserWarning)
        yield


def _n(x: int) -> str:
    return f'{x / 1e6:.2f}M' if x >= 1e6 else f'{x:,}'


def optimizer_summary(model, optim_wrapper) -> str:
    """``optimizer: 57 trainable tensors (1.23M values): lr 2e-04 x 30, lr 2e-06 x 27; 129 frozen
    tensors (8.10M values) left out``."""
    model = getattr(model, 'module', model)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    groups = getattr(getattr(optim_wrapper, 'optimizer', None), 'param_groups', [])
    by_lr: Counter = Counter()
    n_train = v_train = 0
    for g in groups:
        by_lr[g.get('lr')] += len(g['params'])
        n_train += len(g['params'])
        v_train += sum(p.numel() for p in g['params'])
    lrs = ', '.join(f'lr {lr:.0e} x {k}' for lr, k in sorted(by_lr.items(), key=lambda t: -(t[0] or 0)))
    return (f'optimizer: {n_train} trainable tensors ({_n(v_train)} values): {lrs}; '
            f'{len(frozen)} frozen tensors ({_n(sum(p.numel() for p in frozen))} values) left out')

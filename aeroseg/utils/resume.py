"""Resume checkpoints that load with ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True``; mmengine 0.10.7 checkpoints then fail with
``Unsupported global: mmengine.logging.history_buffer.HistoryBuffer`` because the message hub
pickles ``HistoryBuffer`` objects (whose numpy arrays and bound methods would need unsafe
globals such as ``builtins.getattr`` on the allow-list). Instead of opening that door, the
suite's checkpoints are *saved* without any unsafe global: :class:`SafeCheckpointHook` turns the
message hub's buffers and numpy values into plain Python containers before saving and back after
loading. The same files then load everywhere with ``weights_only=True`` — resume, test, and as
outside weights — and weights_only is never switched off.

:class:`AerosegRunner` (``runner_type = 'AerosegRunner'``) is mmengine's Runner with that hook
always installed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from mmseg.registry import HOOKS, RUNNERS

from aeroseg.utils import quiet

__all__ = ['SafeCheckpointHook', 'AerosegRunner', 'to_safe', 'from_safe']

_HB = '__history_buffer__'
_ND = '__ndarray__'


def to_safe(obj: Any) -> Any:
    """Replace HistoryBuffers, numpy arrays and numpy scalars by plain containers (recursively)."""
    if isinstance(obj, HistoryBuffer):
        return {_HB: True, 'log': [float(x) for x in obj._log_history],
                'count': [float(x) for x in obj._count_history], 'max_length': int(obj.max_length)}
    if isinstance(obj, np.ndarray):
        return {_ND: True, 'data': obj.tolist(), 'dtype': str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    return obj


def from_safe(obj: Any) -> Any:
    """Inverse of :func:`to_safe`."""
    if isinstance(obj, dict):
        if obj.get(_HB) is True:
            buf = HistoryBuffer(max_length=obj['max_length'])
            buf._log_history = np.asarray(obj['log'], dtype=np.float64)
            buf._count_history = np.asarray(obj['count'], dtype=np.float64)
            return buf
        if obj.get(_ND) is True:
            return np.asarray(obj['data'], dtype=obj['dtype'])
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_safe(v) for v in obj)
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Save checkpoints loadable with weights_only=True; restore the message hub on load."""
    priority = 'VERY_LOW'  # after every hook that adds to the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('message_hub', 'meta'):
            if key in checkpoint:
                checkpoint[key] = to_safe(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = from_safe(checkpoint['message_hub'])


@RUNNERS.register_module()
class AerosegRunner(Runner):
    """mmengine Runner with :class:`SafeCheckpointHook` always registered, and a log a user can
    read: the lines of mmengine / mmseg internals that tell a user nothing are left out at their
    source (:mod:`aeroseg.utils.quiet`), and the optimizer's per-parameter lines become one summary."""

    def __init__(self, *args, **kwargs):
        with quiet.no_idle_visualizer_warning():
            super().__init__(*args, **kwargs)
        self._quiet = quiet.install(self.logger)
        if not any(isinstance(h, SafeCheckpointHook) for h in self._hooks):
            self.register_hook(SafeCheckpointHook())

    def build_optim_wrapper(self, optim_wrapper):
        built = not isinstance(optim_wrapper, dict)
        ow = super().build_optim_wrapper(optim_wrapper)
        if not built:
            self.logger.info(quiet.optimizer_summary(self.model, ow))
        return ow


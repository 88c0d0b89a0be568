"""Per-method hooks, looked up by model type: which outside weights a model config names.

TEMPORARY stand-in (branch runner-pkg) so that the benchmarks code can be written against the
API; the lead's version, where each model class declares its hooks, replaces this file. It
knows the CAT-Seg-family fields: 'vl' = ``clip.pretrained`` when the model config has a CLIP,
'guidance' = ``guidance.checkpoint`` when its guidance is not None.
"""
from __future__ import annotations

from typing import Any, Dict

__all__ = ['weight_fields', 'outside_weights', 'clear_outside_weights']


def weight_fields(model_cfg) -> Dict[str, str]:
    """Role -> dotted key inside ``model_cfg`` of each outside weight this config has."""
    out = {}
    if model_cfg.get('clip') is not None:
        out['vl'] = 'clip.pretrained'
    if model_cfg.get('guidance') is not None:
        out['guidance'] = 'guidance.checkpoint'
    return out


def _parent(model_cfg, dotted: str):
    *path, last = dotted.split('.')
    node = model_cfg
    for k in path:
        node = node[k]
    return node, last


def outside_weights(model_cfg) -> Dict[str, Any]:
    """Role -> the value at its key (a file path, a tag such as 'openai', or None)."""
    out = {}
    for role, dotted in weight_fields(model_cfg).items():
        node, last = _parent(model_cfg, dotted)
        out[role] = node.get(last)
    return out


def clear_outside_weights(model_cfg) -> None:
    """Set every outside-weight field to None (random init, or weights from a trained checkpoint)."""
    for dotted in weight_fields(model_cfg).values():
        node, last = _parent(model_cfg, dotted)
        node[last] = None

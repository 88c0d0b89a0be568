"""Per-method hooks looked up from a config's model type, so tooling knows no method's fields.

Each model class declares its hooks next to itself (classmethods of
:class:`~aeroseg.models.base_segmentor.OpenVocabSegmentor` or of a thin wrapper around a model
mmseg ships): ``weight_fields(model_cfg)`` names the outside-weight fields of a config by role
(``'vl'``: the vision-language model, ``'guidance'``: SAM / SAM 2, ...) and
``mini_scale(model_cfg, overlay)`` turns it into its mini-world version. ``init_model``,
``apply_mini_scale``, the cost benchmark and ``benchmarks.ov_transfer`` call the functions here.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, Iterable

__all__ = ['import_modules', 'model_class', 'weight_fields', 'outside_weights',
           'clear_outside_weights', 'set_outside_weight']

_HOOKS = ('weight_fields', 'mini_scale')


def import_modules(modules: Iterable[str] = ('aeroseg',)) -> None:
    """Import the packages whose import registers models (a config's ``custom_imports``: loading
    a config with mmengine imports them already; this covers configs built by hand)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def model_class(model_cfg) -> type:
    """The registered class of ``model_cfg['type']``; a clear error when unknown or hook-less."""
    from mmseg.registry import MODELS
    import_modules()
    t = model_cfg.get('type') if hasattr(model_cfg, 'get') else None
    if t is None:
        raise KeyError('model config has no "type"')
    cls = t if isinstance(t, type) else MODELS.get(t)
    if cls is None:
        raise KeyError(f'model type {t!r} is not registered in mmseg.registry.MODELS: import the '
                       f'package that defines it (the config\'s custom_imports)')
    missing = [h for h in _HOOKS if not callable(getattr(cls, h, None))]
    if missing:
        raise TypeError(f'model type {t!r} ({cls.__module__}.{cls.__name__}) declares no '
                        f'{", ".join(missing)} hook: subclass aeroseg.models.OpenVocabSegmentor or '
                        f'add the classmethods (aeroseg/models/base_segmentor.py says what they do)')
    return cls


def weight_fields(model_cfg) -> Dict[str, str]:
    """Role -> dotted key inside ``model_cfg`` of each outside-weight field this config has."""
    return dict(model_class(model_cfg).weight_fields(model_cfg))


def _walk(model_cfg, dotted: str):
    *parents, leaf = dotted.split('.')
    node = model_cfg
    for p in parents:
        node = node[p]
    return node, leaf


def outside_weights(model_cfg) -> Dict[str, Any]:
    """Role -> the value of that field (a file, a tag such as ``'openai'``, or None)."""
    out = {}
    for role, key in weight_fields(model_cfg).items():
        node, leaf = _walk(model_cfg, key)
        out[role] = node.get(leaf)
    return out


def set_outside_weight(model_cfg, role: str, value) -> None:
    """Set the outside-weight field of ``role`` (e.g. ``'vl'`` -> None: random initialisation)."""
    fields = weight_fields(model_cfg)
    if role not in fields:
        raise KeyError(f'this {model_cfg.get("type")} config has no outside weights of role '
                       f'{role!r}; it has {sorted(fields)}')
    node, leaf = _walk(model_cfg, fields[role])
    node[leaf] = value


def clear_outside_weights(model_cfg) -> None:
    """Every outside-weight field to None (weights from a trained checkpoint, or random)."""
    for role in weight_fields(model_cfg):
        set_outside_weight(model_cfg, role, None)

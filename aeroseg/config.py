"""Loading configs at full or mini scale.

``load_config(path, scale='mini')`` reads a full config and applies the mini-world overlay of
``configs/_base_/scale/mini.py``: the same model classes and code paths at small widths (the tiny
CLIP and tiny SAM of ``aeroseg/assets/mini``), the mini dataset of the same name (generated on
first use by :func:`aeroseg.mini.ensure_mini`), image sizes scaled to the mini images and
a short schedule. Which encoder a full config names (ViT-B/16, ViT-L/14, GeoRSCLIP, SAM ViT-L/H,
SAM 2) is kept as far as the mini world allows: every CLIP becomes the tiny CLIP, every SAM the
tiny SAM, every SAM 2 a tiny Hiera of the same class; so at mini scale the rows of Tables 6-7 test
that each variant's code path runs, not the variants' relative strength.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Optional

from mmengine.config import Config

__all__ = ['load_config', 'apply_mini_scale', 'set_data_root', 'choose_scale', 'ScaleError',
           'SCALE_RULE', 'REPO_ROOT', 'MINI_OVERLAY']

REPO_ROOT = Path(__file__).resolve().parents[1]
MINI_OVERLAY = REPO_ROOT / 'configs' / '_base_' / 'scale' / 'mini.py'


# The one default scale of every entry point (benchmarks.run, benchmarks.train, benchmarks.test,
# aeroseg.infer, aeroseg.apis.init_model); each --help quotes it.
SCALE_RULE = ('default: the scale recorded in the checkpoint (every checkpoint the suite writes '
              'records it), else full; only ./run_all.sh passes --scale mini by itself, when no '
              'data root is configured (--data-root or $AEROSEG_DATA)')


class ScaleError(ValueError):
    """An explicit scale contradicting the one a checkpoint records."""


def choose_scale(explicit: Optional[str], recorded: Optional[str] = None,
                 checkpoint: str = 'this checkpoint', flag: str = '--scale {}') -> str:
    """The scale by :data:`SCALE_RULE`. An ``explicit`` scale other than the ``recorded`` one is
    a :class:`ScaleError`: ``"<checkpoint>: this checkpoint is mini scale: pass --scale mini"``."""
    recorded = recorded if recorded in ('full', 'mini') else None
    if explicit is not None and recorded and explicit != recorded:
        raise ScaleError(f'{checkpoint}: this checkpoint is {recorded} scale: pass '
                         f'{flag.format(recorded)}')
    return explicit or recorded or 'full'


def _resolve_assets(node) -> None:
    """Asset paths in the overlay (``pretrained``, ``checkpoint``, ``model_config_dir``) are
    relative to the repo root: made absolute in place."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ('pretrained', 'checkpoint', 'model_config_dir') and isinstance(v, str) \
                    and '/' in v and not os.path.isabs(v):
                node[k] = str(REPO_ROOT / v)
            else:
                _resolve_assets(v)


def set_data_root(cfg: Config, data_root: str) -> None:
    """``data_root`` of every dataloader's dataset (through dataset wrappers)."""
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(loader)
        if not dl:
            continue
        ds = dl.get('dataset')
        while ds is not None and 'dataset' in ds and 'data_root' not in ds:  # wrappers
            ds = ds['dataset']
        if ds is not None:
            ds['data_root'] = data_root


def _dataset_key(cfg: Config) -> str:
    vocab = cfg.model.get('vocabulary', {}) if 'model' in cfg else {}
    key = vocab.get('split') or cfg.get('ov_protocol', {}).get('dataset')
    if not key:
        raise ValueError('cannot tell which dataset this config uses: set model.vocabulary.split')
    return key


def _scale_pipeline(pipeline, m: dict) -> list:
    # a random choice of shortest edges (SAN) scales with the crop: full crop -> the mini crop
    crops = [t['crop_size'][0] for t in pipeline if t['type'] == 'RandomCrop']
    out = []
    for t in pipeline:
        t = dict(t)
        if t['type'] == 'RandomChoiceResize' and crops:
            t['scales'] = [max(1, round(s * m['crop'] / crops[0])) for s in t['scales']]
        elif t['type'] == 'Resize' and 'scale' in t:
            long, short = t['scale']
            t['scale'] = (m['max_side'], m['train_short'] if short <= 384 else m['test_short'])
        elif t['type'] == 'RandomCrop':
            t['crop_size'] = (m['crop'], m['crop'])
        out.append(t)
    return out


def apply_mini_scale(cfg: Config, data_root: Optional[str] = None) -> Config:
    """The mini-world version of a full config (module docstring): the model through its type's
    ``mini_scale`` hook (:mod:`aeroseg.hooks`), data and schedule here."""
    from .hooks import import_modules, model_class
    m = Config.fromfile(str(MINI_OVERLAY))
    _resolve_assets(m._cfg_dict)
    cfg = copy.deepcopy(cfg)
    ds = _dataset_key(cfg)
    import_modules(cfg.get('custom_imports', {}).get('imports', ('aeroseg',)))
    model_class(cfg.model).mini_scale(cfg.model, m)  # the method's own hook (its widths, encoders)
    if cfg.model.get('data_preprocessor') is not None:
        cfg.model.data_preprocessor.size = (m.crop, m.crop)
    # data
    if data_root is None:
        from .mini import ensure_mini
        data_root = str(ensure_mini(ds))
    set_data_root(cfg, data_root)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(loader)
        if not dl:
            continue
        dl.dataset.pipeline = _scale_pipeline(dl.dataset.pipeline, m)
        dl.num_workers = m.num_workers
        dl.persistent_workers = m.num_workers > 0
        if loader == 'train_dataloader':
            dl.batch_size = m.batch_size
    # schedule (a training-free config has none)
    iters = m.iters[ds] if ds in m.iters else m.iters['default']
    full_iters = (cfg.get('train_cfg') or {}).get('max_iters') or iters
    if cfg.get('train_cfg'):
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters
    for s in cfg.get('param_scheduler') or ():
        # phases keep their share of the schedule (a warm-up over 1.5k of 120k: 3 of 200)
        if s.get('begin'):
            s.begin = max(1, round(s.begin * iters / full_iters))
        s.end = iters if s.get('end', full_iters) >= full_iters else \
            max(s.get('begin', 0) + 1, round(s.end * iters / full_iters))
        if 'T_max' in s:
            s.T_max = iters
    if cfg.get('optim_wrapper'):
        cfg.optim_wrapper.optimizer.lr = m.lr
    hooks = cfg.get('default_hooks') or {}
    if 'checkpoint' in hooks:
        cfg.default_hooks.checkpoint.interval = m.checkpoint_interval
    if 'logger' in hooks:
        cfg.default_hooks.logger.interval = m.log_interval
    if 'default_hooks' in cfg:
        cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    if 'env_cfg' in cfg:
        cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.scale = 'mini'
    return cfg


def load_config(path: str, scale: str = 'full', data_root: Optional[str] = None,
                cfg_options: Optional[dict] = None) -> Config:
    """Read ``path``; at ``scale='mini'`` apply the mini overlay; then ``cfg_options``."""
    if scale not in ('full', 'mini'):
        raise ValueError(f"scale must be 'full' or 'mini', got {scale!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config not found: {path!r}')
    cfg = Config.fromfile(path)
    if scale == 'mini':
        cfg = apply_mini_scale(cfg, data_root)
    elif data_root is not None:
        set_data_root(cfg, data_root)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg

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

__all__ = ['load_config', 'apply_mini_scale', 'REPO_ROOT', 'MINI_OVERLAY']

REPO_ROOT = Path(__file__).resolve().parents[1]
MINI_OVERLAY = REPO_ROOT / 'configs' / '_base_' / 'scale' / 'mini.py'


def _resolve(path: str) -> str:
    """Asset paths in the overlay are relative to the repo root."""
    return path if os.path.isabs(path) else str(REPO_ROOT / path)


def _dataset_key(cfg: Config) -> str:
    vocab = cfg.model.get('vocabulary', {}) if 'model' in cfg else {}
    key = vocab.get('split') or cfg.get('ov_protocol', {}).get('dataset')
    if not key:
        raise ValueError('cannot tell which dataset this config uses: set model.vocabulary.split')
    return key


def _scale_pipeline(pipeline, m: dict) -> list:
    out = []
    for t in pipeline:
        t = dict(t)
        if t['type'] == 'Resize' and 'scale' in t:
            long, short = t['scale']
            t['scale'] = (m['max_side'], m['train_short'] if short <= 384 else m['test_short'])
        elif t['type'] == 'RandomCrop':
            t['crop_size'] = (m['crop'], m['crop'])
        out.append(t)
    return out


def apply_mini_scale(cfg: Config, data_root: Optional[str] = None) -> Config:
    """The mini-world version of a full config (module docstring)."""
    m = Config.fromfile(str(MINI_OVERLAY))
    cfg = copy.deepcopy(cfg)
    ds = _dataset_key(cfg)
    model = cfg.model
    # encoders
    if model.get('clip') is not None:
        clip = copy.deepcopy(m.clip)
        clip.pretrained = _resolve(clip.pretrained)
        clip.model_config_dir = _resolve(clip.model_config_dir)
        for k in ('rotations', 'finetune', 'qv_bias', 'dense_residual'):
            if k in model.clip:
                clip[k] = model.clip[k]
        model.clip = clip
    g = model.get('guidance')
    if g is not None:
        tiny = copy.deepcopy(m.sam if g['type'] == 'SAMGuidanceEncoder' else m.sam2)
        if tiny.get('checkpoint'):
            tiny.checkpoint = _resolve(tiny.checkpoint)
        for k in ('frozen', 'last'):
            if k in g:
                tiny[k] = g[k]
        model.guidance = tiny
    model.head.update(m.head)
    if g is None:  # CLIP decoder guidance through the transposed convs: small widths too
        model.head.decoder_guidance_dims = tuple(m.clip_decoder_guidance_dims)
    if model.get('back_projection') is not None:
        model.back_projection.update(m.back_projection)
    model.data_preprocessor.size = (m.crop, m.crop)
    model.update(m.slide)
    # data
    if data_root is None:
        from .mini import ensure_mini
        data_root = str(ensure_mini(ds))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if loader not in cfg:
            continue
        dl = cfg[loader]
        dl.dataset.data_root = data_root
        dl.dataset.pipeline = _scale_pipeline(dl.dataset.pipeline, m)
        dl.num_workers = m.num_workers
        dl.persistent_workers = m.num_workers > 0
        if loader == 'train_dataloader':
            dl.batch_size = m.batch_size
    # schedule
    iters = m.iters[ds] if ds in m.iters else m.iters['default']
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    for s in cfg.param_scheduler:
        s.end = iters
        if 'T_max' in s:
            s.T_max = iters
    cfg.optim_wrapper.optimizer.lr = m.lr
    cfg.default_hooks.checkpoint.interval = m.checkpoint_interval
    cfg.default_hooks.logger.interval = m.log_interval
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
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
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if loader in cfg:
                cfg[loader].dataset.data_root = data_root
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg

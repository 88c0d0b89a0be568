"""Official SED checkpoints (xb534/SED ``model_final.pth``, detectron2 layout) onto :class:`SEDSegmentor` keys.

Upstream layout (``sed/sed_model.py``: the detectron2 backbone is deleted, the CLIP lives in the
predictor): ``sem_seg_head.predictor.clip_model.*`` = the open_clip CLIP (``visual.trunk.*``,
``visual.head.proj.weight``, the text tower), ``sem_seg_head.predictor.transformer.*`` = the
``Aggregator``. Ours: ``clip.clip.*`` (open_clip keys unchanged; packed ``in_proj_*`` attention
and
``head.*`` (:class:`~baselines.sed.head.SEDHead`) with the renames in ``_HEAD_RENAMES``. The
packed ``attn.in_proj_*`` of open_clip's text blocks become the separate ``q/k/v_proj_*`` of
:class:`~aeroseg.models.clip_backbone.SplitQKVAttention`.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping

import torch
from torch import nn

from aeroseg.utils.checkpoint import CheckpointError, load_external_state_dict, load_into

__all__ = ['convert_official_head_state_dict', 'official_sed_to_suite', 'load_official_sed',
           'OFFICIAL_CLIP_PREFIX', 'OFFICIAL_HEAD_PREFIX']

OFFICIAL_CLIP_PREFIX = 'sem_seg_head.predictor.clip_model.'
OFFICIAL_HEAD_PREFIX = 'sem_seg_head.predictor.transformer.'

_HEAD_RENAMES = (
    (re.compile(r'^conv1\.'), 'corr_embed.conv.'),
    (re.compile(r'^decoder([123])\.'), lambda m: f'decoders.{int(m.group(1)) - 1}.'),
    (re.compile(r'^head([012])\.'), r'aux_heads.\1.'),
    # SED's ConvNextBlock -> timm ConvNeXtBlock
    (re.compile(r'\.cnext\.dwconv\.'), '.cnext.conv_dw.'),
    (re.compile(r'\.cnext\.pwconv([12])\.'), r'.cnext.mlp.fc\1.'),
    (re.compile(r'\.attention\.MLP\.'), '.attention.mlp.'),
)


def convert_official_head_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """An upstream ``Aggregator`` state dict (no prefix) in :class:`SEDHead` keys."""
    out = {}
    for k, v in state_dict.items():
        for pat, rep in _HEAD_RENAMES:
            k = pat.sub(rep, k)
        out[k] = v
    return out


def official_sed_to_suite(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The ``model`` dict of an official SED checkpoint in :class:`SEDSegmentor` keys."""
    clip, head, other = {}, {}, []
    for k, v in state_dict.items():
        if k.startswith(OFFICIAL_CLIP_PREFIX):
            k = 'clip.clip.' + k[len(OFFICIAL_CLIP_PREFIX):]
            m = re.match(r'(.+\.attn\.)in_proj_(weight|bias)$', k)
            if m:  # open_clip's packed Q/K/V -> SplitQKVAttention's three parameters
                for name, part in zip('qkv', v.chunk(3)):
                    clip[f'{m[1]}{name}_proj_{m[2]}'] = part
            else:
                clip[k] = v
        elif k.startswith(OFFICIAL_HEAD_PREFIX):
            head[k[len(OFFICIAL_HEAD_PREFIX):]] = v
        else:
            other.append(k)
    if other or not head:
        raise CheckpointError(
            f'official SED checkpoint: expected only keys under {OFFICIAL_CLIP_PREFIX!r} and '
            f'{OFFICIAL_HEAD_PREFIX!r} (xb534/SED model_final.pth), got '
            + (f'{len(other)} others, e.g. {other[:4]}' if other else 'no aggregator keys'))
    clip.update({'head.' + k: v for k, v in convert_official_head_state_dict(head).items()})
    return clip


def load_official_sed(model: nn.Module, path: str) -> None:
    """Load an official SED checkpoint file (weights only) into an :class:`SEDSegmentor`."""
    what = f'official SED checkpoint {path!r}'
    load_into(model, official_sed_to_suite(load_external_state_dict(path, what=what)), what=what)

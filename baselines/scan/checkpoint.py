"""The authors' CS-CLIP in its official key layouts, loaded into a :class:`CLIPDenseBackbone`.

Two files carry it upstream (yongliu20/SCAN@097fbbd ``tools/replace_clip.py``): ``CS_CLIP.pt``
from their open_clip fine-tuning (``{'state_dict': {'module.clip_model.<open_clip key>': ...}}``)
and the released ``SCAN.pth`` (``{'model': {'clip_adapter.clip_model.<open_clip key>': ...}}``,
detectron2). A plain open_clip state dict is accepted too. Keys upstream's code never builds are
dropped (``visual.mask_embedding``: a mask-prompt option SCAN leaves off; ``visual.cxt_decoder.*``
and ``learnable_weight`` of the released SCAN.pth, SCAN issue #13); every other key must fit.
"""
from __future__ import annotations

from typing import Dict

import torch

from aeroseg.utils.checkpoint import CheckpointError, load_external_state_dict

__all__ = ['cs_clip_state_dict', 'load_cs_clip']

_PREFIXES = ('module.clip_model.', 'clip_adapter.clip_model.', 'clip_model.', 'module.')
_UNUSED = ('visual.mask_embedding', 'visual.cxt_decoder.', 'learnable_weight')


def cs_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """open_clip-layout state dict of the CS-CLIP in ``path`` (any of the layouts above)."""
    sd = load_external_state_dict(path, what=f'SCAN CS-CLIP {path!r}')
    for prefix in _PREFIXES:
        inner = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if inner:
            sd = inner
            break
    return {k: v for k, v in sd.items() if not k.startswith(_UNUSED)}


def load_cs_clip(backbone, path: str) -> None:
    """Load the CS-CLIP file into ``backbone`` (a CLIPDenseBackbone of the same architecture)."""
    sd = cs_clip_state_dict(path)
    own = backbone.open_clip_state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [f'{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}'
             for k in own if k in sd and sd[k].shape != own[k].shape]
    if 'logit_scale' in sd and not shape:
        sd['logit_scale'] = sd['logit_scale'].reshape(own['logit_scale'].shape)
    if missing or unexpected or shape:
        raise CheckpointError(
            f'SCAN CS-CLIP {path!r} does not fit {backbone.model_name}: missing {missing[:6]}, '
            f'unexpected {unexpected[:6]}, shape {shape[:4]}. model.cs_clip.pretrained must be the '
            f'authors\' CS_CLIP.pt / SCAN.pth for this CLIP (ViT-B-16), or set model.cs_clip=None '
            f'to ensemble with the original CLIP.')
    backbone.clip.load_state_dict(sd, strict=True)
    backbone.clear_text_cache()

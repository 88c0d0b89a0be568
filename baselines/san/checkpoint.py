"""SAN weights: OpenAI / open_clip CLIP -> mmseg's SAN layout, and official MendelXu/SAN checkpoints.

mmseg's SAN (``MultimodalEncoderDecoder`` parts, which :class:`~baselines.san.SANSegmentor`
builds under the same names) splits the CLIP image tower at ``split`` (9 of 12 for ViT-B/16,
mmseg ``.mim/tools/model_converters/clip2mmseg.py`` ``visual_split``): blocks below it are
``image_encoder.layers.*`` (mmseg ``VisionTransformer``: ``ln1``, ``attn.attn``, ``ln2``,
``ffn.layers.{0.0,1}``), blocks at or above it, ``ln_post`` and ``proj`` are
``decode_head.rec_with_attnbias.*`` (mmcv ``BaseTransformerLayer``: ``norms.{0,1}``,
``attentions.0.attn``, ``ffns.0.layers.{0.0,1}``; ``proj`` a ``Linear``, so transposed), the text
tower is ``text_encoder.*``. :func:`clip_to_san` is our reading of ``clip2mmseg.py`` (which is a
script, not an importable module) for OpenAI and open_clip state dicts (same key layout);
:func:`official_san_to_mmseg` of ``san2mmseg.py`` for checkpoints released by MendelXu/SAN
(``clip_visual_extractor`` / ``clip_rec_head`` / ``side_adapter_network`` / ``ov_classifier``).
"""
from __future__ import annotations

import re
from typing import Dict, Mapping

import torch
from torch import Tensor

__all__ = ['clip_to_san', 'official_san_to_mmseg', 'SAN_CLIP_PREFIXES']

# what a CLIP state dict fills in a SANSegmentor (the rest: side adapter, background embedding)
SAN_CLIP_PREFIXES = ('image_encoder.', 'text_encoder.', 'decode_head.rec_with_attnbias.')

# open_clip / OpenAI residual block -> mmseg VisionTransformer TransformerEncoderLayer
_VIT_BLOCK = {'ln_1': 'ln1', 'attn': 'attn.attn', 'ln_2': 'ln2',
              'mlp.c_fc': 'ffn.layers.0.0', 'mlp.c_proj': 'ffn.layers.1'}
# ... -> mmcv BaseTransformerLayer (RecWithAttnbias layers, CLIPTextEncoder transformer)
_MMCV_BLOCK = {'ln_1': 'norms.0', 'attn': 'attentions.0.attn', 'ln_2': 'norms.1',
               'mlp.c_fc': 'ffns.0.layers.0.0', 'mlp.c_proj': 'ffns.0.layers.1'}
_TEXT_TOP = ('positional_embedding', 'text_projection', 'logit_scale', 'token_embedding',
             'ln_final', 'bg_embed')
# open_clip buffers / JIT-export leftovers that are not weights
_SKIP = ('attn_mask', 'input_resolution', 'context_length', 'vocab_size')


def _block(rest: str, table: Mapping[str, str], key: str) -> str:
    for src, dst in table.items():
        if rest == src or rest.startswith(src + '.'):
            return dst + rest[len(src):]
    raise KeyError(f'unexpected CLIP block parameter {key!r} (expected ln_1, attn, ln_2, mlp.c_fc, '
                   f'mlp.c_proj): is this an OpenAI / open_clip ViT state dict?')


def _visual_common(name: str, v: Tensor, out: Dict[str, Tensor]) -> bool:
    """Stem keys shared by CLIP and official SAN checkpoints; True when handled."""
    if name == 'class_embedding':
        out['image_encoder.cls_token'] = v.reshape(1, 1, -1)
    elif name == 'positional_embedding':
        out['image_encoder.pos_embed'] = v.unsqueeze(0) if v.ndim == 2 else v
    elif name.startswith('conv1.'):
        out['image_encoder.patch_embed.projection.' + name[len('conv1.'):]] = v
    elif name.startswith('ln_pre.'):
        out['image_encoder.' + name] = v
    else:
        return False
    return True


def _text(name: str, v: Tensor, out: Dict[str, Tensor], key: str) -> None:
    m = re.match(r'transformer\.resblocks\.(\d+)\.(.+)', name)
    if m:
        out[f'text_encoder.transformer.{m[1]}.' + _block(m[2], _MMCV_BLOCK, key)] = v
    elif name.split('.')[0] in _TEXT_TOP:
        out['text_encoder.' + name] = v
    else:
        raise KeyError(f'unexpected text-tower key {key!r}')


def _rec(name: str, v: Tensor, out: Dict[str, Tensor], key: str, first: int = 0) -> bool:
    """Recognition-head keys (``resblocks.i`` with i >= ``first``, ``ln_post``, ``proj``)."""
    pre = 'decode_head.rec_with_attnbias.'
    m = re.match(r'(?:transformer\.)?resblocks\.(\d+)\.(.+)', name)
    if m and int(m[1]) >= first:
        out[pre + f'layers.{int(m[1]) - first}.' + _block(m[2], _MMCV_BLOCK, key)] = v
    elif name.startswith('ln_post.'):
        out[pre + name] = v
    elif name == 'proj':
        out[pre + 'proj.weight'] = v.t().contiguous()  # x @ proj -> Linear(weight = proj^T)
    else:
        return False
    return True


def clip_to_san(state_dict: Mapping[str, Tensor], split: int) -> Dict[str, Tensor]:
    """An OpenAI / open_clip CLIP ViT state dict in mmseg's SAN layout.

    ``split``: the number of image blocks in ``image_encoder`` (ViT-B/16: 9, ViT-L/14: 18,
    ``clip2mmseg.py``); the blocks from ``split`` on become ``decode_head.rec_with_attnbias``.
    """
    if 'visual.transformer.resblocks.0.ln_1.weight' not in state_dict:
        raise KeyError('not an OpenAI / open_clip ViT state dict: no '
                       '"visual.transformer.resblocks.0.ln_1.weight" (a timm- or HF-layout CLIP, or '
                       'a checkpoint with a "state_dict" wrapper left on?)')
    out: Dict[str, Tensor] = {}
    for key, v in state_dict.items():
        if key.split('.')[-1] in _SKIP:
            continue
        if key.startswith('visual.'):
            name = key[len('visual.'):]
            m = re.match(r'transformer\.resblocks\.(\d+)\.(.+)', name)
            if _visual_common(name, v, out):
                continue
            if m and int(m[1]) < split:
                out[f'image_encoder.layers.{m[1]}.' + _block(m[2], _VIT_BLOCK, key)] = v
            elif not _rec(name, v, out, key, first=split):
                raise KeyError(f'unexpected image-tower key {key!r}')
        else:
            _text(key, v, out, key)
    return out


def official_san_to_mmseg(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """A MendelXu/SAN checkpoint (``model`` of ``san_vit_b_16.pth``) in mmseg's SAN layout.

    Our reading of mmseg's ``san2mmseg.py``: ``clip_visual_extractor`` -> ``image_encoder``
    (its ``resblocks`` are the blocks below the split), ``clip_rec_head`` ->
    ``decode_head.rec_with_attnbias``, ``side_adapter_network`` (timm ViT ``vit_model``,
    ``fusion_layers.layer_i.input_proj``, ``mask_decoder``) -> ``decode_head.side_adapter_network``
    (``encode_layers``, ``conv_clips.i``), ``ov_classifier`` -> ``text_encoder``; ``criterion``
    buffers (``empty_weight``) are dropped.
    """
    out: Dict[str, Tensor] = {}
    sa = 'decode_head.side_adapter_network.'
    timm_block = {'norm1': 'ln1', 'attn.qkv.weight': 'attn.attn.in_proj_weight',
                  'attn.qkv.bias': 'attn.attn.in_proj_bias', 'attn.proj': 'attn.attn.out_proj',
                  'norm2': 'ln2', 'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1'}
    for key, v in state_dict.items():
        head, _, name = key.partition('.')
        if key.split('.')[-1] in _SKIP or head == 'criterion':
            continue
        if head == 'clip_visual_extractor':
            m = re.match(r'resblocks\.(\d+)\.(.+)', name)
            if m:
                out[f'image_encoder.layers.{m[1]}.' + _block(m[2], _VIT_BLOCK, key)] = v
            elif not _visual_common(name, v, out):
                raise KeyError(f'unexpected SAN key {key!r}')
        elif head == 'clip_rec_head':
            if not _rec(name, v, out, key):
                raise KeyError(f'unexpected SAN key {key!r}')
        elif head == 'ov_classifier':
            _text(name, v, out, key)
        elif head == 'side_adapter_network':
            m = re.match(r'vit_model\.blocks\.(\d+)\.(.+)', name)
            f = re.match(r'fusion_layers\.layer_(\d+)\.input_proj\.(\d)\.(.+)', name)
            if m:
                out[sa + f'encode_layers.{m[1]}.' + _block(m[2], timm_block, key)] = v
            elif name == 'vit_model.pos_embed':
                out[sa + 'pos_embed'] = v
            elif name.startswith('vit_model.patch_embed.proj.'):
                out[sa + 'patch_embed.projection.' + name.rsplit('.', 1)[-1]] = v
            elif name in ('query_embed', 'query_pos_embed') or name.startswith('mask_decoder.'):
                out[sa + name] = v
            elif f:
                # official fusion layer_i feeds side block i; mmseg's conv_clips are in the order
                # of fusion_index, which is [0, 1, 2, 3] in every released config
                out[sa + f'conv_clips.{f[1]}.' + ('0.' if f[2] == '0' else '1.conv.') + f[3]] = v
            else:
                raise KeyError(f'unexpected SAN key {key!r}')
        else:
            raise KeyError(f'unexpected SAN key {key!r}: expected clip_visual_extractor, '
                           f'clip_rec_head, side_adapter_network, ov_classifier or criterion')
    return out

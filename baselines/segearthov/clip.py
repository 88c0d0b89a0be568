"""SegEarth-OV's CLIP image path: the suite's CLIP with SegEarth's last block.

Facts from likyoo/SegEarth-OV (commit in ``tests/golden/segearthov/README.md``), bundled
``open_clip/transformer.py`` (``VisionTransformer.forward`` with ``model_type='SegEarth'``,
``ignore_residual=True``, ``output_cls_token=True``, and ``custom_attn``)::

    x = ln_pre(conv1(img) + [CLS] + pos-embed)    # pos-embed resized (bicubic, "+0.1" scale factor)
                                                  # only when the token grid is not CLIP's native one
    x = blocks 0 .. L-2 (x)                       # unchanged
    t = ln_1(x)                                   # the last block: attention only, no residual,
    q, k, v = in_proj(t)                          # no FFN
    a = softmax(q q^T s) + softmax(k k^T s) + softmax(v v^T s)   # s = head_dim ** -0.5, per head
    out = ln_post(out_proj(a v)) @ proj           # on every token, the CLS token included
    cls, dense = out[:, 0], out[:, 1:]

open_clip 3.3.0 blocks are batch-first; the official code is sequence-first (L, N, D). The maths
is ported, nothing is imported. Embedding, pos-embed resize, weight loading and text prompts are
:class:`aeroseg.models.clip_backbone.CLIPDenseBackbone`'s.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmseg.registry import MODELS

from aeroseg.models.clip_backbone import CLIPDenseBackbone

__all__ = ['SegEarthCLIP', 'segearth_attention', 'SEGEARTH_PIXEL_MEAN', 'SEGEARTH_PIXEL_STD']

# SegEarth-OV segearth_segmentor.py: SegDataPreProcessor(mean=[122.771, 116.746, 104.094],
# std=[68.501, 66.632, 70.323], bgr_to_rgb=True) -- OpenAI CLIP's statistics rounded to 3 decimals
# (0..255 units); kept exactly so inputs match the official ones bit for bit.
SEGEARTH_PIXEL_MEAN = (122.771, 116.746, 104.094)
SEGEARTH_PIXEL_STD = (68.501, 66.632, 70.323)


def _qkv(attn: nn.Module, x: torch.Tensor):
    """Q, K, V projections of the suite's SplitQKVAttention (or a packed nn.MultiheadAttention)."""
    if hasattr(attn, 'q_proj_weight') and attn.q_proj_weight is not None:
        bq, bk, bv = (attn.q_proj_bias, attn.k_proj_bias, attn.v_proj_bias)
        return (F.linear(x, attn.q_proj_weight, bq), F.linear(x, attn.k_proj_weight, bk),
                F.linear(x, attn.v_proj_weight, bv))
    return F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)


def segearth_attention(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SegEarth's self-self attention, batch-first: (B, L, W) already ``ln_1``-normalised -> (B, L, W).

    ``(softmax(q q^T s) + softmax(k k^T s) + softmax(v v^T s)) v``, heads as in
    ``nn.MultiheadAttention``, then ``out_proj`` (official ``custom_attn``, ``model_type='SegEarth'``).
    """
    b, n, w = x.shape
    heads = attn.num_heads
    hd = w // heads
    scale = hd ** -0.5
    q, k, v = (t.reshape(b, n, heads, hd).transpose(1, 2) for t in _qkv(attn, x))  # (B, h, L, hd)
    weights = sum(torch.softmax(torch.matmul(t, t.transpose(-2, -1)) * scale, dim=-1) for t in (q, k, v))
    out = torch.matmul(weights, v).transpose(1, 2).reshape(b, n, w)
    return attn.out_proj(out)


@MODELS.register_module()
class SegEarthCLIP(CLIPDenseBackbone):
    """Frozen open_clip ViT whose last block is SegEarth-OV's (module docstring).

    Args:
        model_name / pretrained / model_config_dir / cache_dir: as :class:`CLIPDenseBackbone`
            (SegEarth-OV: ``'ViT-B-16'`` with OpenAI weights).
        quick_gelu: OpenAI CLIP needs QuickGELU; open_clip 3.3.0 only warns when it is missing,
            so the default forces it. ``None``: the tag's / architecture's own setting (e.g. the
            mini world's GELU CLIP).
        pixel_mean / pixel_std: 0..255 units; default SegEarth-OV's preprocessor numbers.
            ``None``: open_clip's statistics of the model.
        pos_scale_offset: 0.1 (official ``interpolate_pos_encoding``); ``None``: CAT-Seg's resize.

    Input to :meth:`encode_dense`: CLIP-normalised crops whose sides are multiples of the patch
    size, at their own size (no resize: SegEarth-OV feeds 224 crops to a 224 CLIP).
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 pretrained: Optional[str] = 'openai',
                 quick_gelu: Optional[bool] = True,
                 pixel_mean: Optional[Sequence[float]] = SEGEARTH_PIXEL_MEAN,
                 pixel_std: Optional[Sequence[float]] = SEGEARTH_PIXEL_STD,
                 pos_scale_offset: Optional[float] = 0.1,
                 model_config_dir: Optional[str] = None,
                 cache_dir: Optional[str] = None,
                 init_cfg=None):
        super().__init__(model_name=model_name, pretrained=pretrained, tap_indices=(), rotations=(0,),
                         finetune='frozen', quick_gelu=quick_gelu, model_config_dir=model_config_dir,
                         pixel_mean=pixel_mean, pixel_std=pixel_std, cache_text=True,
                         cache_dir=cache_dir, init_cfg=init_cfg)
        # the native input (224 for ViT-B/16): crops of this size need no pos-embed resize
        self.image_size = tuple(self.clip.visual.image_size)
        self.grid = self.native_grid
        self.pos_scale_offset = pos_scale_offset
        self.eval()

    def normalize_only(self, img: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 -> CLIP-normalised, at the input size (SegDataPreProcessor's ``(x - mean) / std``)."""
        return (img - self.pixel_mean) / self.pixel_std

    def encode_dense(self, x: torch.Tensor, with_cls: bool = True) -> Dict[str, torch.Tensor]:
        """Normalised crops (N,3,H,W) -> dict(dense=(N,D,h,w), cls=(N,D), taps=[]), unnormalised.

        Both outputs come from SegEarth's last block (``cls`` is the class token of the same
        modified path, as the official ``output_cls_token=True``).
        """
        v = self.clip.visual
        tokens, (gh, gw) = self._embed(x, pos_scale_offset=self.pos_scale_offset)
        batch_first = v.transformer.batch_first
        blocks = v.transformer.resblocks
        h = tokens if batch_first else tokens.transpose(0, 1)
        for blk in blocks[:-1]:
            h = blk(h)
        h = h if batch_first else h.transpose(0, 1)
        last = blocks[-1]
        out = v.ln_post(segearth_attention(last.attn, last.ln_1(h))) @ v.proj
        n = x.shape[0]
        return {'cls': out[:, 0], 'dense': out[:, 1:].reshape(n, gh, gw, -1).permute(0, 3, 1, 2),
                'taps': []}

    def forward(self, img: torch.Tensor, with_cls: bool = True) -> Dict[str, torch.Tensor]:
        """RGB 0..255 (B,3,H,W), sides multiples of the patch, at their own size -> :meth:`encode_dense`."""
        return self.encode_dense(self.normalize_only(img), with_cls=with_cls)

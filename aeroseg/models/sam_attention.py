"""SAM's image-encoder attention as one fused ``F.scaled_dot_product_attention`` call.

segment_anything's ``image_encoder.Attention.forward`` computes, per head,
``softmax((q * scale) @ k^T + rel_h + rel_w) @ v`` with the decomposed relative positions
(``add_decomposed_rel_pos``: ``rel_h = einsum(q, Rh)``, ``rel_w = einsum(q, Rw)`` on the UNSCALED
q, broadcast over the key rows / columns). :class:`FusedSAMAttention` computes the same sum as an
additive ``attn_mask`` and hands the rest to ``scaled_dot_product_attention`` (default scale
head_dim^-0.5 = SAM's ``self.scale``), so the explicit (HW x HW) score tensor, its softmax copy
and the matmul against v are one kernel. Same maths; results agree to float rounding
(tests/models/test_sam_attention.py: forward and gradients of the fine-tuned variant).

The official checkpoint loads unchanged: the module keeps SAM's parameters and names
(``qkv``, ``proj``, ``rel_pos_h``, ``rel_pos_w``); :func:`fuse_sam_attention` only swaps the class
of the encoder's ``Attention`` instances. ``FusedSAMAttention.fused`` (class switch, default True)
False runs upstream's explicit forward (``python -m benchmarks.speed`` measures both).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segment_anything.modeling.image_encoder import Attention, get_rel_pos

from aeroseg.utils.modules import swap_module_class

__all__ = ['FusedSAMAttention', 'fuse_sam_attention']


class FusedSAMAttention(Attention):
    """segment_anything ``Attention`` whose forward runs as one fused attention (module docstring)."""

    fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return super().forward(x)
        B, H, W, _ = x.shape
        heads = self.num_heads
        # (3, B, heads, H*W, head_dim), as upstream before its reshape to (B*heads, ...)
        q, k, v = self.qkv(x).reshape(B, H * W, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = None
        if self.use_rel_pos:
            r_q = q.reshape(B * heads, H, W, -1)
            rel_h = torch.einsum('bhwc,hkc->bhwk', r_q, get_rel_pos(H, H, self.rel_pos_h))
            rel_w = torch.einsum('bhwc,wkc->bhwk', r_q, get_rel_pos(W, W, self.rel_pos_w))
            bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(B, heads, H * W, H * W)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.view(B, heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(out)


def fuse_sam_attention(module: nn.Module) -> int:
    """Turn every segment_anything ``Attention`` inside ``module`` into :class:`FusedSAMAttention`
    (in place, parameters untouched); returns how many were turned."""
    return swap_module_class(module, Attention, FusedSAMAttention)

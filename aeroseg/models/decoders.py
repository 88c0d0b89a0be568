"""Upsampling decoder blocks for class-wise cost features.

* :class:`UpsampleBlock` - CAT-Seg's ``Up`` (cvlab-kaist/CAT-Seg
  cat_seg/modeling/transformer/model.py): 2x transposed conv to ``in - guidance`` channels,
  concat the (projected) guidance map, two 3x3 conv + GroupNorm + ReLU (``DoubleConv``).
* :class:`AttentionUpsampleBlock` - OVRS's attention-aware ``Up`` (caoql98/OVRS
  cat_seg/modeling/transformer/model_ours.py), also AerOSeg's decoder: the class-averaged
  upsampled features give a channel attention (global average pool + 1x1 conv to the guidance
  width) and a spatial attention (channel mean + 1x1 conv); the guidance becomes
  ``ca * g + sa * g + g`` before the concat. Upstream applies no sigmoid to either attention.

Both take (B, C, T, H, W) class-wise features and a guidance map (B, Cg, 2H, 2W) shared by the T
classes, and return (B, C_out, T, 2H, 2W). Parameter names follow upstream
(``up``, ``conv.double_conv.*``, ``cconv``, ``sconv``).

``UpsampleBlock.guidance_once`` (class switch, default True): upstream concatenates the guidance
to each class's map and convolves the (B*T, C, 2H, 2W) result; the first 3x3 convolution is
linear, so its guidance part is computed once per image and added to every class (the same maths,
float rounding apart; ``tests/models/test_guidance_once.py``). False = upstream's concatenation.
"""
from typing import Optional

import torch
import torch.nn as nn

from .shared_guidance import add_per_image

__all__ = ['DoubleConv', 'UpsampleBlock', 'AttentionUpsampleBlock', 'DECODER_BLOCKS']


class DoubleConv(nn.Module):
    """(3x3 conv, no bias -> GroupNorm(C // 16) -> ReLU) x 2 (upstream ``DoubleConv``; its
    second GroupNorm is sized by ``mid_channels``, which equals ``out_channels`` here)."""

    def __init__(self, in_channels: int, out_channels: int, gn_group_width: int = 16):
        super().__init__()
        if out_channels % gn_group_width or out_channels < gn_group_width:
            raise ValueError(f'DoubleConv: out_channels {out_channels} must be a positive multiple of '
                             f'{gn_group_width} (GroupNorm(out_channels // {gn_group_width}) upstream)')
        groups = out_channels // gn_group_width
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class UpsampleBlock(nn.Module):
    """CAT-Seg decoder block: ConvTranspose2d(in, in - guidance, 2, 2) -> concat guidance ->
    DoubleConv(in, out). ``guidance_channels`` = 0 means no guidance."""

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int = 0):
        super().__init__()
        if not 0 <= guidance_channels < in_channels:
            raise ValueError(f'{type(self).__name__}: guidance_channels {guidance_channels} must be in '
                             f'[0, in_channels={in_channels})')
        self.guidance_channels = guidance_channels
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def _check(self, x, guidance):
        if (guidance is None) != (self.guidance_channels == 0):
            raise ValueError(f'{type(self).__name__}: built with guidance_channels={self.guidance_channels} '
                             f'but got guidance={"None" if guidance is None else tuple(guidance.shape)}')
        if guidance is not None and (guidance.shape[0] != x.shape[0] or guidance.shape[1] != self.guidance_channels
                                     or guidance.shape[-2:] != (2 * x.shape[-2], 2 * x.shape[-1])):
            raise ValueError(f'{type(self).__name__}: guidance {tuple(guidance.shape)} must be '
                             f'(B={x.shape[0]}, {self.guidance_channels}, {2 * x.shape[-2]}, {2 * x.shape[-1]})')

    def transform_guidance(self, up: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """Hook for subclasses: ``up`` is (B, T, C, 2H, 2W), guidance (B, Cg, 2H, 2W)."""
        return guidance

    guidance_once = True

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C_in, T, H, W); guidance: (B, Cg, 2H, 2W) or None -> (B, C_out, T, 2H, 2W)."""
        B, C, T, H, W = x.shape
        self._check(x, guidance)
        y = self.up(x.transpose(1, 2).reshape(B * T, C, H, W))
        if guidance is None:
            y = self.conv(y)
        else:
            guidance = self.transform_guidance(y.view(B, T, *y.shape[1:]), guidance)
            if self.guidance_once:  # conv(cat[y, g]) = conv_y(y) + conv_g(g), conv_g once per image
                first, rest = self.conv.double_conv[0], self.conv.double_conv[1:]
                cy = y.shape[1]
                y = first._conv_forward(y, first.weight[:, :cy], None)
                y = rest(add_per_image(y, first._conv_forward(guidance, first.weight[:, cy:], None), B))
            else:
                g = guidance.unsqueeze(1).expand(B, T, *guidance.shape[1:]).reshape(B * T, *guidance.shape[1:])
                y = self.conv(torch.cat([y, g], dim=1))
        return y.view(B, T, *y.shape[1:]).transpose(1, 2)


class AttentionUpsampleBlock(UpsampleBlock):
    """OVRS / AerOSeg attention-aware decoder block (see module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int):
        super().__init__(in_channels, out_channels, guidance_channels)
        if guidance_channels == 0:
            raise ValueError('AttentionUpsampleBlock: the attention acts on the guidance map, so '
                             'guidance_channels must be > 0 (use UpsampleBlock without guidance)')
        self.cconv = nn.Conv2d(in_channels - guidance_channels, guidance_channels, kernel_size=1)
        self.sconv = nn.Conv2d(1, 1, kernel_size=1)

    def transform_guidance(self, up: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        a = up.mean(dim=1)                                         # class average (B, C, 2H, 2W)
        ca = self.cconv(a.mean(dim=(2, 3), keepdim=True))          # channel attention (B, Cg, 1, 1)
        sa = self.sconv(a.mean(dim=1, keepdim=True))               # spatial attention (B, 1, 2H, 2W)
        return ca * guidance + sa * guidance + guidance


DECODER_BLOCKS = {'catseg': UpsampleBlock, 'ovrs': AttentionUpsampleBlock}

"""SCAN's own blocks (yongliu20/SCAN@097fbbd), written from the official code's description.

Semantic integration (``scan/frequency.py``, ``scan/ovseg_model.py`` ``SCAN.forward``)::

    original CLIP tokens of layers 6 / 9 / 12 on the 14 x 14 grid (B, 768, 14, 14)
      -> LFM with sigma 9 / 7 / 3 (one LFM shared by the three layers)
      -> tokens of the three layers concatenated (B, 3 * 196, 768) -> SIProjection 768 -> 512
    query class embeddings (B, Q, 512) -> CrossAttentionStack (5 x MHA, queries -> those tokens)
      -> + learnable_weight (init 0.1) * normalised CLIP image embedding
      -> SeqOneEncoder (5-layer nn.TransformerEncoder run on each query alone: sequence length 1)

Contextual shift at test (``clip_adapter/adapter.py`` ``MaskFormerClipAdapter``,
``open_clip_training/src/open_clip/transformer.py`` ``VisionTransformer.forward(bg_add_cls=True)``):
each mask proposal above ``mask_thr`` is cropped to its box (background filled with the CLIP mean,
:func:`crop_with_mask`), resized to 224 and encoded by the (CS-)CLIP; after blocks 1 / 3 / 5
(1-based) a share ``replace_ratio`` of the background tokens (patches with no mask pixel) is
replaced by the original CLIP's class token of that block on the whole image
(:func:`encode_with_contextual_shift`). Upstream draws them with the global ``random.sample``;
here a ``random.Random(seed)`` per forward draws them in the same order (layer, then crop), so a
seeded upstream run and ours pick the same tokens.

Attribute names follow the official modules (``conv1`` / ``conv2``, ``fc1`` / ``fc2``,
``multiattn`` / ``ln``), so official state dicts load unchanged.
"""
from __future__ import annotations

import random
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['LFM', 'SIProjection', 'CrossAttentionStack', 'SeqOneEncoder', 'SemanticIntegration',
           'mask_boxes',
           'crop_with_mask', 'clip_layer_outputs', 'encode_with_contextual_shift']


class LFM(nn.Module):
    """Frequency filter of ``scan/frequency.py``: FFT2, times (1 - Gaussian) centred at (h // 2,
    w // 2) of the unshifted spectrum, two 1x1 convs (ReLU between) over [real, imag], inverse
    FFT (real part), residual. ``make_gaussian``'s hard-coded ``.cuda()`` is dropped (the
    Gaussian follows the input's device)."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * num_channels, 2 * num_channels, kernel_size=1)
        self.conv2 = nn.Conv2d(2 * num_channels, 2 * num_channels, kernel_size=1)

    @staticmethod
    def gaussian(height: int, width: int, sigma: float, device=None) -> Tensor:
        yv, xv = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                                torch.arange(width, device=device, dtype=torch.float32),
                                indexing='ij')
        g = torch.exp(-((yv - height // 2) ** 2 + (xv - width // 2) ** 2) / (2 * sigma ** 2))
        return g[None, None]

    def forward(self, x: Tensor, sigma: float) -> Tensor:
        h, w = x.shape[-2:]
        x = x.float()
        y = torch.fft.fft2(x) * (1 - self.gaussian(h, w, sigma, x.device))
        y = self.conv2(F.relu(self.conv1(torch.cat([y.real, y.imag], dim=1))))
        real, imag = torch.chunk(y.float(), 2, dim=1)
        return x + torch.fft.ifft2(torch.complex(real, imag), s=(h, w)).real.float()


class SIProjection(nn.Module):
    """``scan/frequency.py`` ``MLP``: two linears, no activation (CLIP width -> SCAN_DIM)."""

    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, output_dim)
        self.fc2 = nn.Linear(output_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x))


class CrossAttentionStack(nn.Module):
    """``scan/frequency.py`` ``CA``: ``num`` residual cross-attentions (8 heads, batch-first) from
    the queries to the CLIP tokens, a LayerNorm after each but the last."""

    def __init__(self, input_dim: int, num: int = 5, num_heads: int = 8):
        super().__init__()
        self.multiattn = nn.ModuleList(
            nn.MultiheadAttention(input_dim, num_heads, batch_first=True) for _ in range(num))
        self.ln = nn.ModuleList(nn.LayerNorm(input_dim) for _ in range(num - 1))

    def forward(self, tgt: Tensor, memory: Tensor) -> Tensor:
        for i, attn in enumerate(self.multiattn):
            tgt = tgt + attn(tgt, memory, memory)[0]
            if i < len(self.ln):
                tgt = self.ln[i](tgt)
        return tgt


class SeqOneEncoder(nn.Module):
    """``SCAN.from_config``'s ``lightweight_transformer``: ``nn.TransformerEncoder`` of
    ``num_layers`` default ``nn.TransformerEncoderLayer(d_model, nhead, batch_first=True)``
    (FFN 2048, dropout 0.1, post-norm), applied to (B, Q, D) with every query as its own
    sequence of length 1 (upstream flattens to (B * Q, 1, D)): self-attention sees only itself."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_layers: int = 5,
                 dim_feedforward: int = 2048):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead, batch_first=True,
                                           dim_feedforward=dim_feedforward)
        # enable_nested_tensor only matters for padding masks (none here); off avoids its warning
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)

    def forward(self, x: Tensor) -> Tensor:
        b, q, d = x.shape
        return self.encoder(x.reshape(b * q, 1, d)).reshape(b, q, d)


class SemanticIntegration(nn.Module):
    """The semantic integration of ``SCAN.forward`` (``scan/ovseg_model.py`` L206-236): the
    official module names (``LFM``, ``oriclip_mlp``, ``fusion_decoder``,
    ``lightweight_transformer``, ``learnable_weight``) under one module.

    Args:
        clip_width: width of the original CLIP's tokens (CLIP_VISION_DIM 768).
        layers / sigmas: the CLIP layers (1-based) and their LFM sigma ([6, 9, 12] / [9, 7, 3]).
        dim: SCAN_DIM 512; num_ca / num_encoder: 5 / 5; num_heads 8; ffn: the encoder layers'
            FFN (torch's default 2048, which upstream keeps); cls_weight_init 0.1.
    """

    def __init__(self, clip_width: int, layers: Sequence[int] = (6, 9, 12),
                 sigmas: Sequence[float] = (9, 7, 3), dim: int = 512, num_ca: int = 5,
                 num_encoder: int = 5, num_heads: int = 8, ffn: int = 2048,
                 cls_weight_init: float = 0.1):
        super().__init__()
        self.layers = tuple(int(d) for d in layers)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.LFM = LFM(clip_width)
        self.oriclip_mlp = SIProjection(clip_width, dim)
        self.fusion_decoder = CrossAttentionStack(dim, num_ca, num_heads)
        self.lightweight_transformer = SeqOneEncoder(dim, num_heads, num_encoder, ffn)
        self.learnable_weight = nn.Parameter(torch.tensor([float(cls_weight_init)]))

    def memory(self, clip_out: Dict[str, Tensor]) -> Tensor:
        """(B, len(layers) * g * g, dim): LFM-filtered tokens of the layers, concatenated, projected
        (``clip_out`` from :func:`clip_layer_outputs`)."""
        feats = []
        for layer, sigma in zip(self.layers, self.sigmas):
            t = clip_out['tokens'][layer]  # (B, g * g, W)
            b, n, c = t.shape
            g = int(round(n ** 0.5))
            f = self.LFM(t.transpose(1, 2).reshape(b, c, g, g), sigma=sigma)
            feats.append(f.flatten(2).transpose(1, 2))
        return self.oriclip_mlp(torch.cat(feats, dim=1))

    def forward(self, queries: Tensor, memory: Tensor, clip_embed: Tensor) -> Tensor:
        """Query embeddings (B, Q, dim) of one decoder layer, integrated."""
        q = self.fusion_decoder(queries, memory)
        cls = F.normalize(clip_embed, dim=-1)[:, None]
        return self.lightweight_transformer(q + self.learnable_weight * cls)


# ---------------------------------------------------------------------- masked crops
def mask_boxes(masks: Tensor) -> Tensor:
    """(K, H, W) bool -> (K, 4) float boxes x1, y1, x2 + 1, y2 + 1 (detectron2
    ``BitMasks.get_bounding_boxes``, which upstream uses); zeros for an empty mask."""
    boxes = masks.new_zeros(masks.shape[0], 4, dtype=torch.float32)
    x_any, y_any = masks.any(dim=1), masks.any(dim=2)
    for i in range(masks.shape[0]):
        xs, ys = torch.where(x_any[i])[0], torch.where(y_any[i])[0]
        if len(xs) and len(ys):
            boxes[i] = torch.stack([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]).float()
    return boxes


def _expand_box(box: Sequence[float], ratio: float) -> List[int]:
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, w, h = 0.5 * (x1 + x2), 0.5 * (y1 + y2), (x2 - x1) * ratio, (y2 - y1) * ratio
    return [int(v) for v in (cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h)]


def crop_with_mask(image: Tensor, mask: Tensor, box: Sequence[float],
                   fill: Sequence[float] = (0., 0., 0.), expand_ratio: float = 1.0
                   ) -> Tuple[Tensor, Tensor]:
    """``clip_adapter/utils.py`` ``crop_with_mask``: the (expanded) box of (C, H, W) ``image``,
    pixels outside ``mask`` (H, W) replaced by ``fill``; returns (region, mask (1, h, w))."""
    l, t, r, b = _expand_box(box, expand_ratio)
    _, h, w = image.shape
    l, t, r, b = max(l, 0), max(t, 0), min(r, w), min(b, h)
    m = mask[None, t:b, l:r]
    fill_t = torch.tensor(list(fill), dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return image[:, t:b, l:r] * m + (1 - m) * fill_t, m


# ---------------------------------------------------------------------- CLIP passes
def _blocks(visual) -> Tuple[List[nn.Module], bool]:
    return list(visual.transformer.resblocks), bool(getattr(visual.transformer, 'batch_first', True))


def _embed(visual, x: Tensor) -> Tensor:
    """Patch embedding + class token + positional embedding + ln_pre at the native grid
    (open_clip's ``VisionTransformer.forward`` up to the blocks), batch-first (N, 1 + L, W)."""
    x = visual.conv1(x).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    return visual.ln_pre(visual.patch_dropout(x))


def _run(blk: nn.Module, x: Tensor, batch_first: bool) -> Tensor:
    return blk(x) if batch_first else blk(x.transpose(0, 1)).transpose(0, 1)


def _pool(visual, x: Tensor) -> Tensor:
    return visual.ln_post(x[:, 0]) @ visual.proj


def clip_layer_outputs(visual, x: Tensor) -> Dict[str, Tensor]:
    """The original CLIP's pass of ``VisionTransformer.forward(get_embedding=True)``: ``tokens``
    (depth + 1, B, L, W) after ln_pre (0) and after each block (1..depth), class token excluded;
    ``cls`` (depth + 1, B, W) the class token at the same points; ``embed`` (B, D) the image
    embedding (ln_post on the class token, @ proj; upstream's ``final_cls_token``)."""
    blocks, bf = _blocks(visual)
    h = _embed(visual, x)
    outs = [h]
    for blk in blocks:
        h = _run(blk, h, bf)
        outs.append(h)
    stacked = torch.stack(outs)
    return dict(tokens=stacked[:, :, 1:], cls=stacked[:, :, 0], embed=_pool(visual, h))


def encode_with_contextual_shift(visual, regions: Tensor, region_masks: Tensor,
                                 cls_tokens: Tensor, image_index: Tensor, ratio: float,
                                 layers: Sequence[int], rng: Optional[random.Random]) -> Tensor:
    """(CS-)CLIP image embeddings (N, D) of masked crops with the contextual shift.

    ``regions`` (N, 3, S, S) normalised crops, ``region_masks`` (N, 1, S, S) their binary masks;
    a patch is foreground when any of its pixels is (average pool over the patch, ceil). After
    each block d (1-based) in ``layers``, ``int(ratio * n_bg)`` background tokens of crop n drawn
    by ``rng.sample`` are set to ``cls_tokens[d, image_index[n]]`` (the original CLIP's class
    token after block d on crop n's image; upstream uses image 0 of its batch of one).
    ``ratio == 0`` or ``rng is None`` with no layers is the plain CLIP forward."""
    blocks, bf = _blocks(visual)
    patch = visual.conv1.kernel_size
    fg = torch.ceil(F.avg_pool2d(region_masks.float(), patch, stride=patch)).flatten(1) > 0
    layers = set(int(d) for d in layers) if ratio > 0 else set()
    if layers and rng is None:
        raise ValueError('contextual shift with replace_ratio > 0 needs a random.Random (seed)')
    h = _embed(visual, regions)
    for d, blk in enumerate(blocks, start=1):
        h = _run(blk, h, bf)
        if d not in layers:
            continue
        h = h.clone()
        for n in range(h.shape[0]):
            bg = torch.nonzero(~fg[n])[:, 0]
            picked = rng.sample(list(range(bg.numel())), int(ratio * bg.numel()))
            if picked:
                h[n, 1 + bg[picked]] = cls_tokens[d, image_index[n]].to(h.dtype)
    return _pool(visual, h)

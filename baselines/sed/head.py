"""SED's gradual fusion decoder with category early rejection (xb534/SED ``sed/modeling/transformer/model.py``).

Call graph of :meth:`SEDHead.forward` (upstream ``Aggregator.forward`` / ``conv_decoder`` /
``fast_conv_decoder``; B images, T classes, P templates, cost map h x w = 1/32 of the CLIP input)::

    corr (B, P, T, h, w)          cosine cost volume (aeroseg.models.cost_volume, R = 1)
      ├─ corr_embed: 7x7 conv P -> hidden per class (CorrelationEmbedding = Aggregator.conv1)
      ├─ corr guidance: ConvTranspose x2 + ReLU, chained P -> g0 -> g1 -> g2 (2h, 4h, 8h)
      ├─ decoder guidance: res4 / res3 / res2 (detached), 3x3 conv + ReLU -> g0 / g1 / g2
      ├─ head0 on the detached embedding ──> aux logits at h
      ├─ decoder1: SEDUp  (ConvNeXt block k9 -> class attention -> ConvT x2, concat guidance +
      │            corr guidance -> DoubleConv) ──> head1 (detached) ──> aux at 2h
      ├─ decoder2 ──> head2 (detached) ──> aux at 4h
      └─ decoder3 ──> head ──> logits at 8h (= 1/4 of the CLIP input)

Returns ``[logits, aux_h, aux_2h, aux_4h]`` (upstream order ``corr_embed, mask_aux, mask_aux0,
mask_aux1``). Fast inference (``TEST.FAST_INFERENCE``, ``TOPK``): at each of head0 / head1 /
head2 the classes that are among the ``topk`` best at no pixel are dropped before the next stage;
dropped classes get the logit ``REJECTED_LOGIT`` (sigmoid exactly 0, upstream's zero score).

Reused blocks (identical computations, golden-tested against upstream): ``CorrelationEmbedding``
(``conv1``), ``ClassRefinement`` with ``pad_len=0`` and no guidance (``ClassTransformerLayer``:
SED's ``TEXT_GUIDANCE_DIM`` is 0), ``DoubleConv``, timm's ``ConvNeXtBlock`` (SED's
``ConvNextBlock(dim, kernel, 0.0, 1.0)``: depthwise k x k, LayerNorm eps 1e-6, Linear 4x, GELU,
Linear, layer scale). Differences from upstream: none in the computation; fast inference takes
any batch size (upstream indexes ``(B T)`` rows with a length-T mask, i.e. B = 1 only, and calls
``.cuda()``): the kept classes are the union over the batch, as upstream's ``bincount`` over the
flattened batch.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from timm.models.convnext import ConvNeXtBlock

from aeroseg.models.cost_volume import CorrelationEmbedding
from aeroseg.models.decoders import DoubleConv
from aeroseg.models.refinement import ClassRefinement

__all__ = ['SEDHead', 'SEDUp', 'topk_valid_classes', 'REJECTED_LOGIT']

REJECTED_LOGIT = -1e4  # sigmoid(-1e4) == 0 in fp32 / fp16: upstream's zero score of rejected classes


def topk_valid_classes(mask: torch.Tensor, topk: int) -> torch.Tensor:
    """Upstream ``get_valid_idx_from_mask``: (B, T, H, W) logits -> (T,) bool, True for the
    classes ranked in the top ``topk`` at some pixel of some image."""
    T = mask.shape[1]
    order = torch.argsort(mask, dim=1, descending=True)[:, :topk].reshape(-1)
    return torch.bincount(order, minlength=T) > 0


class SEDUp(nn.Module):
    """One gradual-fusion stage (upstream ``Up`` with ``cnext_type='V1'``).

    ConvNeXt block (kernel ``kernel_size``, layer scale 1.0) on every class map -> class
    attention (linear, ``num_heads``, pooled by ``pooling_size``) -> ConvTranspose2d(in,
    in - g, 2, 2) -> concat the projected guidance (g) and the corr guidance (g) ->
    DoubleConv(in + g, out). Input (B*T, in, H, W) -> (B*T, out, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int, num_heads: int = 4,
                 kernel_size: int = 9, attention_type: str = 'linear', pooling_size=(2, 2),
                 test_pooling_size=(1, 1)):
        super().__init__()
        if not 0 < guidance_channels < in_channels:
            raise ValueError(f'SEDUp: guidance_channels {guidance_channels} must be in (0, {in_channels})')
        self.guidance_channels = guidance_channels
        self.cnext = ConvNeXtBlock(in_channels, kernel_size=kernel_size, ls_init_value=1.0)
        self.attention = ClassRefinement(in_channels, guidance_dim=0, num_heads=num_heads,
                                         attention_type=attention_type, pooling_size=pooling_size,
                                         test_pooling_size=test_pooling_size, pad_len=0)
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels + guidance_channels, out_channels)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor, corr_guidance: torch.Tensor) -> torch.Tensor:
        """x: (B*T, C, H, W); guidance: (B, g, 2H, 2W); corr_guidance: (B*T, g, 2H, 2W)."""
        B = guidance.shape[0]
        BT, C, H, W = x.shape
        T = BT // B
        x = self.cnext(x)
        x = self.attention(x.view(B, T, C, H, W).transpose(1, 2), None)
        x = self.up(x.transpose(1, 2).reshape(BT, C, H, W))
        g = guidance.unsqueeze(1).expand(B, T, *guidance.shape[1:]).reshape(BT, *guidance.shape[1:])
        return self.conv(torch.cat([x, g, corr_guidance], dim=1))


@MODELS.register_module()
class SEDHead(BaseModule):
    """SED's Aggregator for ``configs/convnextB_768.yaml`` (defaults = its numbers).

    Args:
        num_templates: cost channels P (``prompt_channel`` = 80 ImageNet templates).
        hidden_dim: 128 (HIDDEN_DIMS). decoder_dims: (64, 32, 16) (DECODER_DIMS).
        decoder_guidance_dims: channels of res4 / res3 / res2 ((512, 256, 128) for ConvNeXt-B;
            the segmentor fills them from the CLIP). decoder_guidance_proj_dims: (32, 16, 8).
            The corr guidance chain is P -> proj[0] -> proj[1] -> proj[2] (upstream's default
            ``decoder_corr_guidance_dims`` (80, 32, 16)).
        num_heads: 4 (NUM_HEADS). kernel_size: (9, 9, 9) (KERNEL_SIZE). attention_type: 'linear'.
        pooling_size: (2, 2) (POOLING_SIZES) while training; test_pooling_size: (1, 1), the
            override of upstream's ``eval.sh`` (``MODEL.SEM_SEG_HEAD.POOLING_SIZES "[1,1]"``);
            None = the training pooling (what ``train_net.py --eval-only`` without it does).
        fast_inference / topk: category early rejection at test (TEST.FAST_INFERENCE False,
            TEST.TOPK 1 in the config; the README's fast setting is True / 8).
    """

    def __init__(self, num_templates: int = 80, hidden_dim: int = 128,
                 decoder_dims: Sequence[int] = (64, 32, 16),
                 decoder_guidance_dims: Sequence[int] = (512, 256, 128),
                 decoder_guidance_proj_dims: Sequence[int] = (32, 16, 8),
                 num_heads: int = 4, kernel_size: Sequence[int] = (9, 9, 9),
                 attention_type: str = 'linear', pooling_size=(2, 2), test_pooling_size=(1, 1),
                 corr_kernel_size: int = 7, fast_inference: bool = False, topk: int = 1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not (len(decoder_dims) == len(decoder_guidance_dims) == len(decoder_guidance_proj_dims)
                == len(kernel_size) == 3):
            raise ValueError('SEDHead: decoder_dims, decoder_guidance_dims, decoder_guidance_proj_dims and '
                             'kernel_size need 3 entries each (three gradual-fusion stages)')
        if topk < 1:
            raise ValueError(f'SEDHead: topk must be >= 1, got {topk}')
        self.hidden_dim, self.num_templates = hidden_dim, num_templates
        self.fast_inference, self.topk = fast_inference, int(topk)
        self.corr_embed = CorrelationEmbedding(num_templates, hidden_dim, corr_kernel_size)
        g = tuple(decoder_guidance_proj_dims)
        self.decoder_guidance_projection = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, dp, kernel_size=3, stride=1, padding=1), nn.ReLU())
            for d, dp in zip(decoder_guidance_dims, g))
        self.decoder_corr_guidance_projection = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(d, dp, kernel_size=2, stride=2), nn.ReLU())
            for d, dp in zip((num_templates,) + g[:2], g))
        ins = (hidden_dim,) + tuple(decoder_dims[:2])
        self.decoders = nn.ModuleList(
            SEDUp(i, o, gp, num_heads, k, attention_type, pooling_size, test_pooling_size)
            for i, o, gp, k in zip(ins, decoder_dims, g, kernel_size))
        # head0 / head1 / head2 (aux, category early rejection) and head (upstream names)
        self.aux_heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=3, stride=1, padding=1) for c in ins)
        self.head = nn.Conv2d(decoder_dims[2], 1, kernel_size=3, stride=1, padding=1)

    def forward(self, corr: torch.Tensor, guidance: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """corr: (B, P, T, h, w); guidance: [res4 (B, C4, 2h, 2w), res3 (4h), res2 (8h)] ->
        ``[logits (B, T, 8h, 8w), aux (B, T, h, w), aux (2h), aux (4h)]``."""
        B, P, T, h, w = corr.shape
        if P != self.num_templates:
            raise ValueError(f'SEDHead: cost volume has {P} template channels, built for {self.num_templates}')
        if len(guidance) != 3:
            raise ValueError(f'SEDHead: needs 3 guidance maps (res4, res3, res2), got {len(guidance)}')
        x = self.corr_embed(corr).transpose(1, 2).reshape(B * T, self.hidden_dim, h, w)
        proj = [p(gd) for p, gd in zip(self.decoder_guidance_projection, guidance)]
        c = corr.transpose(1, 2).reshape(B * T, P, h, w)
        corr_guid = []
        for p in self.decoder_corr_guidance_projection:
            c = p(c)
            corr_guid.append(c)
        if self.fast_inference and not self.training:
            return [self._fast(x, proj, corr_guid, B, T)]
        auxes = []
        for dec, aux, pg, cg in zip(self.decoders, self.aux_heads, proj, corr_guid):
            auxes.append(aux(x.detach()).view(B, T, *x.shape[-2:]))
            x = dec(x, pg, cg)
        logits = self.head(x).view(B, T, *x.shape[-2:])
        return [logits] + auxes

    def _fast(self, x, proj, corr_guid, B: int, T: int) -> torch.Tensor:
        """Upstream ``fast_conv_decoder``: class rejection after head0 / head1 / head2."""
        keep = torch.arange(T, device=x.device)
        corr_guid = list(corr_guid)
        for i, (dec, aux, pg) in enumerate(zip(self.decoders, self.aux_heads, proj)):
            t = keep.numel()
            valid = topk_valid_classes(aux(x).view(B, t, *x.shape[-2:]), self.topk)
            keep = keep[valid]

            def sel(z):
                return z.view(B, t, *z.shape[1:])[:, valid].flatten(0, 1)
            x = sel(x)
            corr_guid = [sel(c) if j >= i else c for j, c in enumerate(corr_guid)]
            x = dec(x, pg, corr_guid[i])
        logits = self.head(x).view(B, keep.numel(), *x.shape[-2:])
        out = logits.new_full((B, T, *logits.shape[-2:]), REJECTED_LOGIT)
        out[:, keep] = logits
        return out

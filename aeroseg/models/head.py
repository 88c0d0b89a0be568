"""Cost-aggregation head shared by CAT-Seg, OVRS and AerOSeg.

Call graph of :meth:`CostAggregationHead.forward`::

    corr (B, R*P, N, h, w)                       cosine cost volume (cost_volume.py)
      ├─ [N > pad_len] keep the pad_len classes with the highest max score (upstream)
      ├─ corr_embed: 7x7 conv per class ──> (B, C, N, h, w)
      ├─ guidance_projection(appearance_guidance)   3x3 conv + ReLU  ──> (B, Cg', h, w)
      ├─ text_guidance_projection(mean_P text, L2)  linear + ReLU    ──> (B, N, Ct')
      ├─ layers[i]: SpatialRefinement(., Cg') -> ClassRefinement(., Ct')   ──> refined (B, C, N, h, w)
      ├─ decoder guidance i: ConvTranspose (x2^(i+1), 'transpose') or bilinear resize ('resize'),
      │   then 3x3 conv + ReLU
      ├─ decoders[i]: UpsampleBlock ('catseg') / AttentionUpsampleBlock ('ovrs')
      └─ head: 3x3 conv to 1 channel per class ──> logits (B, N, 4h, 4w)

Upstream: cvlab-kaist/CAT-Seg cat_seg/modeling/transformer/model.py ``Aggregator`` (defaults from
configs/vitb_384.yaml) and cat_seg/cat_seg_model.py ``CATSeg`` (the transposed-conv guidance
upsamplers ``upsample1``/``upsample2``, which live in the meta-architecture upstream and in this
head here); OVRS (caoql98/OVRS, model_ours.py) changes only the decoder block and the number of
cost channels (4 rotations x P templates).

Decoder guidance modes:
  * 'transpose' (upstream): decoder_guidance[i] is (B, decoder_guidance_in_dims[i], h, w) (CLIP
    block outputs, 768 wide for ViT-B/16, blocks 3 and 7) and a ConvTranspose2d with kernel =
    stride = 2^(i+1) brings it to decoder_guidance_dims[i] channels at 2^(i+1) x (h, w).
  * 'resize' (ours, for guidance at another resolution, e.g. SAM's 64x64 maps at a 1024 input):
    decoder_guidance[i] is (B, decoder_guidance_dims[i], H_i, W_i) at any size and is resized
    (bilinear, align_corners=False, or 'nearest') to 2^(i+1) x (h, w). A resize has no weights, so
    the wide SAM maps reach the 3x3 projection directly instead of a learned 2x/4x upsampler on
    1024 channels; the AerOSeg paper does not state its choice.
"""

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from .cost_volume import CorrelationEmbedding
from .decoders import DECODER_BLOCKS
from .prompts import prompt_average
from .refinement import AggregatorLayer

__all__ = ['CostAggregationHead']


@MODELS.register_module()
class CostAggregationHead(BaseModule):
    """Spatial + class cost refinement and an upsampling decoder.

    All sizes are arguments; defaults are CAT-Seg ViT-B/16 (configs/vitb_384.yaml, model.py
    ``Aggregator``). Args:
        num_templates, num_rotations: cost channels = num_rotations x num_templates
            (CAT-Seg ``prompt_channel`` = len(templates), 1 for 'single'; OVRS 4 x P).
        corr_kernel_size: 7 (``Aggregator.conv1``, both CAT-Seg and OVRS).
        hidden_dim: 128 (HIDDEN_DIMS). num_heads: 4 (NUM_HEADS). num_layers: 2 (NUM_LAYERS).
        window_size: 12 (WINDOW_SIZES). mlp_ratio: 4 (timm Mlp in SwinTransformerBlock).
        pooling_size: (2, 2) while training (POOLING_SIZES); test_pooling_size: (1, 1)
            (eval.sh overrides POOLING_SIZES "[1,1]").
        attention_type: 'linear' (ATTENTION_TYPE). pad_len: 256 (Aggregator default).
        text_guidance_dim / text_guidance_proj_dim: 512 / 128 (0 disables text guidance).
        appearance_guidance_dim / appearance_guidance_proj_dim: 512 / 128 (0 disables it).
        decoder_type: 'catseg' (``Up``) or 'ovrs' (attention-aware ``Up`` of model_ours.py).
        decoder_dims: (64, 32) (DECODER_DIMS).
        decoder_guidance_mode: 'transpose' (upstream) or 'resize' (see module docstring).
        decoder_guidance_in_dims: (768, 768) CLIP ViT-B width ('transpose' only;
            CATSeg.proj_dim).
        decoder_guidance_dims: (256, 128) (DECODER_GUIDANCE_DIMS; upsample1/upsample2 outputs);
            None or 0 disables decoder guidance.
        decoder_guidance_proj_dims: (32, 16) (DECODER_GUIDANCE_PROJ_DIMS).
        decoder_guidance_resize: 'bilinear' or 'nearest' ('resize' mode only).
    """

    def __init__(self,
                 num_templates: int = 1,
                 num_rotations: int = 1,
                 corr_kernel_size: int = 7,
                 hidden_dim: int = 128,
                 num_heads: int = 4,
                 num_layers: int = 2,
                 window_size: int = 12,
                 mlp_ratio: float = 4.0,
                 pooling_size: Sequence[int] = (2, 2),
                 test_pooling_size: Optional[Sequence[int]] = (1, 1),
                 attention_type: str = 'linear',
                 pad_len: int = 256,
                 text_guidance_dim: int = 512,
                 text_guidance_proj_dim: int = 128,
                 appearance_guidance_dim: int = 512,
                 appearance_guidance_proj_dim: int = 128,
                 decoder_type: str = 'catseg',
                 decoder_dims: Sequence[int] = (64, 32),
                 decoder_guidance_mode: str = 'transpose',
                 decoder_guidance_in_dims: Sequence[int] = (768, 768),
                 decoder_guidance_dims: Optional[Sequence[int]] = (256, 128),
                 decoder_guidance_proj_dims: Sequence[int] = (32, 16),
                 decoder_guidance_resize: str = 'bilinear',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if decoder_type not in DECODER_BLOCKS:
            raise ValueError(f'CostAggregationHead: decoder_type must be one of {sorted(DECODER_BLOCKS)}, '
                             f'got {decoder_type!r}')
        if decoder_guidance_mode not in ('transpose', 'resize'):
            raise ValueError("CostAggregationHead: decoder_guidance_mode must be 'transpose' or 'resize', "
                             f'got {decoder_guidance_mode!r}')
        if decoder_guidance_resize not in ('bilinear', 'nearest'):
            raise ValueError("CostAggregationHead: decoder_guidance_resize must be 'bilinear' or 'nearest', "
                             f'got {decoder_guidance_resize!r}')
        n_dec = len(decoder_dims)
        use_dec_guidance = bool(decoder_guidance_dims) and decoder_guidance_dims[0] > 0
        if use_dec_guidance:
            for name, v in (('decoder_guidance_dims', decoder_guidance_dims),
                            ('decoder_guidance_proj_dims', decoder_guidance_proj_dims)) + (
                    (('decoder_guidance_in_dims', decoder_guidance_in_dims),)
                    if decoder_guidance_mode == 'transpose' else ()):
                if len(v) != n_dec:
                    raise ValueError(f'CostAggregationHead: {name}={tuple(v)} needs one entry per decoder '
                                     f'block (decoder_dims={tuple(decoder_dims)})')
        elif decoder_type == 'ovrs':
            raise ValueError("CostAggregationHead: decoder_type='ovrs' attends over decoder guidance; "
                             'set decoder_guidance_dims or use decoder_type="catseg"')
        proj_dims = tuple(decoder_guidance_proj_dims) if use_dec_guidance else (0,) * n_dec

        self.num_templates, self.num_rotations = num_templates, num_rotations
        self.hidden_dim, self.pad_len = hidden_dim, pad_len
        self.decoder_guidance_mode = decoder_guidance_mode
        self.decoder_guidance_resize = decoder_guidance_resize

        self.corr_embed = CorrelationEmbedding(num_rotations * num_templates, hidden_dim, corr_kernel_size)
        self.guidance_projection = nn.Sequential(
            nn.Conv2d(appearance_guidance_dim, appearance_guidance_proj_dim, kernel_size=3, padding=1),
            nn.ReLU()) if appearance_guidance_dim > 0 else None
        self.text_guidance_projection = nn.Sequential(
            nn.Linear(text_guidance_dim, text_guidance_proj_dim),
            nn.ReLU()) if text_guidance_dim > 0 else None
        self.layers = nn.ModuleList([
            AggregatorLayer(hidden_dim=hidden_dim,
                            text_guidance_dim=text_guidance_proj_dim if text_guidance_dim > 0 else 0,
                            appearance_guidance_dim=appearance_guidance_proj_dim if appearance_guidance_dim > 0 else 0,
                            num_heads=num_heads, window_size=window_size, pooling_size=pooling_size,
                            test_pooling_size=test_pooling_size, attention_type=attention_type,
                            pad_len=pad_len, mlp_ratio=mlp_ratio)
            for _ in range(num_layers)])
        self.decoder_guidance_upsample = None
        self.decoder_guidance_projection = None
        if use_dec_guidance:
            if decoder_guidance_mode == 'transpose':
                # cat_seg_model.py CATSeg.__init__: upsample1 = ConvTranspose2d(768, 256, 2, 2),
                # upsample2 = ConvTranspose2d(768, 128, 4, 4)
                self.decoder_guidance_upsample = nn.ModuleList([
                    nn.ConvTranspose2d(cin, d, kernel_size=2 ** (i + 1), stride=2 ** (i + 1))
                    for i, (cin, d) in enumerate(zip(decoder_guidance_in_dims, decoder_guidance_dims))])
            self.decoder_guidance_projection = nn.ModuleList([
                nn.Sequential(nn.Conv2d(d, dp, kernel_size=3, padding=1), nn.ReLU())
                for d, dp in zip(decoder_guidance_dims, proj_dims)])
        block = DECODER_BLOCKS[decoder_type]
        ins = (hidden_dim,) + tuple(decoder_dims[:-1])
        # Aggregator: decoder1 = Up(hidden_dim, decoder_dims[0], proj[0]), decoder2 = Up(dims[0], dims[1], proj[1])
        self.decoders = nn.ModuleList([block(cin, cout, g) for cin, cout, g in zip(ins, decoder_dims, proj_dims)])
        self.head = nn.Conv2d(decoder_dims[-1], 1, kernel_size=3, padding=1)

    # ------------------------------------------------------------------ helpers
    def _text_guidance(self, text: Optional[torch.Tensor], B: int, N: int, normalize_first: bool):
        if self.text_guidance_projection is None:
            return None
        if text is None:
            raise ValueError('CostAggregationHead: text_guidance is None but the head was built with '
                             'text_guidance_dim > 0 (set text_guidance_dim=0 to run without it)')
        if text.dim() == 3:
            text = text.unsqueeze(0).expand(B, -1, -1, -1)
        if text.dim() != 4 or text.shape[:2] != (B, N):
            raise ValueError(f'CostAggregationHead: text_guidance must be (N={N}, P, D) or (B={B}, N={N}, P, D) '
                             f'text embeddings, got {tuple(text.shape)}')
        # Aggregator.forward: mean over templates, then L2 normalisation, then the projection
        return self.text_guidance_projection(prompt_average(text, normalize_first=normalize_first))

    def _decoder_guidance(self, guidance, h: int, w: int) -> List[Optional[torch.Tensor]]:
        n = len(self.decoders)
        if self.decoder_guidance_projection is None:
            if guidance is not None and any(g is not None for g in guidance):
                raise ValueError('CostAggregationHead: decoder_guidance given but the head was built '
                                 'without it (decoder_guidance_dims=None)')
            return [None] * n
        if guidance is None or len(guidance) != n:
            raise ValueError(f'CostAggregationHead: decoder_guidance must be a list of {n} maps, got '
                             f'{None if guidance is None else len(guidance)}')
        out = []
        for i, (g, proj) in enumerate(zip(guidance, self.decoder_guidance_projection)):
            size = (h * 2 ** (i + 1), w * 2 ** (i + 1))
            if self.decoder_guidance_mode == 'transpose':
                up = self.decoder_guidance_upsample[i]
                if g.shape[1] != up.in_channels or g.shape[-2:] != (h, w):
                    raise ValueError(f"CostAggregationHead: decoder_guidance[{i}] {tuple(g.shape)} must be "
                                     f"(B, {up.in_channels}, {h}, {w}) in 'transpose' mode (use "
                                     f"decoder_guidance_mode='resize' for maps at another resolution)")
                g = up(g)
            else:
                if g.shape[1] != proj[0].in_channels:
                    raise ValueError(f'CostAggregationHead: decoder_guidance[{i}] has {g.shape[1]} channels, '
                                     f'decoder_guidance_dims[{i}] = {proj[0].in_channels}')
                if tuple(g.shape[-2:]) != size:
                    if self.decoder_guidance_resize == 'bilinear':
                        g = F.interpolate(g, size=size, mode='bilinear', align_corners=False)
                    else:
                        g = F.interpolate(g, size=size, mode='nearest')
            out.append(proj(g))
        return out

    # ------------------------------------------------------------------ forward
    def forward(self, corr: torch.Tensor, appearance_guidance: Optional[torch.Tensor] = None,
                text_guidance: Optional[torch.Tensor] = None,
                decoder_guidance: Optional[Sequence[torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
        """Args:
            corr: (B, R*P, N, h, w) cost volume.
            appearance_guidance: (B, appearance_guidance_dim, h, w) or None.
            text_guidance: (N, P, D) or (B, N, P, D) text embeddings (averaged over P here).
            decoder_guidance: list of one map per decoder block (see the module docstring).
        Returns:
            dict(logits=(B, N, 4h, 4w), refined=(B, C, N, h, w) after the last layer).
        """
        if corr.dim() != 5:
            raise ValueError(f'CostAggregationHead: corr must be (B, R*P, N, h, w), got {tuple(corr.shape)}')
        B, _, N, h, w = corr.shape
        classes = None
        if self.pad_len > 0 and N > self.pad_len:
            # Aggregator.forward: keep the pad_len classes whose max cosine score (over templates
            # and positions) is highest; the others get logit -100.
            score = corr.transpose(1, 2).flatten(2).max(dim=-1)[0]
            classes = score.topk(self.pad_len, dim=-1, sorted=False)[1]            # (B, pad_len)
            corr = torch.gather(corr, 2, classes[:, None, :, None, None].expand(
                -1, corr.shape[1], -1, h, w))
            if text_guidance is not None:
                if text_guidance.dim() == 3:
                    text_guidance = text_guidance.unsqueeze(0).expand(B, -1, -1, -1)
                text_guidance = torch.gather(text_guidance, 1, classes[..., None, None].expand(
                    -1, -1, *text_guidance.shape[-2:]))
        n = corr.shape[2]
        x = self.corr_embed(corr)

        g = None
        if self.guidance_projection is not None:
            if appearance_guidance is None:
                raise ValueError('CostAggregationHead: appearance_guidance is None but the head was built '
                                 'with appearance_guidance_dim > 0 (set it to 0 to run without guidance)')
            if appearance_guidance.shape[0] != B or appearance_guidance.shape[-2:] != (h, w):
                raise ValueError(f'CostAggregationHead: appearance_guidance {tuple(appearance_guidance.shape)} '
                                 f'must be (B={B}, C, {h}, {w}), at the cost resolution; resize it first')
            g = self.guidance_projection(appearance_guidance)
        elif appearance_guidance is not None:
            raise ValueError('CostAggregationHead: appearance_guidance given but the head was built with '
                             'appearance_guidance_dim=0')
        t = self._text_guidance(text_guidance, B, n, normalize_first=classes is not None)
        dec = self._decoder_guidance(decoder_guidance, h, w)

        for layer in self.layers:
            x = layer(x, g, t)
        refined = x
        for block, dg in zip(self.decoders, dec):
            x = block(x, dg)
        _, C, T, H, W = x.shape
        logits = self.head(x.transpose(1, 2).reshape(B * T, C, H, W)).reshape(B, T, H, W)

        if classes is not None:
            full = logits.new_full((B, N, H, W), -100.)
            logits = full.scatter(1, classes[..., None, None].expand(-1, -1, H, W), logits)
            full_ref = refined.new_zeros(B, refined.shape[1], N, h, w)
            refined = full_ref.scatter(2, classes[:, None, :, None, None].expand(-1, refined.shape[1], -1, h, w),
                                       refined)
        return dict(logits=logits, refined=refined)

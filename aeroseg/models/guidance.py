"""Guidance encoders (AerOSeg paper Sec. 3.1 "Guidance Encoder"; Table 6): SAM ViT and SAM 2 Hiera.

Both take the batch as the segmentor has it -- RGB float 0..255, NOT normalised (the data
preprocessor leaves normalisation to the encoders, as CAT-Seg does: ``cat_seg_model.py`` keeps raw
images and normalises separately for each encoder) -- and apply their own normalisation:

* SAM: ``(x - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375]`` (segment_anything
  ``build_sam.py::_build_sam`` pixel_mean / pixel_std, ``Sam.preprocess``);
* SAM 2: ImageNet mean/std on 0..1 pixels (``sam2/utils/transforms.py::SAM2Transforms``), the same
  numbers in 0..255 units.

The input is then resized (bilinear, align_corners=False) to the square encoder size (1024). SAM 2's
own transform resizes to a square too; SAM resizes the longest side and pads, but we resize to the
square so the guidance grid stays aligned with CLIP's grid (CLIP's input is a square resize as well,
CAT-Seg ``clip_resolution``). Training crops are square, so both agree there.

Output of both: ``dict(last=(B, C, h, w), inter=[(B, C1, h1, w1), (B, C2, h2, w2)])``. ``last``
feeds spatial refinement (after a projection) and is the back-projection target; ``inter`` feeds
the two upsampling stages of the decoder, first entry to the first (coarser) stage.

SAM, "outputs from the 8th, 16th, and final layers of the SAM-L encoder" (paper Sec. 3.1):
* ``inter``: outputs of ``blocks[7]`` and ``blocks[15]`` (0-based; the 8th and 16th of 24 blocks),
  (B, 1024, 64, 64) for ViT-L. These are also CAT-Seg's own ViT-L tap indices ``[7, 15]``
  (``cat_seg_model.py::layer_indexes``), which the paper's numbers match.
* ``last``: DECISION: the neck output (SAM's 256-channel "image embedding"), not the last block's
  1024 channels. Reasons: it is what SAM calls its image feature and what the paper visualises as
  "SAM features"; it is 256-d for every SAM variant and equals SAM 2's ``vision_features`` (256-d),
  so the ViT-L / ViT-H / SAM 2 swaps of Table 6 feed the same head; and the back-projection MLP
  regresses 256 rather than 1024 values. ``last='block'`` gives the last block output instead.

SAM 2 (Hiera-B+) mapping of its FPN levels (``ImageEncoder`` output ``backbone_fpn`` after
``scalp=1``: strides 4, 8, 16, all 256-d): ``last`` = stride 16 (64 x 64, = ``vision_features``),
``inter`` = [stride 8 (128 x 128), stride 4 (256 x 256)] -- coarse to fine, the order in which SAM
2's own mask decoder adds them to its two upscaling stages (``MaskDecoder.predict_masks``:
``dc1(src) + feat_s1``, then ``dc2(...) + feat_s0``). We take the image encoder's FPN outputs
themselves, not ``SAM2Base.forward_image``'s ``conv_s0`` / ``conv_s1`` projections (those belong
to the mask decoder).

Frozen by default (paper Sec. 4.2): ``requires_grad=False``, eval mode kept under
``model.train()``, forward under ``torch.no_grad()``. ``frozen=False`` trains it (Table 4).
"""
from __future__ import annotations

from functools import partial
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmengine.model import BaseModule
from mmseg.registry import MODELS

from aeroseg.models.sam_attention import fuse_sam_attention
from aeroseg.utils.checkpoint import CheckpointError, load_external_state_dict, load_into

__all__ = ['SAMGuidanceEncoder', 'SAM2GuidanceEncoder', 'SAM_VARIANTS']

# segment_anything build_sam.py: build_sam_vit_{b,l,h}
SAM_VARIANTS: Dict[str, Dict] = {
    'vit_b': dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    'vit_l': dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    'vit_h': dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}
_SAM_PARTS = ('image_encoder.', 'prompt_encoder.', 'mask_decoder.')
_SAM_MEAN = (123.675, 116.28, 103.53)   # build_sam.py::_build_sam
_SAM_STD = (58.395, 57.12, 57.375)
# sam2/utils/transforms.py: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) on 0..1 pixels
_SAM2_MEAN = tuple(255 * m for m in (0.485, 0.456, 0.406))
_SAM2_STD = tuple(255 * s for s in (0.229, 0.224, 0.225))


class _GuidanceBase(BaseModule):
    """Normalisation, resize and the frozen / trainable switch shared by both encoders."""

    encoder: nn.Module

    def _setup_common(self, img_size: int, mean, std, frozen: bool) -> None:
        self.img_size = int(img_size)
        self.frozen = bool(frozen)
        self.register_buffer('pixel_mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer('pixel_std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), False)

    def _apply_frozen(self) -> None:
        for p in self.encoder.parameters():
            p.requires_grad = not self.frozen
        if self.frozen:
            self.encoder.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def init_weights(self):
        """Weights come from ``checkpoint`` in ``__init__``; mmengine must not re-initialise them."""

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 (B,3,H,W) -> normalised, resized to (img_size, img_size)."""
        x = (img - self.pixel_mean) / self.pixel_std
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode='bilinear', align_corners=False)
        return x

    def forward(self, img: torch.Tensor) -> Dict[str, object]:
        """RGB 0..255 float (B,3,H,W), not normalised -> dict(last=..., inter=[...])."""
        x = self.preprocess(img)
        if self.frozen:
            with torch.no_grad():
                return self._features(x)
        return self._features(x)

    def _features(self, x: torch.Tensor) -> Dict[str, object]:
        raise NotImplementedError


@MODELS.register_module()
class SAMGuidanceEncoder(_GuidanceBase):
    """SAM's image encoder (segment_anything ``ImageEncoderViT``) as a guidance encoder.

    Args:
        variant: 'vit_b' | 'vit_l' | 'vit_h' (official dims, ``build_sam.py``) or 'custom'.
        checkpoint: an official SAM file (``sam_vit_l_0b3195.pth`` ...): the full SAM state dict
            (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``); only
            ``image_encoder.*`` is loaded, any key outside those three parts is an error.
        inter_indices: 0-based blocks whose outputs form ``inter``. Default: (7, 15) for ViT-L (paper:
            8th and 16th layers); for other depths the paper is silent and we take the same
            fractions, depth/3 and 2*depth/3 (ViT-B: (3, 7), ViT-H: (10, 21)).
        last: 'neck' (256-d image embedding, default; module docstring) or 'block'.
        frozen: freeze the encoder (paper); False for Table 4's fine-tuned variant.
        embed_dim, depth, num_heads, global_attn_indexes, img_size, window_size, patch_size,
            out_chans: override the variant's dims (e.g. a tiny encoder for the mini world; see
            :meth:`tiny`). Others as ``build_sam.py::_build_sam``: mlp_ratio 4, LayerNorm eps 1e-6,
            qkv_bias, relative positions.
    """

    def __init__(self,
                 variant: str = 'vit_l',
                 checkpoint: Optional[str] = None,
                 inter_indices: Optional[Sequence[int]] = None,
                 last: str = 'neck',
                 frozen: bool = True,
                 embed_dim: Optional[int] = None,
                 depth: Optional[int] = None,
                 num_heads: Optional[int] = None,
                 global_attn_indexes: Optional[Sequence[int]] = None,
                 img_size: int = 1024,
                 patch_size: int = 16,
                 window_size: int = 14,
                 out_chans: int = 256,
                 pixel_mean: Sequence[float] = _SAM_MEAN,
                 pixel_std: Sequence[float] = _SAM_STD,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from segment_anything.modeling import ImageEncoderViT

        if variant != 'custom' and variant not in SAM_VARIANTS:
            raise KeyError(f'unknown SAM variant {variant!r}; known: {sorted(SAM_VARIANTS)} or "custom"')
        dims = dict(SAM_VARIANTS.get(variant, {}))
        for k, v in dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                         global_attn_indexes=global_attn_indexes).items():
            if v is not None:
                dims[k] = v
        missing = [k for k in ('embed_dim', 'depth', 'num_heads', 'global_attn_indexes') if k not in dims]
        if missing:
            raise ValueError(f"variant='custom' needs {missing}")
        if last not in ('neck', 'block'):
            raise ValueError(f"last={last!r}; choose 'neck' or 'block'")
        depth = dims['depth']
        if inter_indices is None:
            inter_indices = (depth // 3 - 1, 2 * depth // 3 - 1)
        self.inter_indices = tuple(int(i) for i in inter_indices)
        bad = [i for i in self.inter_indices if not 0 <= i < depth]
        if bad:
            raise ValueError(f'inter_indices {bad} outside 0..{depth - 1}')
        self.variant = variant
        self.last = last
        self.embed_dim = dims['embed_dim']
        self.out_chans = out_chans
        self._setup_common(img_size, pixel_mean, pixel_std, frozen)
        self.encoder = ImageEncoderViT(
            depth=depth, embed_dim=dims['embed_dim'], img_size=img_size, mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=dims['num_heads'],
            patch_size=patch_size, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=tuple(dims['global_attn_indexes']), window_size=window_size,
            out_chans=out_chans)
        # the same attention as one fused kernel (aeroseg/models/sam_attention.py; same weights)
        fuse_sam_attention(self.encoder)
        if checkpoint is not None:
            self.load_sam_checkpoint(checkpoint)
        self._apply_frozen()

    @classmethod
    def tiny(cls, **kwargs) -> 'SAMGuidanceEncoder':
        """A small encoder of the same class (mini world, tests): 64 px input, 4 blocks of width 32."""
        cfg = dict(variant='custom', embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(1, 3),
                   img_size=64, window_size=2, out_chans=32, inter_indices=(1, 2))
        cfg.update(kwargs)
        return cls(**cfg)

    @property
    def out_channels(self) -> Dict[str, object]:
        return dict(last=self.out_chans if self.last == 'neck' else self.embed_dim,
                    inter=[self.embed_dim] * len(self.inter_indices))

    def load_sam_checkpoint(self, path: str) -> None:
        what = f'SAM {self.variant} image encoder {path!r}'
        sd = load_external_state_dict(path, what=what)
        other = [k for k in sd if not k.startswith(_SAM_PARTS)]
        if other:
            shown = ', '.join(other[:8]) + (f' ... (+{len(other) - 8} more)' if len(other) > 8 else '')
            raise CheckpointError(
                f'{what}: not an official SAM checkpoint: {len(other)} keys outside '
                f'{"/".join(p.rstrip(".") for p in _SAM_PARTS)}: {shown}. Pass the file released by '
                f'segment-anything (e.g. sam_vit_l_0b3195.pth), which holds the whole SAM.')
        enc = {k[len('image_encoder.'):]: v for k, v in sd.items() if k.startswith('image_encoder.')}
        if not enc:
            raise CheckpointError(f'{what}: no image_encoder.* keys in the file.')
        load_into(self.encoder, enc, what=what)

    def _features(self, x: torch.Tensor) -> Dict[str, object]:
        # segment_anything ImageEncoderViT.forward, with taps after the chosen blocks
        enc = self.encoder
        x = enc.patch_embed(x)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        inter: List[torch.Tensor] = []
        for i, blk in enumerate(enc.blocks):
            x = blk(x)
            if i in self.inter_indices:
                inter.append(x.permute(0, 3, 1, 2))
        x = x.permute(0, 3, 1, 2)
        last = enc.neck(x) if self.last == 'neck' else x
        # taps were collected in block order; return them in the order of inter_indices
        in_block_order = sorted(set(self.inter_indices))
        return dict(last=last, inter=[inter[in_block_order.index(i)] for i in self.inter_indices])


# Hiera-B+ image encoder: sam2/configs/sam2.1/sam2.1_hiera_b+.yaml (= sam2/sam2_hiera_b+.yaml),
# model.image_encoder; the trunk's other arguments are Hiera's defaults (sam2/modeling/backbones/
# hieradet.py): stages (2, 3, 16, 3), global_att_blocks (12, 16, 20), window_spec (8, 4, 14, 7),
# window_pos_embed_bkg_spatial_size (14, 14).
_HIERA_B_PLUS = dict(embed_dim=112, num_heads=2)
_SAM2_VERSIONS = ('sam2', 'sam2.1')


@MODELS.register_module()
class SAM2GuidanceEncoder(_GuidanceBase):
    """SAM 2 / SAM 2.1 image encoder (Hiera trunk + FPN neck, sam2 package) as a guidance encoder.

    Args:
        version: 'sam2' or 'sam2.1' (same Hiera-B+ image encoder; different weights:
            ``sam2_hiera_base_plus.pt`` / ``sam2.1_hiera_base_plus.pt``).
        checkpoint: an official SAM 2 file: ``{'model': SAM2Base state dict}``; only
            ``image_encoder.*`` is loaded (the memory / prompt / decoder parts are not used).
        inter_levels: indices into the FPN outputs (0 = stride 4, 1 = stride 8, 2 = stride 16) for
            ``inter``; default (1, 0) = coarse to fine (module docstring).
        frozen: as :class:`SAMGuidanceEncoder`.
        trunk: Hiera keyword overrides (e.g. a tiny trunk: ``dict(embed_dim=8, num_heads=1,
            stages=(1, 1, 2, 1), global_att_blocks=(3,), window_spec=(4, 2, 2, 1),
            window_pos_embed_bkg_spatial_size=(4, 4))``).
        d_model: FPN width (256 official). img_size: 1024 official.
    """

    def __init__(self,
                 version: str = 'sam2.1',
                 checkpoint: Optional[str] = None,
                 inter_levels: Sequence[int] = (1, 0),
                 frozen: bool = True,
                 trunk: Optional[Dict] = None,
                 d_model: int = 256,
                 img_size: int = 1024,
                 pixel_mean: Sequence[float] = _SAM2_MEAN,
                 pixel_std: Sequence[float] = _SAM2_STD,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from sam2.modeling.backbones.hieradet import Hiera
        from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
        from sam2.modeling.position_encoding import PositionEmbeddingSine

        if version not in _SAM2_VERSIONS:
            raise KeyError(f'unknown SAM 2 version {version!r}; known: {_SAM2_VERSIONS}')
        self.version = version
        self._setup_common(img_size, pixel_mean, pixel_std, frozen)
        hiera = Hiera(**{**_HIERA_B_PLUS, **(trunk or {})})
        # neck and scalp as in the yaml: FpnNeck(d_model 256, PositionEmbeddingSine(256,
        # normalize=True, scale=None, temperature=10000), fpn_top_down_levels [2, 3],
        # fpn_interp_model nearest); ImageEncoder(scalp=1) drops the stride-32 level.
        neck = FpnNeck(
            position_encoding=PositionEmbeddingSine(num_pos_feats=d_model, normalize=True, scale=None,
                                                    temperature=10000),
            d_model=d_model, backbone_channel_list=list(hiera.channel_list),
            fpn_top_down_levels=[2, 3], fpn_interp_model='nearest')
        self.encoder = ImageEncoder(trunk=hiera, neck=neck, scalp=1)
        self.d_model = d_model
        n_levels = len(hiera.channel_list) - 1
        self.inter_levels = tuple(int(i) for i in inter_levels)
        bad = [i for i in self.inter_levels if not 0 <= i < n_levels]
        if bad:
            raise ValueError(f'inter_levels {bad} outside 0..{n_levels - 1}')
        if checkpoint is not None:
            self.load_sam2_checkpoint(checkpoint)
        self._apply_frozen()

    @classmethod
    def tiny(cls, **kwargs) -> 'SAM2GuidanceEncoder':
        """A small Hiera of the same class (mini world, tests): 64 px input, five blocks; no global block at a pooling block, as in Hiera-B+."""
        cfg = dict(img_size=64, d_model=16,
                   trunk=dict(embed_dim=8, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
                              window_spec=(4, 2, 2, 1), window_pos_embed_bkg_spatial_size=(4, 4)))
        cfg.update(kwargs)
        return cls(**cfg)

    @property
    def out_channels(self) -> Dict[str, object]:
        return dict(last=self.d_model, inter=[self.d_model] * len(self.inter_levels))

    def load_sam2_checkpoint(self, path: str) -> None:
        what = f'{self.version.upper()} image encoder {path!r}'
        sd = load_external_state_dict(path, what=what)  # unwraps the official {'model': ...}
        if not any(k.startswith('image_encoder.trunk.') for k in sd):
            raise CheckpointError(
                f'{what}: not an official SAM 2 checkpoint (no image_encoder.trunk.* keys; first keys: '
                f'{", ".join(list(sd)[:5])}). Pass the file released by facebookresearch/sam2, '
                f'e.g. sam2.1_hiera_base_plus.pt ({{"model": state_dict}}).')
        enc = {k[len('image_encoder.'):]: v for k, v in sd.items() if k.startswith('image_encoder.')}
        load_into(self.encoder, enc, what=what)

    def _features(self, x: torch.Tensor) -> Dict[str, object]:
        fpn = self.encoder(x)['backbone_fpn']  # strides 4, 8, 16 after scalp=1
        return dict(last=fpn[-1], inter=[fpn[i] for i in self.inter_levels])

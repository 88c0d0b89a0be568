"""open_clip ConvNeXt CLIP towers (timm trunk): hierarchical and dense features, and the mini world's tiny trunk.

``convnext_features`` is the forward of SED's bundled open_clip 2.10.1 ``TimmModel.forward``
(xb534/SED ``open_clip/src/open_clip/timm_model.py``), which open_clip 3.3.0 does not have: stem,
the four stages (res2..res5 at 1/4..1/32), ``norm_pre``, then every pixel of the last stage through
``trunk.head`` as a fake 1 x 1 image (timm's ``NormMlpClassifierHead``: pooling of one pixel, its
LayerNorm2d) and the CLIP projection ``visual.head``: ``clip_vis_dense``, (B, embed, H/32, W/32).

``aeroseg_mini_convnext`` is registered with timm so that an open_clip json can name it as
``timm_model_name`` (the mini world's tiny ConvNeXt CLIP, ``aeroseg/assets/mini``): timm's
``ConvNeXt`` class with ConvNeXt-B's block (7 x 7 depthwise conv, LayerNorm, Linear MLP x4, GELU,
layer scale 1e-6; ``conv_mlp=False`` like ``convnext_base``), a 4 x 4 stem and four stages at
ConvNeXt-B's width ratios 1:2:4:8 (ConvNeXt-B: 128/256/512/1024, depths 3/3/27/3; here
32/64/128/256, depths 1/1/2/1).
"""
from typing import Dict, Optional

import torch
from mmseg.registry import MODELS
from timm.models import register_model
from timm.models.convnext import _create_convnext

from .clip_backbone import CLIPDenseBackbone

__all__ = ['ConvNeXtCLIPBackbone', 'convnext_features', 'is_convnext_tower', 'MINI_CONVNEXT']

MINI_CONVNEXT = dict(depths=(1, 1, 2, 1), dims=(32, 64, 128, 256))


@register_model
def aeroseg_mini_convnext(pretrained=False, **kwargs):
    if pretrained:
        raise ValueError('aeroseg_mini_convnext has no timm weights; its CLIP file is in aeroseg/assets/mini')
    return _create_convnext('aeroseg_mini_convnext', pretrained=False, **dict(MINI_CONVNEXT, **kwargs))


def is_convnext_tower(visual) -> bool:
    trunk = getattr(visual, 'trunk', None)
    return trunk is not None and hasattr(trunk, 'stages') and hasattr(trunk, 'norm_pre')


def convnext_features(visual, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """SED's ``TimmModel.forward(x, dense=True)`` for an open_clip 3.3.0 timm ConvNeXt tower.

    Returns ``stem``, ``res2``..``res5`` (NCHW) and ``clip_vis_dense`` (B, embed, h, w)."""
    if not is_convnext_tower(visual):
        raise TypeError(f'convnext_features needs an open_clip TimmModel with a timm ConvNeXt trunk, '
                        f'got {type(visual).__name__}; use a convnext_* open_clip model')
    trunk = visual.trunk
    out = {}
    x = trunk.stem(x)
    out['stem'] = x
    for i, stage in enumerate(trunk.stages):
        x = stage(x)
        out[f'res{i + 2}'] = x
    x = trunk.norm_pre(x)
    B, C, H, W = x.shape
    x = x.permute(0, 2, 3, 1).reshape(B * H * W, C, 1, 1)  # one fake 1 x 1 image per pixel
    x = visual.head(trunk.head(x))
    out['clip_vis_dense'] = x.reshape(B, H, W, -1).permute(0, 3, 1, 2)
    return out


@MODELS.register_module()
class ConvNeXtCLIPBackbone(CLIPDenseBackbone):
    """open_clip ConvNeXt CLIP (timm tower): hierarchical features, dense embeddings, text.

    Same loading (open_clip architecture + our weights-only loader), normalisation, fine-tuning
    policies and text path as :class:`CLIPDenseBackbone`; the image side is
    :func:`convnext_features` at ``image_size`` (SED: ``convnext_base_w_320`` at 768 x 768,
    ``sed/sed_model.py`` ``clip_resolution``). No rotations, no taps (``tap_indices`` must be empty).

    ``drop_path``: the trunk's stochastic depth while training. 0.0 by default: SED's bundled
    open_clip 2.10.1 ``convnext_base_w_320.json`` sets no ``timm_drop_path`` (timm's 0), whereas
    open_clip 3.3.0's json sets 0.1; ``None`` keeps the open_clip config's value.

    ``forward(img)`` (RGB 0..255, B x 3 x H x W) returns ``dense`` (B, D, H'/32, W'/32),
    ``res2``..``res5`` and ``stem`` at the resized input size H' x W'.
    """

    def __init__(self, model_name: str = 'convnext_base_w_320', pretrained: Optional[str] = None,
                 image_size=768, finetune: str = 'visual', drop_path: Optional[float] = 0.0, **kwargs):
        for k in ('rotations', 'tap_indices', 'dense_residual'):
            if k in kwargs:
                raise TypeError(f'ConvNeXtCLIPBackbone: {k!r} is a ViT option (CLIPDenseBackbone); remove it')
        super().__init__(model_name=model_name, pretrained=pretrained, image_size=image_size,
                         tap_indices=(), rotations=(0,), finetune=finetune, **kwargs)
        if drop_path is not None:
            from timm.layers import DropPath
            for m in self.clip.visual.trunk.modules():
                if isinstance(m, DropPath):
                    m.drop_prob = float(drop_path)
        self.drop_path = drop_path

    def _setup_visual(self, visual, tap_indices) -> None:
        if not is_convnext_tower(visual):
            raise NotImplementedError(f'{self.model_name}: ConvNeXtCLIPBackbone needs an open_clip timm ConvNeXt '
                                      f'tower (e.g. convnext_base_w_320), got {type(visual).__name__}')
        self.tap_indices = ()
        trunk = visual.trunk
        self.stage_channels = tuple(int(f['num_chs']) for f in trunk.feature_info)  # res2..res5
        self.width = self.stage_channels[-1]
        self.embed_dim = int(visual.head.proj.out_features)
        self.patch_size = (32, 32)  # stem 4 x 3 downsamplings of 2: res5 at 1/32
        self.native_grid = tuple(s // 32 for s in visual.image_size)
        self.grid = (self.image_size[0] // 32, self.image_size[1] // 32)

    def encode_dense(self, x: torch.Tensor, with_cls: bool = False) -> Dict[str, torch.Tensor]:
        if with_cls:
            raise NotImplementedError('ConvNeXtCLIPBackbone: with_cls is not supported')
        out = convnext_features(self.clip.visual, x)
        out['dense'] = out.pop('clip_vis_dense')
        return out

    def forward(self, img: torch.Tensor, with_cls: bool = False) -> Dict[str, torch.Tensor]:
        return self.encode_dense(self.normalize(img), with_cls=with_cls)

"""The cost-aggregation open-vocabulary segmentor shared by CAT-Seg, OVRS and AerOSeg.

Call graph of ``loss`` / ``predict``::

    inputs (B, 3, H, W) RGB 0..255
      ├─ clip.encode_image ──> dense (B, R, D, h, w) [R rotations, rotated back], taps
      ├─ clip.encode_text(vocabulary, templates) ──> text (N, P, D)
      ├─ cosine_cost_volume(dense, text) ──> corr (B, R*P, N, h, w)
      ├─ guidance (SAM / SAM 2, optional) ──> last (B, Cs, hs, ws), inter [2 maps]
      │     spatial guidance: last (AerOSeg) or CLIP dense rot-0 (CAT-Seg / OVRS)
      │     decoder guidance: inter (AerOSeg) or CLIP taps (CAT-Seg / OVRS)
      ├─ head(corr, spatial, text, decoder) ──> logits (B, N, 4h, 4w), refined (B, C, N, h, w)
      ├─ back_projection(refined) vs stop-grad target (AerOSeg; 'sam' | 'clip' | 'rgb')
      └─ loss: BCE on one-hot targets over the training vocabulary (+ back-projection loss)

The vocabulary protocol, label lookup and whole / sliding-window inference come from
:class:`~aeroseg.models.base_segmentor.OpenVocabSegmentor`; this class adds the forward above,
its losses and its hooks (outside weights: CLIP and the guidance encoder; the mini-world widths).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence, Union

from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from .back_projection import rgb_patch_target
from .base_segmentor import OpenVocabSegmentor, resize_to
from .cost_volume import cosine_cost_volume

__all__ = ['OpenVocabCostSegmentor']


@MODELS.register_module()
class OpenVocabCostSegmentor(OpenVocabSegmentor):
    """CLIP cost volume -> spatial/class refinement -> upsampling decoder.

    Args:
        clip: config of :class:`CLIPDenseBackbone` (rotations, templates and fine-tuning live there).
        head: config of :class:`CostAggregationHead`.
        guidance: config of a guidance encoder (SAM / SAM 2) or None for CLIP guidance.
        back_projection: config of :class:`SemanticBackProjection` or None.
        loss_decode: segmentation loss config (BCE on one-hot targets by default).
        templates: prompt template set name ('rs4', 'generic', ...) or a list of templates.
        vocabulary, test_cfg, ignore_index: see :class:`OpenVocabSegmentor` (CAT-Seg tests
            ``dict(mode='whole')``, OVRS / AerOSeg slide with a global view).
    """

    def __init__(self, clip: dict, head: dict, guidance: Optional[dict] = None,
                 back_projection: Optional[dict] = None,
                 loss_decode: dict = dict(type='OpenVocabBCELoss'),
                 vocabulary: dict = dict(split='isaid', train='seen', test='all'),
                 templates: Union[str, Sequence[str]] = 'generic',
                 test_cfg: Optional[dict] = None, ignore_index: int = 255,
                 data_preprocessor: Optional[dict] = None, init_cfg=None, train_cfg=None) -> None:
        super().__init__(vocabulary=vocabulary, test_cfg=test_cfg, ignore_index=ignore_index,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg, train_cfg=train_cfg)
        self.clip = MODELS.build(clip)
        self.guidance = MODELS.build(guidance) if guidance is not None else None
        self.templates = templates
        self.head = MODELS.build(self._complete_head_cfg(head))
        self.loss_decode = MODELS.build(loss_decode)
        self.back_projection = None
        # used by the loss only, sized by the training vocabulary (aeroseg.utils.checkpoint)
        self.train_only_prefixes = ('back_projection.',)
        if back_projection is not None:
            bp = dict(back_projection)
            target = bp.get('target', 'sam')
            if target == 'sam' and self.guidance is None:
                raise ValueError("back_projection.target='sam' needs a guidance encoder; set "
                                 "model.guidance or use target='clip' / 'rgb'")
            bp.setdefault('num_classes', len(self.train_vocabulary))
            bp.setdefault('in_channels', self.head.hidden_dim)
            if target == 'sam' and self.guidance is not None:
                bp.setdefault('out_channels', self.guidance.out_channels['last'])
            elif target == 'clip':
                bp.setdefault('out_channels', self.clip.embed_dim)
            elif target == 'rgb':
                bp.setdefault('out_channels', 3 * self.clip.patch_size[0] * self.clip.patch_size[1])
            self.back_projection = MODELS.build(bp)

    # ------------------------------------------------------------------ hooks
    @classmethod
    def weight_fields(cls, model_cfg) -> Dict[str, str]:
        out = {}
        if model_cfg.get('clip') is not None:
            out['vl'] = 'clip.pretrained'
        if model_cfg.get('guidance') is not None:
            out['guidance'] = 'guidance.checkpoint'
        return out

    @classmethod
    def mini_scale(cls, model, m) -> None:
        """Every CLIP becomes the tiny CLIP, every SAM the tiny SAM, every SAM 2 a tiny Hiera of the
        same class (keeping the config's rotations, fine-tuning and guidance options); the head,
        back-projection and sliding window at the overlay's widths and sizes."""
        if model.get('clip') is not None:
            clip = copy.deepcopy(m.clip)
            for k in ('rotations', 'finetune', 'qv_bias', 'dense_residual'):
                if k in model.clip:
                    clip[k] = model.clip[k]
            model.clip = clip
        g = model.get('guidance')
        if g is not None:
            tiny = copy.deepcopy(m.sam if g['type'] == 'SAMGuidanceEncoder' else m.sam2)
            for k in ('frozen', 'last'):
                if k in g:
                    tiny[k] = g[k]
            model.guidance = tiny
        model.head.update(m.head)
        if g is None:  # CLIP decoder guidance through the transposed convs: small widths too
            model.head.decoder_guidance_dims = tuple(m.clip_decoder_guidance_dims)
        if model.get('back_projection') is not None:
            model.back_projection.update(m.back_projection)
        if (model.get('test_cfg') or {}).get('mode') == 'slide':
            model.test_cfg.update(m.slide)

    def _complete_head_cfg(self, head: dict) -> dict:
        """Fill the head's input widths from the encoders (configs state only the head's own dims)."""
        from .prompts import get_templates
        head = dict(head)
        head.setdefault('num_templates', len(get_templates(self.templates)))
        head.setdefault('num_rotations', len(self.clip.rotations))
        head.setdefault('text_guidance_dim', self.clip.embed_dim)
        if self.guidance is None:
            # CAT-Seg / OVRS: CLIP dense features guide the spatial block, CLIP block outputs the
            # decoder (upsampled by transposed convs, upstream)
            head.setdefault('appearance_guidance_dim', self.clip.embed_dim)
            head.setdefault('decoder_guidance_mode', 'transpose')
            head.setdefault('decoder_guidance_in_dims', (self.clip.width,) * len(self.clip.tap_indices))
        else:
            ch = self.guidance.out_channels
            head.setdefault('appearance_guidance_dim', ch['last'])
            head.setdefault('decoder_guidance_mode', 'resize')
            head.setdefault('decoder_guidance_dims', tuple(ch['inter']))
        return head

    # ------------------------------------------------------------------ forward pieces
    def forward_logits(self, inputs: Tensor, names: Sequence[str]) -> Dict[str, Tensor]:
        """Logits (B, N, h', w') for ``names`` plus what the losses need."""
        vis = self.clip(inputs)  # resized to clip.image_size and normalised inside
        dense, taps = vis['dense'], vis['taps']
        text = self.clip.encode_text(list(names), self.templates)
        corr = cosine_cost_volume(dense, text)
        h, w = dense.shape[-2:]
        out = dict(dense=dense)
        if self.guidance is not None:
            g = self.guidance(inputs)  # resized to the guidance input size inside
            spatial = resize_to(g['last'], (h, w))
            decoder = list(g['inter'])
            out['guidance_last'] = g['last']
        else:
            spatial = dense[:, self.clip.rotations.index(0)]  # the unrotated pass guides (OVRS)
            decoder = list(taps)
        res = self.head(corr, spatial, text, decoder)
        out.update(res)
        return out

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        out = self.forward_logits(inputs, self.train_vocabulary)
        logits = resize_to(out['logits'], inputs.shape[-2:])
        targets = self.train_targets(data_samples, inputs.shape[-2:])
        losses = {}
        loss = self.loss_decode(logits, targets)
        if isinstance(loss, dict):
            losses.update(loss)
        else:
            losses[getattr(self.loss_decode, 'loss_name', 'loss_bce')] = loss
        if self.back_projection is not None:
            recon = self.back_projection(out['refined'])
            t = self.back_projection.target
            if t == 'sam':
                target = out['guidance_last']
            elif t == 'clip':
                target = out['dense'][:, self.clip.rotations.index(0)]
            else:
                target = rgb_patch_target(inputs / 255.0, recon.shape[-2:], self.clip.patch_size)
            losses['loss_backproj'] = self.back_projection.loss(recon, target)
        return losses

    def extract_feat(self, inputs: Tensor):
        return self.clip(inputs)

"""SED (xb534/SED, "SED: A Simple Encoder-Decoder for Open-Vocabulary Semantic Segmentation") behind the suite's seam.

Call graph of :meth:`SEDSegmentor.forward_logits` (upstream ``sed/sed_model.py`` ``SED.forward``,
``sed/modeling/transformer/sed_predictor.py``, ``model.py``)::

    inputs (B, 3, H, W) RGB 0..255
      ├─ clip (ConvNeXtCLIPBackbone): CLIP mean / std, bilinear resize to 768 x 768
      │     -> stem, res2..res5 (128/256/512/1024 ch at 1/4..1/32), clip_vis_dense (B, 640, 24, 24)
      ├─ text: 80 ImageNet templates per class, kept separate (P = 80); a name with ", " is the
      │     mean of its parts' embeddings per template, re-normalised (``class_embeddings``)
      ├─ cosine_cost_volume(dense, text) ──> (B, 80, T, 24, 24)
      ├─ head (SEDHead) with guidance res4 / res3 / res2, detached (``fusion_features ...detach()``)
      └─ [logits (B, T, 192, 192), three aux logits]; loss: BCE on each, summed

Loss (``SED.forward`` training branch): every output bilinearly resized to the label size, one-hot
targets over the training vocabulary, unlabelled (255) pixels all-zero targets inside the mean,
``F.binary_cross_entropy_with_logits`` per output, the four summed (detectron2 sums the loss dict).
Hidden unseen pixels (254) are left out as for CAT-Seg in this suite (``hidden_mode='exclude'``).
Test: sigmoid of the main logits at 1/4 of the CLIP input, resized to the image (whole mode).

Upstream's GPU-only code (``class_embeddings`` and ``fast_conv_decoder`` call ``.cuda()``) has no
counterpart: tensors follow the module's device, CPU and GPU run the same code.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from aeroseg.models.base_segmentor import OpenVocabSegmentor, resize_to
from aeroseg.models.cost_volume import cosine_cost_volume
from aeroseg.models.prompts import get_templates

__all__ = ['SEDSegmentor', 'synonym_groups']


def synonym_groups(names: Sequence[str]) -> List[List[str]]:
    """Upstream's synonym rule (``class_embeddings``): a class name with ``', '`` lists synonyms."""
    return [n.split(', ') if ', ' in n else [n] for n in names]


@MODELS.register_module()
class SEDSegmentor(OpenVocabSegmentor):
    """ConvNeXt CLIP encoder + SED's gradual fusion decoder.

    Args:
        clip: :class:`~aeroseg.models.convnext_clip.ConvNeXtCLIPBackbone` config.
        head: :class:`~baselines.sed.head.SEDHead` config; ``num_templates`` and
            ``decoder_guidance_dims`` (res4 / res3 / res2 widths) are filled in here.
        loss_decode: the BCE applied to each of the four outputs.
        templates: 'imagenet80' (PROMPT_ENSEMBLE_TYPE "imagenet").
        vocabulary, test_cfg, ignore_index: see :class:`OpenVocabSegmentor`.
    """

    def __init__(self, clip: dict, head: dict,
                 loss_decode: dict = dict(type='OpenVocabBCELoss', ignore_mode='zero_target'),
                 templates: Union[str, Sequence[str]] = 'imagenet80',
                 vocabulary: dict = dict(split='isaid', train='seen', test='all'),
                 test_cfg: Optional[dict] = None, ignore_index: int = 255,
                 data_preprocessor: Optional[dict] = None, init_cfg=None, train_cfg=None) -> None:
        super().__init__(vocabulary=vocabulary, test_cfg=test_cfg, ignore_index=ignore_index,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg, train_cfg=train_cfg)
        self.clip = MODELS.build(clip)
        self.templates = templates
        head = dict(head)
        head.setdefault('num_templates', len(get_templates(templates)))
        ch = self.clip.stage_channels
        head.setdefault('decoder_guidance_dims', (ch[2], ch[1], ch[0]))  # res4, res3, res2
        self.head = MODELS.build(head)
        self.loss_decode = MODELS.build(loss_decode)

    # ------------------------------------------------------------------ hooks
    @classmethod
    def weight_fields(cls, model_cfg) -> Dict[str, str]:
        return {'vl': 'clip.pretrained'}

    @classmethod
    def mini_scale(cls, model, m) -> None:
        """The tiny ConvNeXt CLIP (``m.convnext_clip``: ConvNeXt-B's block and width ratios) at the
        mini SED input (256 px -> 8 x 8 cost map; full: 768 -> 24 x 24), keeping the config's
        fine-tuning policy, and the head at ``m.sed_head``'s widths (the rest as the full config:
        80 templates, 3 stages, kernel 9, 4 heads, pooling, top-k)."""
        clip = copy.deepcopy(m.convnext_clip)
        if 'finetune' in model.clip:
            clip['finetune'] = model.clip['finetune']
        model.clip = clip
        model.head.update(m.sed_head)
        model.head.pop('decoder_guidance_dims', None)  # from the tiny CLIP's stage widths

    # ------------------------------------------------------------------ forward
    def text_features(self, names: Sequence[str]) -> Tensor:
        """(T, P, D) L2-normalised text embeddings, synonyms averaged per template."""
        groups = synonym_groups(names)
        flat = [n for g in groups for n in g]
        emb = self.clip.encode_text(flat, self.templates)  # (sum S, P, D), cached while frozen
        if len(flat) == len(groups):
            return emb
        out, i = [], 0
        for g in groups:
            e = emb[i:i + len(g)]
            out.append(F.normalize(e.mean(0), dim=-1) if len(g) > 1 else e[0])
            i += len(g)
        return torch.stack(out)

    def forward_logits(self, inputs: Tensor, names: Sequence[str]) -> Dict[str, Tensor]:
        vis = self.clip(inputs)  # resized to clip.image_size and normalised inside
        guidance = [vis[k].detach() for k in ('res4', 'res3', 'res2')]
        corr = cosine_cost_volume(vis['dense'], self.text_features(names))  # (B, P, T, h, w)
        outs = self.head(corr, guidance)
        return dict(logits=outs[0], aux=outs[1:])

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        out = self.forward_logits(inputs, self.train_vocabulary)
        targets = self.train_targets(data_samples, inputs.shape[-2:])
        return {f'loss_sem_seg_{i}': self.loss_decode(resize_to(o, targets.shape[-2:]), targets)
                for i, o in enumerate([out['logits']] + list(out['aux']))}

    def extract_feat(self, inputs: Tensor):
        return self.clip(inputs)

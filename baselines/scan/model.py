"""SCAN (yongliu20/SCAN@097fbbd, "Open-Vocabulary Segmentation with Semantic-Assisted
Calibration") on the suite's seam, from MMSegmentation / MMDetection parts (no detectron2).

Call graph of :meth:`SCANSegmentor.forward_logits` (``scan/ovseg_model.py`` ``SCAN.forward`` +
``semantic_inference``; ``clip_adapter/adapter.py``)::

    inputs RGB 0..255 (B, 3, H, W), zero-padded after normalising to a multiple of 32
      ├─ ImageNet mean / std -> Swin -> SCANMask2FormerHead (MSDeformAttnPixelDecoder, 9 masked-
      │    attention layers, 100 queries) -> per layer: query embeddings (B, Q, 512), masks
      ├─ CLIP mean / std, NEAREST resize to 224 -> original (frozen) CLIP, all layers
      │    -> tokens of layers 6 / 9 / 12 -> LFM (sigma 9 / 7 / 3) -> SIProjection 768 -> 512
      └─ semantic integration per layer: CrossAttentionStack(queries, tokens)
           + learnable_weight * normalised CLIP image embedding -> SeqOneEncoder
           -> 100 * cos(query, [text embeddings (vild templates); learnable no-object])
    test: in = softmax(logits)[:, :-1]; masks = sigmoid(mask logits at the input size)
          masked crops (mask > 0.4, box, mean fill, bicubic 224) -> (CS-)CLIP with the contextual
          shift (layers 1 / 3 / 5, ratio 0.15) -> out = softmax(100 * cos(crop, text))
          class = in^(1 - w) * out^w (w = 0.7; queries with an empty mask keep out = 1)
          scores = sum_q class[q, c] * mask[q]  (/ Q in logits_to_scores: [0, 1])
    train: the set criterion of mmdet's Mask2Former on the logits of every layer (deep
          supervision): Hungarian matching (class 2, mask BCE 5, dice 5), class CE 2 with
          no-object 0.1, mask BCE 5 + dice 5 on 12,544 sampled points.

CS-CLIP (the authors' fine-tuned CLIP for masked crops) exists only as their checkpoint:
``cs_clip.pretrained`` loads it in the official key layout (:func:`~baselines.scan.checkpoint.
cs_clip_state_dict`); with ``cs_clip=None`` the ensemble uses the original CLIP instead
(``cs_clip_used`` says which, and the config's results row carries it). The CS-CLIP also supplies
the text embeddings, as upstream's ``clip_adapter.clip_model`` whose weights it replaces.
"""
from __future__ import annotations

import copy
import random
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import SampleList, add_prefix, get_predefined_templates
from torch import Tensor, nn

from aeroseg.models.base_segmentor import OpenVocabSegmentor
from aeroseg.models.clip_backbone import CLIPDenseBackbone
from aeroseg.models.mask_classification import mask_targets, no_object_class_weight, normalize_zero_pad

from .modules import (SemanticIntegration, clip_layer_outputs, crop_with_mask,
                      encode_with_contextual_shift, mask_boxes)

__all__ = ['SCANSegmentor']

# scan_vitB.yaml PIXEL_MEAN / PIXEL_STD (ImageNet, for the Swin); CLIP statistics from the CLIP
# (OpenAI's, upstream's hard-coded openai_pixel_mean / std, also datacomp's)
_IMAGENET_MEAN = (123.675, 116.280, 103.530)
_IMAGENET_STD = (58.395, 57.120, 57.375)


@MODELS.register_module()
class SCANSegmentor(OpenVocabSegmentor):
    """SCAN: Mask2Former proposals classified by text, with semantic integration of the frozen
    CLIP and the contextual-shift CLIP ensemble at test.

    Args:
        backbone: the mmseg ``SwinTransformer`` config (Swin-B 384: embed 128, depths 2-2-18-2).
        backbone_checkpoint: its ImageNet-22k weights (mmseg's converted file or URL); None:
            random (mini world) / a trained SCAN checkpoint supplies them.
        decode_head: the :class:`~baselines.scan.proposal.SCANMask2FormerHead` config;
            ``num_classes`` and the class-CE ``class_weight`` are filled from the training
            vocabulary.
        clip: the original CLIP, ``dict(model_name='ViT-B-16', pretrained='datacomp_xl_s13b_b90k'
            | <file> | None, model_config_dir=None, quick_gelu=None)`` (``ClipAdapter``).
        cs_clip: ``dict(pretrained=<official CS-CLIP file>)`` or None (ensemble with the original
            CLIP: the documented fallback).
        si_layers / si_sigmas: CLIP layers (1-based) and LFM sigmas (SELECT_ORI_CLIP_ID [6, 9, 12],
            FREQUENCY_SIGMA [9, 7, 3]).
        scan_dim, num_ca_layers, num_encoder_layers, num_heads: SCAN_DIM 512, ``CA(num=5)``,
            ``TransformerEncoder(num_layers=5)``, 8 heads.
        cls_weight_init: initial ``learnable_weight`` (0.1).
        templates: text templates ('vild': the 14 ViLD prompts, TEXT_TEMPLATES).
        clip_ensemble_weight, mask_thr, replace_ratio, replace_layers: CLIP_ENSEMBLE_WEIGHT 0.7,
            MASK_THR 0.4, REPLACE_RATIO 0.15, REPLACE_LAYER [1, 3, 5]; ``clip_ensemble=False``
            skips the crops (in-vocabulary scores only).
        shift_seed: seed of the contextual shift's draw (a fresh ``random.Random`` per forward).
        size_divisor: SIZE_DIVISIBILITY 32; no_object_weight: NO_OBJECT_WEIGHT 0.1.
    """

    def __init__(self, backbone: dict, decode_head: dict,
                 clip: dict = dict(model_name='ViT-B-16', pretrained='datacomp_xl_s13b_b90k'),
                 cs_clip: Optional[dict] = None, backbone_checkpoint: Optional[str] = None,
                 si_layers: Sequence[int] = (6, 9, 12), si_sigmas: Sequence[float] = (9, 7, 3),
                 scan_dim: int = 512, num_ca_layers: int = 5, num_encoder_layers: int = 5,
                 num_heads: int = 8, cls_weight_init: float = 0.1, templates='vild',
                 clip_ensemble: bool = True, clip_ensemble_weight: float = 0.7,
                 mask_thr: float = 0.4, replace_ratio: float = 0.15,
                 replace_layers: Sequence[int] = (1, 3, 5), shift_seed: int = 0,
                 mask_fill: str = 'mean', size_divisor: int = 32, no_object_weight: float = 0.1,
                 pixel_mean: Sequence[float] = _IMAGENET_MEAN,
                 pixel_std: Sequence[float] = _IMAGENET_STD,
                 vocabulary: dict = dict(split='isaid', train='seen', test='all'),
                 test_cfg: Optional[dict] = None, ignore_index: int = 255,
                 data_preprocessor: Optional[dict] = None, init_cfg=None, train_cfg=None) -> None:
        super().__init__(vocabulary=vocabulary, test_cfg=test_cfg, ignore_index=ignore_index,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg, train_cfg=train_cfg)
        from . import proposal  # noqa: F401  (mmdet: imported by SCAN only, when it is built)
        if len(si_layers) != len(si_sigmas):
            raise ValueError(f'model.si_layers {tuple(si_layers)} and model.si_sigmas '
                             f'{tuple(si_sigmas)} need one sigma per layer (upstream: [6, 9, 12] / [9, 7, 3])')
        if mask_fill != 'mean':
            raise ValueError(f"model.mask_fill={mask_fill!r}: only 'mean' (MASK_FILL) is implemented")
        self.register_buffer('pixel_mean', torch.tensor(pixel_mean).view(1, 3, 1, 1), False)
        self.register_buffer('pixel_std', torch.tensor(pixel_std).view(1, 3, 1, 1), False)
        self.size_divisor = size_divisor
        self.templates = get_predefined_templates(templates) if isinstance(templates, str) \
            else list(templates)
        self.clip_ensemble = clip_ensemble
        self.clip_ensemble_weight = float(clip_ensemble_weight)
        self.mask_thr = float(mask_thr)
        self.replace_ratio = float(replace_ratio)
        self.replace_layers = tuple(int(d) for d in replace_layers)
        self.shift_seed = shift_seed

        # CLIPs: the original one (frozen, semantic integration + class tokens for the shift) and
        # the CS-CLIP (frozen, masked crops + text); without a CS-CLIP file the original is both
        clip = dict(clip)
        self.clip_cfg = clip
        self.clip = CLIPDenseBackbone(
            model_name=clip['model_name'], pretrained=clip.get('pretrained'),
            model_config_dir=clip.get('model_config_dir'), quick_gelu=clip.get('quick_gelu'),
            cache_dir=clip.get('cache_dir'), image_size=clip.get('image_size', 224),
            tap_indices=(), finetune='frozen')
        self.cs_clip_used = bool(cs_clip and cs_clip.get('pretrained'))
        self.cs_clip = None
        if self.cs_clip_used:
            from .checkpoint import load_cs_clip
            self.cs_clip = CLIPDenseBackbone(
                model_name=clip['model_name'], pretrained=None,
                model_config_dir=clip.get('model_config_dir'), quick_gelu=clip.get('quick_gelu'),
                image_size=clip.get('image_size', 224), tap_indices=(), finetune='frozen')
            load_cs_clip(self.cs_clip, cs_clip['pretrained'])
        v = self.clip.clip.visual
        self.clip_size = tuple(v.image_size) if isinstance(v.image_size, (tuple, list)) else (v.image_size,) * 2
        depth, width = len(v.transformer.resblocks), v.transformer.width
        bad = [d for d in (*si_layers, *self.replace_layers) if not 1 <= int(d) <= depth]
        if bad:
            raise ValueError(f'model.si_layers / replace_layers {bad} outside 1..{depth} (the CLIP '
                             f'{clip["model_name"]} has {depth} blocks)')
        embed_dim = v.output_dim
        if scan_dim != embed_dim:
            raise ValueError(f'model.scan_dim={scan_dim} must equal the CLIP embedding width '
                             f'{embed_dim} (queries are scored against its text embeddings)')
        self.si = SemanticIntegration(width, si_layers, si_sigmas, scan_dim, num_ca_layers,
                                      num_encoder_layers, num_heads, cls_weight_init=cls_weight_init)
        # MaskFormerClipAdapter.non_object_embedding: N(0, text width ** -0.5)
        text_width = self.clip.clip.transformer.width
        self.non_object_embedding = nn.Parameter(torch.randn(1, embed_dim) * text_width ** -0.5)

        # proposal network
        with DefaultScope.overwrite_default_scope('mmseg'):
            bb = ConfigDict(copy.deepcopy(dict(backbone)))
            if backbone_checkpoint:
                bb['init_cfg'] = dict(type='Pretrained', checkpoint=backbone_checkpoint)
            self.backbone = MODELS.build(bb)
            head = ConfigDict(copy.deepcopy(dict(decode_head)))
            n = len(self.train_vocabulary)
            head['num_classes'] = n
            head.setdefault('ignore_index', ignore_index)
            head['loss_cls']['class_weight'] = no_object_class_weight(
                head['loss_cls'].get('class_weight'), n, no_object_weight,
                'model.decode_head.loss_cls.class_weight')
            if head.get('embed_dims', scan_dim) != scan_dim:
                raise ValueError(f'model.decode_head.embed_dims={head["embed_dims"]} must equal '
                                 f'model.scan_dim={scan_dim} (EMBEDDING_DIM = SCAN_DIM upstream)')
            head['embed_dims'] = scan_dim
            self.decode_head = MODELS.build(head)
        self.num_queries = self.decode_head.num_queries
        self.align_corners = False

    # ------------------------------------------------------------------ hooks
    @classmethod
    def weight_fields(cls, model_cfg) -> Dict[str, str]:
        out = {'vl': 'clip.pretrained', 'proposals': 'backbone_checkpoint'}  # Swin of the proposals
        if model_cfg.get('cs_clip') is not None:
            out['cs_clip'] = 'cs_clip.pretrained'
        return out

    @classmethod
    def mini_scale(cls, model, m) -> None:
        """The tiny CLIP (128 px, patch 8 -> 16 x 16 tokens, width 128, 4 blocks; full: 224 px ->
        14 x 14, 768, 12) as the original CLIP, no CS-CLIP; SI from its blocks 2 / 3 / 4 and the
        shift after blocks 1 / 2 / 3 (full 6 / 9 / 12 and 1 / 3 / 5 of 12: the nearest fractions on
        4 blocks), sigma scaled by the grid (16 / 14); SCAN_DIM = its embedding width 128, 2 CA and
        2 encoder layers with 4 heads (full 5, 5, 8). A tiny Swin (embed 32, depths 2-2-2-2,
        heads 1-2-4-8, window 4; full Swin-B 128, 2-2-18-2, window 12) with random weights (no tiny
        Swin is pretrained) and a Mask2Former at width 64 (full 256): 2 pixel-decoder layers (6),
        3 decoder layers (9), FFN 128 (2048 / 1024), 20 queries (100), 1,024 points (12,544 on
        640^2 crops)."""
        c = m.clip
        model.clip = dict(model_name=c['model_name'], model_config_dir=c.get('model_config_dir'),
                          pretrained=c.get('pretrained'), image_size=c.get('image_size', 128))
        model.cs_clip = None
        model.backbone_checkpoint = None
        model.si_layers = (2, 3, 4)
        model.si_sigmas = tuple(round(s * 16 / 14, 3) for s in (9, 7, 3))
        model.replace_layers = (1, 2, 3)
        model.scan_dim = 128
        model.num_ca_layers = 2
        model.num_encoder_layers = 2
        model.num_heads = 4
        model.backbone.update(pretrain_img_size=m.crop, embed_dims=32, depths=(2, 2, 2, 2),
                              num_heads=(1, 2, 4, 8), window_size=4, drop_path_rate=0.1)
        dh = model.decode_head
        w = 64
        dh.update(in_channels=[32, 64, 128, 256], feat_channels=w, out_channels=w, num_queries=20,
                  embed_dims=128, embed_hidden_dim=256)
        pd = dh.pixel_decoder
        pd.encoder.num_layers = 2
        pd.encoder.layer_cfg.self_attn_cfg.update(embed_dims=w, num_heads=4)
        pd.encoder.layer_cfg.ffn_cfg.update(embed_dims=w, feedforward_channels=2 * w)
        pd.positional_encoding.num_feats = w // 2
        pd.norm_cfg = dict(type='GN', num_groups=8)
        dh.positional_encoding.num_feats = w // 2
        td = dh.transformer_decoder
        td.num_layers = 3
        for k in ('self_attn_cfg', 'cross_attn_cfg'):
            td.layer_cfg[k].update(embed_dims=w, num_heads=4)
        td.layer_cfg.ffn_cfg.update(embed_dims=w, feedforward_channels=2 * w)
        dh.train_cfg.num_points = 1024

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        super().train(mode)
        for c in (self.clip, self.cs_clip):
            if c is not None:
                c.eval()  # frozen CLIPs (no dropout / cache reset by training mode)
        return self

    @property
    def text_clip(self) -> CLIPDenseBackbone:
        return self.cs_clip if self.cs_clip is not None else self.clip

    # ------------------------------------------------------------------ pieces
    def text_embeddings(self, names: Sequence[str]) -> Tensor:
        """(N + 1, D): template-averaged class embeddings of ``names`` + the no-object embedding,
        all L2-normalised (``MaskFormerClipAdapter.get_text_features``)."""
        with torch.no_grad():
            text = self.text_clip.encode_text_mean(list(names), self.templates)
        return torch.cat([text, F.normalize(self.non_object_embedding, dim=-1)], dim=0)

    @torch.no_grad()
    def original_clip(self, x_clip: Tensor) -> Dict[str, Tensor]:
        """The frozen original CLIP on the CLIP-normalised (padded) image, NEAREST-resized to its
        input size (upstream's ``F.interpolate(original_images.tensor, [224, 224])``)."""
        x = F.interpolate(x_clip, size=self.clip_size, mode='nearest')
        return clip_layer_outputs(self.clip.clip.visual, x)

    @staticmethod
    def sim_logits(embeds: Tensor, text: Tensor) -> Tensor:
        """``ClipAdapter.get_sim_logits``: 100 x cosine."""
        return 100 * F.normalize(embeds, dim=-1) @ text.t()

    def proposals(self, inputs: Tensor, names: Sequence[str], data_samples=None, all_layers=False):
        """(class logits per layer (B, Q, N + 1), mask logits per layer (B, Q, h, w), CLIP pass)
        on ``inputs`` (padded RGB 0..255)."""
        x = normalize_zero_pad(inputs, self.pixel_mean, self.pixel_std, data_samples)
        x_clip = normalize_zero_pad(inputs, self.clip.pixel_mean, self.clip.pixel_std, data_samples)
        clip_out = self.original_clip(x_clip)
        memory = self.si.memory(clip_out)
        text = self.text_embeddings(names)
        feats = self.backbone(x)
        samples = data_samples or [SegDataSample(metainfo=dict(img_shape=x.shape[-2:]))
                                   for _ in range(x.shape[0])]
        embeds, masks = self.decode_head(feats, samples)
        if not all_layers:
            embeds, masks = embeds[-1:], masks[-1:]
        logits = [self.sim_logits(self.si(e, memory, clip_out['embed']), text) for e in embeds]
        return logits, masks, clip_out

    @torch.no_grad()
    def crop_logits(self, image: Tensor, masks: Tensor, names: Sequence[str], clip_out: dict,
                    index: int, rng: random.Random):
        """(CS-)CLIP logits (K, N + 1) of the masked crops of the K masks above ``mask_thr`` (of
        (Q, H, W) probabilities on ``image`` (3, H, W) RGB 0..255) and which queries they are."""
        binary = masks > self.mask_thr
        valid = binary.flatten(1).any(dim=1)
        if not valid.any():
            return None, valid
        mean = self.clip.pixel_mean.view(3)
        std = self.clip.pixel_std.view(3, 1, 1)
        regions, region_masks = [], []
        for box, m in zip(mask_boxes(binary[valid]), binary[valid]):
            r, rm = crop_with_mask(image, m.to(image.dtype), box, fill=mean.tolist())
            regions.append(F.interpolate(((r - mean.view(3, 1, 1)) / std)[None], size=self.clip_size,
                                         mode='bicubic'))
            region_masks.append(F.interpolate(rm[None], size=self.clip_size, mode='nearest'))
        visual = self.text_clip.clip.visual
        idx = torch.full((len(regions),), index, dtype=torch.long)
        emb = encode_with_contextual_shift(visual, torch.cat(regions), torch.cat(region_masks),
                                           clip_out['cls'], idx, self.replace_ratio,
                                           self.replace_layers, rng)
        return self.sim_logits(emb, self.text_embeddings(names)), valid

    def forward_logits(self, inputs: Tensor, names: Sequence[str]) -> Dict[str, Tensor]:
        """SCAN's semantic-inference scores (B, N, H, W) at the input size, in [0, Q] (``logits``:
        already scores, see :meth:`logits_to_scores`); plus the last layer's class logits / masks."""
        h, w = inputs.shape[-2:]
        d = self.size_divisor
        padded = F.pad(inputs, (0, (-w) % d, 0, (-h) % d))
        # the padding is zero AFTER normalising (detectron2 ImageList), for the Swin and the CLIP
        samples = [SegDataSample(metainfo=dict(img_shape=(h, w), pad_shape=padded.shape[-2:]))
                   for _ in range(inputs.shape[0])]
        logits, masks, clip_out = self.proposals(padded, names, samples)
        cls_logits, mask_logits = logits[-1], masks[-1]
        masks_up = F.interpolate(mask_logits, size=padded.shape[-2:], mode='bilinear',
                                 align_corners=False)[..., :h, :w].sigmoid()
        in_vocab = F.softmax(cls_logits, dim=-1)[..., :-1]
        probs = in_vocab
        if self.clip_ensemble and self.clip_ensemble_weight > 0:
            rng = random.Random(self.shift_seed)
            out = []
            for b in range(inputs.shape[0]):
                clip_logits, valid = self.crop_logits(inputs[b], masks_up[b], names, clip_out, b, rng)
                out_vocab = torch.ones_like(in_vocab[b])
                if clip_logits is not None:
                    out_vocab[valid] = F.softmax(clip_logits[:, :-1], dim=-1)
                out.append(in_vocab[b] ** (1 - self.clip_ensemble_weight)
                           * out_vocab ** self.clip_ensemble_weight)
            probs = torch.stack(out)
        scores = torch.einsum('bqc,bqhw->bchw', probs, masks_up)
        return dict(logits=scores, mask_logits=mask_logits, cls_logits=cls_logits)

    def logits_to_scores(self, logits: Tensor) -> Tensor:
        """Sum over queries of class probability x mask probability, divided by the number of
        queries so that scores lie in [0, 1] as the seam promises (argmax unchanged)."""
        return logits / self.num_queries

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Mask2Former's set criterion on the text-scored logits of every decoder layer."""
        gts = mask_targets(self, data_samples, inputs.shape[-2:])
        logits, masks, _ = self.proposals(inputs, self.train_vocabulary, data_samples, all_layers=True)
        metas = [s.metainfo for s in data_samples]
        return add_prefix(self.decode_head.loss_by_feat(logits, masks, gts, metas), 'decode')

    def extract_feat(self, inputs: Tensor):
        return self.backbone(normalize_zero_pad(inputs, self.pixel_mean, self.pixel_std))

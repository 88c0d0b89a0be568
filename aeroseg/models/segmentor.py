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

The vocabulary is data, not architecture: training uses the seen class names of the dataset's
split (labels of full ids remapped to positions in that list, the split's other classes to
``HIDDEN_INDEX``, left out of the loss, and 255 kept as unlabelled); testing
uses all classes; :meth:`set_vocabulary` swaps in any list of names for inference.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from ..datasets.splits import get_split, resolve_class_names
from ..datasets.transforms import HIDDEN_INDEX
from .back_projection import rgb_patch_target
from .cost_volume import cosine_cost_volume

__all__ = ['OpenVocabCostSegmentor']


def _resize(x: Tensor, size, mode='bilinear') -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False if mode == 'bilinear' else None)


@MODELS.register_module()
class OpenVocabCostSegmentor(BaseSegmentor):
    """CLIP cost volume -> spatial/class refinement -> upsampling decoder.

    Args:
        clip: config of :class:`CLIPDenseBackbone` (rotations, templates and fine-tuning live there).
        head: config of :class:`CostAggregationHead`.
        guidance: config of a guidance encoder (SAM / SAM 2) or None for CLIP guidance.
        back_projection: config of :class:`SemanticBackProjection` or None.
        loss_decode: segmentation loss config (BCE on one-hot targets by default).
        vocabulary: ``dict(split='isaid', train='seen', test='all')`` (the paper's protocol) or
            explicit lists of names: ``dict(train=[...], test=[...])``; 'seen' / 'unseen' /
            'all' pick ids of the split.
        templates: prompt template set name ('rs4', 'generic', ...) or a list of templates.
        test_mode: 'whole' (the input at the CLIP resolution) or 'slide' (OVRS: resize to
            ``slide_resize``, ``slide_crop`` crops at ``slide_stride`` plus one global view,
            sigmoid, averaged).
    """

    def __init__(self, clip: dict, head: dict, guidance: Optional[dict] = None,
                 back_projection: Optional[dict] = None,
                 loss_decode: dict = dict(type='OpenVocabBCELoss'),
                 vocabulary: dict = dict(split='isaid', train='seen', test='all'),
                 templates: Union[str, Sequence[str]] = 'generic',
                 test_mode: str = 'whole', slide_resize: int = 640, slide_crop: int = 384,
                 slide_stride: int = 256, ignore_index: int = 255,
                 data_preprocessor: Optional[dict] = None, init_cfg=None, train_cfg=None,
                 test_cfg=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip = MODELS.build(clip)
        self.guidance = MODELS.build(guidance) if guidance is not None else None
        self.templates = templates
        if test_mode not in ('whole', 'slide'):
            raise ValueError(f"test_mode must be 'whole' or 'slide', got {test_mode!r}")
        self.test_mode = test_mode
        self.slide_resize, self.slide_crop, self.slide_stride = slide_resize, slide_crop, slide_stride
        self.ignore_index = ignore_index
        self._setup_vocabulary(vocabulary)
        self.head = MODELS.build(self._complete_head_cfg(head))
        self.loss_decode = MODELS.build(loss_decode)
        self.back_projection = None
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
        self.align_corners = False

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

    # ------------------------------------------------------------------ vocabulary
    def _setup_vocabulary(self, vocab: dict) -> None:
        split = get_split(vocab['split']) if vocab.get('split') else None

        def pick(spec):
            if isinstance(spec, str):
                if split is None:
                    raise ValueError(f"vocabulary {spec!r} needs vocabulary.split (e.g. 'isaid')")
                ids = {'seen': split.seen, 'unseen': split.unseen,
                       'all': tuple(range(split.num_classes))}.get(spec)
                if ids is None:
                    raise ValueError(f"vocabulary must be 'seen', 'unseen', 'all' or a list of names, got {spec!r}")
                return tuple(split.classes[i] for i in ids), tuple(ids)
            names = resolve_class_names(spec)
            ids = tuple(split.classes.index(n) if split and n in split.classes else -1 for n in names)
            return names, ids

        self.train_vocabulary, train_ids = pick(vocab.get('train', 'seen'))
        self.test_vocabulary, test_ids = pick(vocab.get('test', 'all'))
        # full dataset id -> position in the training vocabulary; the dataset's other classes
        # (and pixels HideUnseenClasses already hid) -> HIDDEN_INDEX, which the loss leaves out
        # by default; 255 and anything else -> ignore_index (unlabelled)
        lut = torch.full((256,), self.ignore_index, dtype=torch.long)
        if split is not None:
            lut[:split.num_classes] = HIDDEN_INDEX
        lut[HIDDEN_INDEX] = HIDDEN_INDEX
        for pos, i in enumerate(train_ids):
            if i >= 0:
                lut[i] = pos
        self.register_buffer('_train_label_lut', lut, persistent=False)

    def set_vocabulary(self, class_names: Sequence[str]) -> None:
        """Use ``class_names`` (any list) as the test vocabulary: output id i = class_names[i]."""
        self.test_vocabulary = resolve_class_names(class_names)

    # ------------------------------------------------------------------ forward pieces
    def _forward_logits(self, inputs: Tensor, names: Sequence[str]) -> Dict[str, Tensor]:
        """Logits (B, N, h', w') for ``names`` plus what the losses need."""
        vis = self.clip(inputs)  # resized to clip.image_size and normalised inside
        dense, taps = vis['dense'], vis['taps']
        text = self.clip.encode_text(list(names), self.templates)
        corr = cosine_cost_volume(dense, text)
        h, w = dense.shape[-2:]
        out = dict(dense=dense)
        if self.guidance is not None:
            g = self.guidance(inputs)  # resized to the guidance input size inside
            spatial = _resize(g['last'], (h, w))
            decoder = list(g['inter'])
            out['guidance_last'] = g['last']
        else:
            spatial = dense[:, self.clip.rotations.index(0)]  # the unrotated pass guides (OVRS)
            decoder = list(taps)
        res = self.head(corr, spatial, text, decoder)
        out.update(res)
        return out

    def _train_targets(self, data_samples: SampleList, size) -> Tensor:
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples]).squeeze(1).long()
        gt = self._train_label_lut.to(gt.device)[gt.clamp(0, 255)]
        if tuple(gt.shape[-2:]) != tuple(size):
            gt = F.interpolate(gt[:, None].float(), size=size, mode='nearest')[:, 0].long()
        return gt

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        out = self._forward_logits(inputs, self.train_vocabulary)
        logits = _resize(out['logits'], inputs.shape[-2:])
        targets = self._train_targets(data_samples, inputs.shape[-2:])
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

    @torch.no_grad()
    def _slide_logits(self, inputs: Tensor, names) -> Tensor:
        """OVRS / CAT-Seg test-time sliding window: crops + one global view, sigmoid, average."""
        r, c, s = self.slide_resize, self.slide_crop, self.slide_stride
        img = _resize(inputs, (r, r))
        starts = list(range(0, max(r - c, 0) + 1, s))
        if starts[-1] + c < r:
            starts.append(r - c)
        n = len(names)
        acc = img.new_zeros(img.shape[0], n, r, r)
        cnt = img.new_zeros(1, 1, r, r)
        for y in starts:
            for x0 in starts:
                crop = img[..., y:y + c, x0:x0 + c]
                p = _resize(self._forward_logits(crop, names)['logits'], (c, c)).sigmoid()
                acc[..., y:y + c, x0:x0 + c] += p
                cnt[..., y:y + c, x0:x0 + c] += 1
        glob = _resize(self._forward_logits(img, names)['logits'], (r, r)).sigmoid()
        return (acc / cnt + glob) / 2

    def predict_logits(self, inputs: Tensor, names: Optional[Sequence[str]] = None) -> Tensor:
        """Class scores (B, N, H, W) at the input size for ``names`` (default: test vocabulary)."""
        names = self.test_vocabulary if names is None else resolve_class_names(names)
        if self.test_mode == 'slide':
            logits = self._slide_logits(inputs, names)
        else:
            logits = self._forward_logits(inputs, names)['logits'].sigmoid()
        return _resize(logits, inputs.shape[-2:])

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        if data_samples is None:
            from mmseg.structures import SegDataSample
            data_samples = [SegDataSample(metainfo=dict(img_shape=inputs.shape[-2:],
                                                         ori_shape=inputs.shape[-2:]))
                            for _ in range(inputs.shape[0])]
        logits = self.predict_logits(inputs)
        return self.postprocess_result(logits, data_samples)

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        return self._forward_logits(inputs, self.test_vocabulary)['logits']

    def extract_feat(self, inputs: Tensor):
        return self.clip(inputs)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        return self.predict_logits(inputs)

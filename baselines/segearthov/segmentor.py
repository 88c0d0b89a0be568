"""SegEarth-OV (likyoo/SegEarth-OV), training-free: CLIP dense features, SimFeatUp, bias alleviation.

Call graph of :meth:`SegEarthOV.predict` (official: ``segearth_segmentor.py``
``SegEarthSegmentation.predict`` -> ``forward_slide`` -> ``forward_feature``, then
``postprocess_result``)::

    inputs (B,3,H,W) RGB 0..255
      --(x - mean) / std (SegEarth-OV's preprocessor numbers)--> --bilinear resize, long side 448
        (official: the test pipeline's Resize(scale=(448, 448), keep_ratio=True))-->
      slide: 224 crops at stride 112 (the last crop of a row / column ends at the border; a side
        shorter than 224 gives a smaller crop), each crop zero-padded to a multiple of the patch:
          SegEarthCLIP.encode_dense --> dense (B,D,h,w), cls (B,D)     [last block: SegEarth attention]
          SimFeatUp(dense, guidance = the normalised padded crop) --> (B,D,16h,16w)   [per crop]
          logits = <dense / |dense|, text> + cls_token_lambda * <cls / |cls|, text>   (-0.3)
          (no upsampler: these logits bilinear-resized to the crop)
      -- crop logits (cosines, NOT probabilities) summed and divided by the overlap count -->
      -- bilinear back to the input size; mmseg's postprocess_result geometry (unpad, flip,
         resize to ori_shape) -->
      probabilities = softmax(50 * logits) over all queries (class names, synonyms, background
        queries) --> max over each class's synonyms --> argmax;
        top probability < prob_thd, or a background query winning --> bg_idx

Text: each query's 80 ImageNet prompts (``prompts.imagenet80``) encoded, L2-normalised, averaged,
re-normalised. Class names and synonyms come from :mod:`aeroseg.datasets.splits`; a vocabulary
entry may also carry its own synonyms after commas (``'building,roof,house'``, the official
class-file syntax). The official numbers run in fp16 on a GPU; ours run in the input's dtype
(float32 on CPU).

Background: the suite's iSAID / DLRSD / OEM labels have no background class (255 = unlabelled),
while the official iSAID / OEM class files start with a 'background' line. ``bg_idx=None`` sends
thresholded pixels to ``ignore_index`` (255: counted as a miss of their true class, never as a
false positive); ``background_queries=('background',)`` adds the official extra query, scored
in the softmax, whose pixels also go to ``bg_idx``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from aeroseg.datasets.splits import Split, get_split, resolve_class_names
from aeroseg.models.base_segmentor import OpenVocabSegmentor
from aeroseg.models.prompts import expand_class_names, reduce_synonyms

__all__ = ['SegEarthOV', 'parse_class_entries', 'load_class_file', 'DEFAULT_TEST_CFG']

# segearth_segmentor.py + configs/cfg_*.py: slide_crop 224, slide_stride 112, Resize (448, 448)
# keep_ratio; prob_thd 0.0 is the official constructor default (per-dataset values on our label
# sets, DLRSD's our choice: official_names.OFFICIAL_TEST_CFG).
DEFAULT_TEST_CFG = dict(mode='slide', resize_long=448, crop_size=224, stride=112, prob_thd=0.0,
                        bg_idx=None, background_queries=())
_VOCAB_SPECS = ('all', 'seen', 'unseen')


def parse_class_entries(entries: Sequence[str], split: Optional[Split] = None
                        ) -> Tuple[Tuple[str, ...], Dict[int, Tuple[str, ...]]]:
    """``['ship', 'building,roof,house']`` -> (class names, {class id: synonyms}).

    The first comma-separated part names the class; the rest are synonyms (official class-file
    syntax). A name that is a class of ``split`` also gets the split's synonyms.
    """
    if isinstance(entries, str):
        raise TypeError(f'class names must be a list of strings, got the string {entries!r}')
    names, synonyms = [], {}
    for i, entry in enumerate(entries):
        parts = [p.strip() for p in str(entry).split(',')]
        if not all(parts):
            raise ValueError(f'class entry {entry!r}: empty name between commas')
        extra = list(parts[1:])
        if split is not None and parts[0] in split.classes:
            extra += [s for s in split.synonyms.get(split.classes.index(parts[0]), ()) if s not in extra]
        names.append(parts[0])
        if extra:
            synonyms[i] = tuple(extra)
    return resolve_class_names(names), synonyms


def load_class_file(path: str) -> List[str]:
    """An official-style class file (one class a line, comma-separated synonyms) -> entries."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'class-name file not found: {path!r} (one class a line, '
                                f'synonyms after commas, as SegEarth-OV configs/cls_*.txt)')
    with open(path, encoding='utf-8') as f:
        lines = [ln.strip() for ln in f.read().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or not all(lines):
        raise ValueError(f'class-name file {path!r}: empty, or a blank line inside')
    return lines


@dataclass(frozen=True)
class _Queries:
    classes: Tuple[str, ...]          # the N output classes
    queries: Tuple[str, ...]          # text queries: names + synonyms, then background queries
    query_to_class: Tuple[int, ...]   # class id of each query; background queries -> N
    has_background: bool


def _pair(v) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def _long_side_size(h: int, w: int, long_side: int) -> Tuple[int, int]:
    """mmcv ``imrescale`` to scale (L, L) with keep_ratio: factor L / max(h, w), rounded half up."""
    f = min(long_side / max(h, w), long_side / min(h, w))
    return int(h * f + 0.5), int(w * f + 0.5)


def _pad_to_patch(h: int, w: int, patch: int) -> Tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding to a multiple of the patch (official ``compute_padsize``)."""
    lr, tb = (-w) % patch, (-h) % patch
    return lr // 2, lr - lr // 2, tb // 2, tb - tb // 2


@MODELS.register_module()
class SegEarthOV(OpenVocabSegmentor):
    """Training-free SegEarth-OV (module docstring).

    On the suite's seam it overrides what SegEarth-OV does its own way: the vocabulary (entries
    with comma synonyms, class files), the test_cfg (threshold, background, long-side resize),
    and inference (crop LOGITS averaged, then softmax over all queries), so ``predict_logits``
    and ``predict`` are its own; the hooks are the base's contract.

    Args:
        clip: config of :class:`SegEarthCLIP` (OpenAI ViT-B/16 with QuickGELU by default).
        upsampler: config of :class:`SimFeatUp` (``feat_dim`` filled from the CLIP) or ``None``
            (no feature upsampling: the grid logits are resized bilinearly).
        feature_up: official switch; ``False`` builds no upsampler even when ``upsampler`` is
            configured (the same as ``upsampler=None``), so ``--cfg-options model.feature_up=...``
            toggles a configured one.
        vocabulary: ``dict(split=..., train='all', test='all')``. ``test``: 'all' / 'seen' /
            'unseen' ids of the split, a list of names (comma synonyms allowed), or the path of
            an official-style class file. ``train`` is kept for the common contract and unused.
        templates: prompt templates (``'imagenet80'``, official).
        cls_token_lambda: weight of the global (CLS) logits, official -0.3.
        logit_scale: official 50.
        test_cfg: ``mode`` ('slide' | 'whole'), ``resize_long`` (448; None: no resize),
            ``crop_size`` / ``stride`` (224 / 112), ``prob_thd`` in [0, 1], ``bg_idx`` (None ->
            ``ignore_index``; an int position or a class name of the vocabulary),
            ``background_queries`` (extra queries whose pixels go to ``bg_idx``).
        ignore_index: the label of "no class" (255).
        data_preprocessor: default ``SegDataPreProcessor(mean=None, std=None, bgr_to_rgb=True)``:
            the model takes RGB 0..255 and normalises itself.
    """

    trainable = False

    def __init__(self,
                 clip: dict = dict(type='SegEarthCLIP'),
                 upsampler: Optional[dict] = dict(type='SimFeatUp', model_name='jbu_one', checkpoint=None),
                 feature_up: bool = True,
                 vocabulary: dict = dict(split='isaid', train='all', test='all'),
                 templates: Union[str, Sequence[str]] = 'imagenet80',
                 cls_token_lambda: float = -0.3,
                 logit_scale: float = 50.0,
                 test_cfg: Optional[dict] = None,
                 ignore_index: int = 255,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='SegDataPreProcessor', mean=None, std=None, bgr_to_rgb=True,
                                     pad_val=0, seg_pad_val=255)
        # the base checks test_cfg and sets up the vocabulary through the overrides below
        super().__init__(vocabulary=vocabulary, test_cfg=test_cfg, ignore_index=ignore_index,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not logit_scale > 0:
            raise ValueError(f'logit_scale must be > 0, got {logit_scale}')
        self.clip = MODELS.build(clip)
        if upsampler is not None and feature_up:
            upsampler = dict(upsampler)
            upsampler.setdefault('feat_dim', self.clip.embed_dim)
            self.upsampler = MODELS.build(upsampler)
        else:
            self.upsampler = None
        self.templates = templates
        self.cls_token_lambda = float(cls_token_lambda)
        self.logit_scale = float(logit_scale)
        self._check_bg(self._queries(self.test_vocabulary, self.test_synonyms))
        self.eval()

    # ------------------------------------------------------------------ hooks for the suite
    @classmethod
    def weight_fields(cls, model_cfg: Mapping) -> Dict[str, str]:
        """Dotted model-cfg keys of outside weight files: CLIP always, the upsampler when it is used."""
        fields = {'vl': 'clip.pretrained'}
        if model_cfg.get('upsampler') is not None and model_cfg.get('feature_up', True):
            fields['upsampler'] = 'upsampler.checkpoint'
        return fields

    @classmethod
    def mini_scale(cls, model_cfg, overlay):
        """Mutate ``model_cfg`` for the mini world (``overlay``: configs/_base_/scale/mini.py).

        The tiny CLIP (its own GELU and statistics) replaces ViT-B/16; the slide sizes scale with
        its input: crop = its image size (128, so no pos-embed resize, as 224 for ViT-B/16), long
        side and stride by the same factor as 224 -> crop (448 -> 256, 112 -> 64).

        Upsampler: a configured one becomes ``overlay.simfeatup`` (the tiny SimFeatUp of
        ``tools/train_tiny_simfeatup.py``, x8 for the 8-px patches), with ``feature_up`` from the
        overlay; an ``upsampler=None`` or ``feature_up=False`` config stays without one. The mini
        default is off: the CPU-trained tiny upsampler lowers mIoU (with / without: iSAID
        13.93 / 17.42, DLRSD 8.18 / 8.19, OEM 32.34 / 34.72; docs/measurements.md).
        """
        from aeroseg.config import REPO_ROOT

        def _abs(p):
            return p if p is None or os.path.isabs(p) else str(REPO_ROOT / p)

        tiny = overlay['clip']
        model_cfg['clip'] = dict(type='SegEarthCLIP', model_name=tiny['model_name'],
                                 model_config_dir=_abs(tiny.get('model_config_dir')),
                                 pretrained=_abs(tiny.get('pretrained')), quick_gelu=None,
                                 pixel_mean=None, pixel_std=None)
        crop = int(tiny['image_size'])
        # 224 / 448 / 112: DEFAULT_TEST_CFG (official slide_crop, Resize, slide_stride)
        f = crop / DEFAULT_TEST_CFG['crop_size']
        test_cfg = dict(model_cfg.get('test_cfg') or {})
        test_cfg.update(crop_size=crop, resize_long=int(round(DEFAULT_TEST_CFG['resize_long'] * f)),
                        stride=int(round(DEFAULT_TEST_CFG['stride'] * f)))
        model_cfg['test_cfg'] = test_cfg
        tiny_up = overlay.get('simfeatup')
        if model_cfg.get('upsampler') is None or tiny_up is None:
            model_cfg['upsampler'] = None
        else:
            tiny_up = dict(tiny_up)
            on = bool(tiny_up.pop('feature_up')) and bool(model_cfg.get('feature_up', True))
            tiny_up['checkpoint'] = _abs(tiny_up.get('checkpoint'))
            model_cfg['upsampler'] = dict(type='SimFeatUp', **tiny_up)
            model_cfg['feature_up'] = on
        return model_cfg

    # ------------------------------------------------------------------ configuration
    @staticmethod
    def _check_test_cfg(test_cfg: Optional[dict]) -> dict:
        cfg = dict(DEFAULT_TEST_CFG)
        unknown = sorted(set(test_cfg or {}) - set(cfg))
        if unknown:
            raise ValueError(f'unknown test_cfg keys {unknown}; known: {sorted(cfg)}')
        cfg.update(test_cfg or {})
        if cfg['mode'] not in ('slide', 'whole'):
            raise ValueError(f"test_cfg.mode must be 'slide' or 'whole', got {cfg['mode']!r}")
        thd = cfg['prob_thd']
        if not isinstance(thd, (int, float)) or not 0.0 <= float(thd) <= 1.0:
            raise ValueError(f'test_cfg.prob_thd must be a probability in [0, 1], got {thd!r}')
        cfg['crop_size'], cfg['stride'] = _pair(cfg['crop_size']), _pair(cfg['stride'])
        if min(cfg['crop_size'] + cfg['stride']) < 1:
            raise ValueError(f"crop_size / stride must be positive, got {cfg['crop_size']} / {cfg['stride']}")
        if isinstance(cfg['background_queries'], str):
            cfg['background_queries'] = (cfg['background_queries'],)
        cfg['background_queries'] = tuple(cfg['background_queries'])
        return cfg

    def _pick(self, spec) -> Tuple[Tuple[str, ...], Dict[int, Tuple[str, ...]]]:
        split = self.split
        if isinstance(spec, str):
            if spec in _VOCAB_SPECS:
                if split is None:
                    raise ValueError(f"vocabulary {spec!r} needs vocabulary.split (e.g. 'isaid')")
                ids = {'all': tuple(range(split.num_classes)), 'seen': split.seen, 'unseen': split.unseen}[spec]
                return parse_class_entries([split.classes[i] for i in ids], split)
            if not os.path.isfile(spec):
                raise ValueError(f'vocabulary {spec!r} is neither one of {_VOCAB_SPECS} nor an existing '
                                 f'class-name file')
            spec = load_class_file(spec)
        return parse_class_entries(spec, split)

    def _setup_vocabulary(self, vocab: dict) -> None:
        self.split = get_split(vocab['split']) if vocab.get('split') else None
        self.test_vocabulary, self.test_synonyms = self._pick(vocab.get('test', 'all'))
        train = vocab.get('train', 'all')
        if self.split is None and train in _VOCAB_SPECS:  # no split: nothing to pick from
            self.train_vocabulary = self.test_vocabulary
        else:
            self.train_vocabulary, _ = self._pick(train)

    def set_vocabulary(self, class_names: Sequence[str]) -> None:
        """Use ``class_names`` (comma synonyms allowed) as the test vocabulary: output id i = name i."""
        names, syn = parse_class_entries(class_names, self.split)
        self._check_bg(self._queries(names, syn))
        self.test_vocabulary, self.test_synonyms = names, syn

    def _queries(self, names: Sequence[str], synonyms: Mapping[int, Sequence[str]]) -> _Queries:
        queries, q2c = expand_class_names(names, synonyms)
        bg = self.test_cfg['background_queries']
        return _Queries(tuple(names), tuple(queries) + bg, tuple(q2c) + (len(names),) * len(bg), bool(bg))

    def _queries_for(self, names: Optional[Sequence[str]]) -> _Queries:
        if names is None:
            return self._queries(self.test_vocabulary, self.test_synonyms)
        # scores only (predict_logits): the background index of a dataset config is not used
        return self._queries(*parse_class_entries(names, self.split))

    def _check_bg(self, q: _Queries) -> int:
        """The label of background pixels for this vocabulary (``bg_idx`` resolved)."""
        bg = self.test_cfg['bg_idx']
        if bg is None:
            return self.ignore_index
        if isinstance(bg, str):
            if bg not in q.classes:
                raise KeyError(f'test_cfg.bg_idx={bg!r} is not a class of the vocabulary {list(q.classes)}')
            return q.classes.index(bg)
        if not 0 <= int(bg) < len(q.classes):
            raise ValueError(f'test_cfg.bg_idx={bg} outside 0..{len(q.classes) - 1} for the vocabulary '
                             f'{list(q.classes)}: set model.test_cfg.bg_idx to None (unlabelled) or '
                             f'to a class name of your vocabulary')
        return int(bg)

    def train(self, mode: bool = True):
        """Training-free: the encoders stay in eval mode (no dropout in the upsampler)."""
        super().train(mode)
        self.clip.eval()
        if self.upsampler is not None:
            self.upsampler.eval()
        return self

    # ------------------------------------------------------------------ forward pieces
    def text_embeddings(self, queries: Sequence[str]) -> Tensor:
        """(Q, D) prompt-averaged, L2-normalised query embeddings."""
        return self.clip.encode_text_mean(list(queries), self.templates)

    def crop_logits(self, crop: Tensor, text: Tensor) -> Tensor:
        """Normalised crop (B,3,h,w) -> bias-alleviated cosine logits (B,Q,h,w) (official ``forward_feature``)."""
        h, w = crop.shape[-2:]
        pad = _pad_to_patch(h, w, self.clip.patch_size[0])
        x = F.pad(crop, pad) if any(pad) else crop
        out = self.clip.encode_dense(x)
        feats = out['dense']
        if self.upsampler is not None:
            feats = self.upsampler(feats, x)
        logits = torch.einsum('bdhw,qd->bqhw', F.normalize(feats, dim=1), text)
        if self.cls_token_lambda:
            cls_logits = F.normalize(out['cls'], dim=-1) @ text.T
            logits = logits + self.cls_token_lambda * cls_logits[:, :, None, None]
        if tuple(logits.shape[-2:]) != tuple(x.shape[-2:]):
            logits = F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)
        left, _, top, _ = pad
        return logits[..., top:top + h, left:left + w]

    def slide_logits(self, img: Tensor, text: Tensor) -> Tensor:
        """Normalised image (B,3,H,W) -> crop logits summed and divided by the overlap count (official ``forward_slide``)."""
        (hc, wc), (hs, ws) = self.test_cfg['crop_size'], self.test_cfg['stride']
        b, _, h, w = img.shape
        h_grids = max(h - hc + hs - 1, 0) // hs + 1
        w_grids = max(w - wc + ws - 1, 0) // ws + 1
        preds = img.new_zeros(b, text.shape[0], h, w)
        count = img.new_zeros(1, 1, h, w)
        for hi in range(h_grids):
            for wi in range(w_grids):
                y2, x2 = min(hi * hs + hc, h), min(wi * ws + wc, w)
                y1, x1 = max(y2 - hc, 0), max(x2 - wc, 0)
                preds[:, :, y1:y2, x1:x2] += self.crop_logits(img[:, :, y1:y2, x1:x2], text)
                count[:, :, y1:y2, x1:x2] += 1
        return preds / count

    def cosine_logits(self, inputs: Tensor, q: _Queries) -> Tensor:
        """RGB 0..255 (B,3,H,W) -> merged bias-alleviated cosine logits (B,Q,H,W) at the input size."""
        text = self.text_embeddings(q.queries).to(inputs.dtype)
        x = self.clip.normalize_only(inputs)
        h, w = x.shape[-2:]
        long_side = self.test_cfg['resize_long']
        size = _long_side_size(h, w, long_side) if long_side else (h, w)
        if size != (h, w):
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        if self.test_cfg['mode'] == 'slide':
            logits = self.slide_logits(x, text)
        else:
            logits = self.crop_logits(x, text)
        if size != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode='bilinear', align_corners=False)
        return logits

    def class_probs(self, logits: Tensor, q: _Queries) -> Tensor:
        """(B,Q,...) cosine logits -> (B, N (+1 background), ...) probabilities: softmax(scale * logits)
        over all queries, then the max over each class's synonyms (official ``postprocess_result``)."""
        return reduce_synonyms((logits * self.logit_scale).softmax(dim=1), q.query_to_class, dim=1)

    def labels(self, probs: Tensor, q: _Queries) -> Tensor:
        """(N (+1), H, W) probabilities -> (1, H, W) labels: argmax; a background query or a top
        probability below ``prob_thd`` -> ``bg_idx``."""
        bg = self._check_bg(q)
        top, pred = probs.max(dim=0, keepdim=True)
        if q.has_background:
            pred[pred == len(q.classes)] = bg
        pred[top < self.test_cfg['prob_thd']] = bg
        return pred

    # ------------------------------------------------------------------ the segmentor API
    @torch.no_grad()
    def predict_logits(self, inputs: Tensor, names: Optional[Sequence[str]] = None) -> Tensor:
        """Class probabilities (B,N,H,W) at the input size for ``names`` (default: the test vocabulary).

        The softmax runs over every query and each class keeps its best query (official), so with
        synonyms or ``background_queries`` the N columns sum to less than 1.
        """
        q = self._queries_for(names)
        return self.class_probs(self.cosine_logits(inputs, q), q)[:, :len(q.classes)]

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """SegDataSamples with ``seg_logits`` (N class probabilities at ori_shape) and ``pred_sem_seg``."""
        if data_samples is None:
            shape = tuple(inputs.shape[-2:])
            data_samples = [SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                                                         padding_size=[0, 0, 0, 0]))
                            for _ in range(inputs.shape[0])]
        q = self._queries_for(None)
        logits = self.cosine_logits(inputs, q)
        c = logits.shape[1]
        # mmseg's geometry (unpad, flip back, bilinear to ori_shape) on the cosine logits, as the
        # official code resizes logits before the softmax; its argmax is replaced below. (Called on
        # mmseg's class: a subclass override of postprocess_result must not change this step.)
        geo = logits if c > 1 else torch.cat([logits, logits], dim=1)  # C == 1 would mean sigmoid
        data_samples = BaseSegmentor.postprocess_result(self, geo, data_samples)
        n = len(q.classes)
        for s in data_samples:
            probs = self.class_probs(s.seg_logits.data[None, :c], q)[0]
            s.set_data({'seg_logits': PixelData(data=probs[:n]),
                        'pred_sem_seg': PixelData(data=self.labels(probs, q))})
        return data_samples

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        raise RuntimeError('SegEarth-OV is training-free: it has no loss. Evaluate it with the test '
                           'loop (benchmarks rows with train=False), or call predict / predict_logits.')

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        return self.predict_logits(inputs)

    def extract_feat(self, inputs: Tensor) -> Dict[str, Tensor]:
        """SegEarth dense tokens of the whole input (zero-padded to a multiple of the patch)."""
        x = self.clip.normalize_only(inputs)
        pad = _pad_to_patch(*x.shape[-2:], self.clip.patch_size[0])
        return self.clip.encode_dense(F.pad(x, pad) if any(pad) else x)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        return self.predict_logits(inputs)

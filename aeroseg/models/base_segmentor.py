"""The seam every open-vocabulary method plugs into: vocabulary, labels, inference, hooks.

A method subclasses :class:`OpenVocabSegmentor` and writes only what is its own::

    forward_logits(inputs, names) -> dict(logits=(B, N, h, w), ...)   class logits for ``names``
    loss(inputs, data_samples) -> dict of losses                      (trainable methods)
    logits_to_scores(logits)                                          sigmoid unless overridden
    weight_fields(model_cfg) / mini_scale(model_cfg, overlay)         classmethod hooks

Everything else is here, once: the vocabulary protocol (training on the seen names of the
dataset's split, testing on all; :meth:`set_vocabulary` for any list of names), the label lookup
that maps full dataset ids to training-vocabulary positions (the split's other classes to
``HIDDEN_INDEX``, left out of the loss; 255 unlabelled), whole / sliding-window inference after
mmseg's ``test_cfg`` convention, and :meth:`predict_logits`, which ``aeroseg.apis`` and the
metric go through.

Hooks (classmethods, so tooling can ask the model type without building the model):

* ``weight_fields(model_cfg)``: role -> dotted key of each outside-weight field this config has
  (``{'vl': 'clip.pretrained', 'guidance': 'guidance.checkpoint'}``); ``init_model`` clears them
  when a trained checkpoint supplies every weight, the cost benchmark to build random weights,
  the random-CLIP arm of ``benchmarks.ov_transfer`` to replace the vision-language weights.
* ``mini_scale(model_cfg, overlay)``: turn the model config into its mini-world version in place
  (``overlay`` = ``configs/_base_/scale/mini.py``); :func:`aeroseg.config.apply_mini_scale` calls
  it and does the data and schedule part itself.

``aeroseg.hooks`` looks the hooks up from a config's model type.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from ..datasets.splits import get_split, resolve_class_names
from ..datasets.transforms import HIDDEN_INDEX

__all__ = ['OpenVocabSegmentor', 'resize_to', 'window_starts']

_TEST_MODES = ('whole', 'slide')
# the window keys are read in 'slide' mode only (so --cfg-options model.test_cfg.mode=whole works
# on a slide config)
_TEST_KEYS = {'crop_size', 'stride', 'resize', 'global_view', 'window_batch'}
# windows per forward in 'slide' mode (benchmarks/speed.py measured it: fewer, larger forwards)
DEFAULT_WINDOW_BATCH = 4


def resize_to(x: Tensor, size, mode: str = 'bilinear') -> Tensor:
    """``x`` resized to ``size`` (no-op when it already has it); bilinear without corner alignment."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False if mode == 'bilinear' else None)


def window_starts(length: int, crop: int, stride: int) -> List[int]:
    """Window offsets along one axis: every ``stride``, plus a last one flush with the end."""
    starts = list(range(0, max(length - crop, 0) + 1, stride))
    if starts[-1] + crop < length:
        starts.append(length - crop)
    return starts


def _pair(v) -> tuple:
    return (int(v), int(v)) if isinstance(v, (int, float)) else tuple(int(x) for x in v)


class OpenVocabSegmentor(BaseSegmentor):
    """Base of every method: the vocabulary protocol, label lookup, inference and hooks.

    Args:
        vocabulary: ``dict(split='isaid', train='seen', test='all')`` (the paper's protocol) or
            explicit lists of names: ``dict(train=[...], test=[...])``; 'seen' / 'unseen' /
            'all' pick ids of the split.
        test_cfg: ``dict(mode='whole')`` (one forward at the model's own input size) or
            ``dict(mode='slide', crop_size=384, stride=256, resize=640, global_view=True)``:
            optionally resize to ``resize`` x ``resize``, run ``crop_size`` windows every
            ``stride`` (the last one flush with the border), turn each window's logits into
            scores, average where windows overlap and, with ``global_view``, average that with
            the scores of the input resized to ``crop_size`` (resized back): OVRS's evaluation.
            ``window_batch`` (default 4): views (windows, then the global one) run together as
            one batch of at most this many (1 = one view per forward; the scores agree to float
            rounding, tests/models/test_segmentor.py).
        ignore_index: the unlabelled label value (255).
    """

    def __init__(self, vocabulary: dict = dict(split='isaid', train='seen', test='all'),
                 test_cfg: Optional[dict] = None, ignore_index: int = 255,
                 data_preprocessor: Optional[dict] = None, init_cfg=None, train_cfg=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.ignore_index = ignore_index
        self.train_cfg = train_cfg
        self.test_cfg = self._check_test_cfg(test_cfg)
        self._setup_vocabulary(vocabulary)
        self.align_corners = False

    #: False for a training-free method (tested only; ``loss`` raises)
    trainable = True

    # ------------------------------------------------------------------ hooks
    @classmethod
    def weight_fields(cls, model_cfg) -> Dict[str, str]:
        """Role -> dotted key (inside ``model_cfg``) of each outside-weight field; none here."""
        return {}

    @classmethod
    def mini_scale(cls, model_cfg, overlay) -> None:
        raise NotImplementedError(
            f'{cls.__name__} declares no mini-world version: define the classmethod '
            f'mini_scale(model_cfg, overlay) next to the model class (see '
            f'aeroseg/models/base_segmentor.py) to run it with --scale mini')

    # ------------------------------------------------------------------ test_cfg
    @staticmethod
    def _check_test_cfg(test_cfg: Optional[dict]) -> dict:
        cfg = dict(test_cfg or dict(mode='whole'))
        mode = cfg.pop('mode', 'whole')
        if mode not in _TEST_MODES:
            raise ValueError(f"model.test_cfg.mode must be 'whole' or 'slide', got {mode!r}")
        unknown = set(cfg) - _TEST_KEYS
        if unknown:
            raise ValueError(f'model.test_cfg: unknown key(s) {sorted(unknown)}; allowed: mode, '
                             f'{", ".join(sorted(_TEST_KEYS))}')
        if mode == 'slide':
            missing = {'crop_size', 'stride'} - set(cfg)
            if missing:
                raise ValueError(f"model.test_cfg: mode 'slide' needs {sorted(missing)}")
            cfg['crop_size'], cfg['stride'] = _pair(cfg['crop_size']), _pair(cfg['stride'])
            if cfg.get('resize') is not None:
                cfg['resize'] = _pair(cfg['resize'])
            cfg.setdefault('resize', None)
            cfg.setdefault('global_view', False)
            cfg.setdefault('window_batch', DEFAULT_WINDOW_BATCH)
            if not isinstance(cfg['window_batch'], int) or cfg['window_batch'] < 1:
                raise ValueError(f"model.test_cfg.window_batch must be an int >= 1, got "
                                 f"{cfg['window_batch']!r}")
        return dict(mode=mode, **cfg)

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

        self.vocabulary_split = split
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

    def train_targets(self, data_samples: SampleList, size) -> Tensor:
        """Labels (B, H, W) as training-vocabulary positions, HIDDEN_INDEX, or ignore_index."""
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples]).squeeze(1).long()
        gt = self._train_label_lut.to(gt.device)[gt.clamp(0, 255)]
        if tuple(gt.shape[-2:]) != tuple(size):
            gt = F.interpolate(gt[:, None].float(), size=size, mode='nearest')[:, 0].long()
        return gt

    # ------------------------------------------------------------------ the method's part
    def forward_logits(self, inputs: Tensor, names: Sequence[str]) -> Dict[str, Tensor]:
        """``dict(logits=(B, N, h, w))`` for ``names`` on RGB ``inputs`` 0..255 (+ what losses need)."""
        raise NotImplementedError(f'{type(self).__name__} must implement forward_logits(inputs, names)')

    def logits_to_scores(self, logits: Tensor) -> Tensor:
        """Per-class scores in [0, 1] from logits (independent sigmoids, as CAT-Seg's BCE)."""
        return logits.sigmoid()

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        raise NotImplementedError(f'{type(self).__name__} is not trainable (no loss defined)')

    # ------------------------------------------------------------------ inference
    def _window_scores(self, inputs: Tensor, names) -> Tensor:
        # logits resized to the window, then scored (OVRS's order; whole mode scores, then resizes)
        return self.logits_to_scores(resize_to(self.forward_logits(inputs, names)['logits'],
                                               inputs.shape[-2:]))

    @torch.no_grad()
    def slide_scores(self, inputs: Tensor, names) -> Tensor:
        """Sliding-window scores at the (resized) size: window mean, then mean with the global view.

        The global view is the input resized to the window size and run in the same batches as
        the windows; its scores are resized to the slide size (caoql98/OVRS @ aacbb10
        ``cat_seg_model.py::inference_sliding_window``: ``global_image`` = the input at
        ``kernel`` x ``kernel``, ``cat`` with the unfolded windows; sigmoid, then resized to ``out_res``).
        """
        t = self.test_cfg
        (ch, cw), (sh, sw) = t['crop_size'], t['stride']
        img = inputs if t['resize'] is None else resize_to(inputs, t['resize'])
        H, W = img.shape[-2:]
        acc = img.new_zeros(img.shape[0], len(names), H, W)
        cnt = img.new_zeros(1, 1, H, W)
        views = [(y, x) for y in window_starts(H, ch, sh) for x in window_starts(W, cw, sw)]
        if t['global_view']:
            views.append(None)
        cap, glob = t['window_batch'], None
        win = (min(ch, H), min(cw, W))  # an image smaller than the crop is one window of its size
        for i in range(0, len(views), cap):  # views of one group as one batch (all window-sized)
            group = views[i:i + cap]
            crops = torch.cat([resize_to(inputs, win) if v is None else img[..., v[0]:v[0] + ch, v[1]:v[1] + cw]
                               for v in group])
            for v, s in zip(group, self._window_scores(crops, names).split(img.shape[0])):
                if v is None:
                    glob = resize_to(s, (H, W))
                    continue
                y, x = v
                acc[..., y:y + s.shape[-2], x:x + s.shape[-1]] += s
                cnt[..., y:y + s.shape[-2], x:x + s.shape[-1]] += 1
        scores = acc / cnt
        return scores if glob is None else (scores + glob) / 2

    def predict_logits(self, inputs: Tensor, names: Optional[Sequence[str]] = None) -> Tensor:
        """Class scores (B, N, H, W) in [0, 1] at the input size for ``names`` (default: test vocabulary)."""
        names = self.test_vocabulary if names is None else resolve_class_names(names)
        if self.test_cfg['mode'] == 'slide':
            scores = self.slide_scores(inputs, names)
        else:
            scores = self.logits_to_scores(self.forward_logits(inputs, names)['logits'])
        return resize_to(scores, inputs.shape[-2:])

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        if data_samples is None:
            from mmseg.structures import SegDataSample
            data_samples = [SegDataSample(metainfo=dict(img_shape=inputs.shape[-2:],
                                                         ori_shape=inputs.shape[-2:]))
                            for _ in range(inputs.shape[0])]
        return self.postprocess_result(self.predict_logits(inputs), data_samples)

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        return self.forward_logits(inputs, self.test_vocabulary)['logits']

    def extract_feat(self, inputs: Tensor):
        raise NotImplementedError(f'{type(self).__name__}: use forward_logits')

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        return self.predict_logits(inputs)

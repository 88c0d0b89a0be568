"""Label transforms of the open-vocabulary protocol (registered in mmseg's ``TRANSFORMS``).

``HideUnseenClasses`` implements the inductive zero-shot setting: during training the pixels
of unseen classes are set to ``HIDDEN_INDEX`` (254), their names are never shown to the model,
and the loss leaves them out (``OpenVocabBCELoss(hidden_mode='exclude')``). They are kept apart
from 255 (unlabelled: iSAID background, OEM 'unknown', crop padding), which upstream CAT-Seg's
loss counts as a negative for every class: counted that way, hidden pixels would teach the head
that unseen regions are "none of the classes" (the measurement is in
``configs/_base_/models/catseg_vitb16.py``). Labels stay in the full id space 0..K-1; the
segmentor maps them to its training vocabulary.

``CheckLabelValues`` is a cheap guard (one ``bincount`` per label map) that fails with the
file name when a label holds a value outside 0..K-1 and ``ignore_index`` -- the symptom of a
wrong preparation (e.g. raw ids not shifted, colour masks read as palette indices).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .splits import get_split

__all__ = ['HideUnseenClasses', 'CheckLabelValues', 'HIDDEN_INDEX']

# Label value of the training pixels HideUnseenClasses hides (unseen classes): not 255, so the
# loss can tell them from unlabelled pixels. Raw labels never hold it (CheckLabelValues runs first).
HIDDEN_INDEX = 254


def _ids(values: Sequence[int], what: str) -> tuple:
    out = tuple(int(v) for v in values)
    bad = [v for v in out if not 0 <= v <= 255]
    if bad:
        raise ValueError(f'{what}: ids must be label values 0..255, got {bad}')
    return out


def _from_sample(results: dict, key: str, transform: BaseTransform, arg: str):
    """``results[key]`` (put there by ``OVSegDataset``) for a transform built without ``arg``
    and ``split``; a clear error when the sample does not carry it (another dataset class)."""
    value = results.get(key)
    if value is None:
        raise ValueError(
            f'{type(transform).__name__} needs {arg} or `split` (a dataset key of '
            f'aeroseg.datasets.splits, e.g. split="isaid"), or a sample with `{key}` (set by '
            f'the aeroseg open-vocabulary datasets, OVSegDataset)')
    return value


@TRANSFORMS.register_module()
class HideUnseenClasses(BaseTransform):
    """Set the pixels of unseen classes to ``hidden_index`` in ``gt_seg_map``.

    Args:
        unseen_ids: label ids to hide. ``None`` reads ``get_split(split).unseen``.
        split: a key of :mod:`aeroseg.datasets.splits` (``'isaid'``, ``'dlrsd'``, ``'oem'``);
            used when ``unseen_ids`` is not given, so configs need no class lists.
        hidden_index: value written for hidden pixels (``HIDDEN_INDEX`` = 254; the segmentor
            passes it to the loss, which leaves these pixels out). 255 makes them unlabelled
            pixels (upstream CAT-Seg's loss then counts them as negatives for every class).

    With neither ``unseen_ids`` nor ``split`` the ids come from each sample's ``ov_unseen``
    (put there by :class:`aeroseg.datasets.base.OVSegDataset` from its ``metainfo['unseen']``),
    so one pipeline serves every dataset; explicit arguments win over the sample.

    Required keys: ``gt_seg_map`` (and ``ov_unseen`` when built without ids / split).
    Modified keys: ``gt_seg_map`` (dtype kept).
    """

    def __init__(self, unseen_ids: Optional[Sequence[int]] = None, split: Optional[str] = None,
                 hidden_index: int = HIDDEN_INDEX) -> None:
        self.hidden_index = int(hidden_index)
        if unseen_ids is None and split is not None:
            unseen_ids = get_split(split).unseen
        self.split = split
        self.unseen_ids = (None if unseen_ids is None
                           else self._checked(unseen_ids, 'HideUnseenClasses.unseen_ids'))
        self._luts: dict = {}

    def _checked(self, ids: Sequence[int], what: str) -> tuple:
        ids = _ids(ids, what)
        if self.hidden_index in ids:
            raise ValueError(f'HideUnseenClasses: hidden_index {self.hidden_index} is listed as '
                             f'unseen ({what})')
        return ids

    def _lut(self, unseen: tuple) -> np.ndarray:
        lut = self._luts.get(unseen)
        if lut is None:
            lut = np.arange(256, dtype=np.int64)
            lut[list(unseen)] = self.hidden_index
            lut = self._luts[unseen] = lut.astype(np.uint8)
        return lut

    def transform(self, results: dict) -> dict:
        if 'gt_seg_map' not in results:
            raise KeyError('HideUnseenClasses needs `gt_seg_map`: put it after LoadAnnotations '
                           'in the pipeline')
        unseen = self.unseen_ids
        if unseen is None:
            unseen = self._checked(_from_sample(results, 'ov_unseen', self, '`unseen_ids`'),
                                   'sample key ov_unseen')
        gt = results['gt_seg_map']
        if not unseen:
            return results
        if gt.dtype == np.uint8:
            results['gt_seg_map'] = self._lut(unseen)[gt]
        else:  # any integer dtype; values outside 0..255 are left as they are
            out = gt.copy()
            out[np.isin(gt, unseen)] = self.hidden_index
            results['gt_seg_map'] = out
        return results

    def __repr__(self) -> str:
        ids = self.unseen_ids if self.unseen_ids is not None else "<sample['ov_unseen']>"
        return f'{self.__class__.__name__}(unseen_ids={ids}, hidden_index={self.hidden_index})'


@TRANSFORMS.register_module()
class CheckLabelValues(BaseTransform):
    """Fail, naming the label file, if ``gt_seg_map`` holds a value outside 0..K-1 / ignore.

    Args:
        num_classes: K. ``None`` reads ``get_split(split).num_classes``.
        split: a key of :mod:`aeroseg.datasets.splits` (used when ``num_classes`` is None).
        ignore_index: the one value allowed besides 0..K-1.

    With neither ``num_classes`` nor ``split``, K comes from each sample's ``ov_num_classes``
    (put there by :class:`aeroseg.datasets.base.OVSegDataset`); explicit arguments win.
    """

    def __init__(self, num_classes: Optional[int] = None, split: Optional[str] = None,
                 ignore_index: int = 255) -> None:
        if num_classes is None and split is not None:
            num_classes = get_split(split).num_classes
        self.num_classes = None if num_classes is None else int(num_classes)
        self.ignore_index = int(ignore_index)

    def transform(self, results: dict) -> dict:
        gt = results.get('gt_seg_map')
        if gt is None:
            raise KeyError('CheckLabelValues needs `gt_seg_map`: put it after LoadAnnotations')
        k = self.num_classes
        if k is None:
            k = int(_from_sample(results, 'ov_num_classes', self, '`num_classes`'))
        if gt.dtype == np.uint8:
            counts = np.bincount(gt.ravel(), minlength=256)
            counts[:k] = 0
            counts[self.ignore_index] = 0
            bad = np.flatnonzero(counts)
        else:
            vals = np.unique(gt)
            bad = vals[((vals < 0) | (vals >= k)) & (vals != self.ignore_index)]
        if bad.size:
            raise ValueError(
                f'label file {results.get("seg_map_path", "<unknown>")} holds value(s) '
                f'{bad.tolist()[:10]} outside the class ids 0..{k - 1} and ignore '
                f'{self.ignore_index}; re-run the preparation tool (python -m '
                f'aeroseg.datasets.prepare ...) or check reduce_zero_label / the class list')
        return results

    def __repr__(self) -> str:
        k = self.num_classes if self.num_classes is not None else "<sample['ov_num_classes']>"
        return f'{self.__class__.__name__}(num_classes={k}, ignore_index={self.ignore_index})'

"""The open-vocabulary metric: s-mIoU, u-mIoU, h-mIoU over one confusion matrix.

One K x K confusion matrix (rows = ground truth, columns = prediction) is accumulated over all
test images for the whole test vocabulary (all K classes), ignoring pixels labelled
``ignore_index``. Per-class IoU = TP / (TP + FP + FN), identical to mmseg's ``IoUMetric``.

Absent classes: a class with no ground-truth pixel and no prediction has IoU 0/0 = NaN and is
left out of every mean (``nanmean``, as ``IoUMetric`` does); a class with no ground truth that
is predicted somewhere has IoU 0 and counts. ``s-mIoU`` / ``u-mIoU`` are these means over the
seen / unseen ids, ``mIoU`` over all classes, and ``h-mIoU = 2 s u / (s + u)`` (0 when both
are 0). All in percent, rounded to 2 decimals as mmseg reports; per-class values are also
returned as ``IoU.<class name>``.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

__all__ = ['OpenVocabIoUMetric', 'harmonic_mean', 'iou_from_confusion']


def harmonic_mean(s: float, u: float) -> float:
    """h = 2su / (s + u); 0 when s + u == 0; NaN if either is NaN."""
    if np.isnan(s) or np.isnan(u):
        return float('nan')
    return 0.0 if s + u == 0 else 2.0 * s * u / (s + u)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU (NaN where the class is neither in ground truth nor predicted)."""
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return tp / union


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float('nan')


@METRICS.register_module()
class OpenVocabIoUMetric(BaseMetric):
    """IoU per class over all test classes, with seen / unseen / harmonic means.

    Args:
        seen_ids / unseen_ids: ids of the seen / unseen classes. ``None`` reads
            ``dataset_meta['seen']`` / ``dataset_meta['unseen']`` (set by our dataset classes
            from :mod:`aeroseg.datasets.splits`).
        ignore_index: label value left out of the confusion matrix.
        output_dir: if set, writes ``confusion.npy`` and ``per_class_iou.json`` there.
    """
    # '' = no prefix on the metric keys (as None), without BaseMetric's warning "The prefix is not
    # set in metric class ..." in every test log (mmengine/evaluator/metric.py: the warning is
    # for None only, and keys are prefixed only when the prefix is truthy)
    default_prefix: Optional[str] = ''

    def __init__(self, seen_ids: Optional[Sequence[int]] = None,
                 unseen_ids: Optional[Sequence[int]] = None, ignore_index: int = 255,
                 output_dir: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.seen_ids = None if seen_ids is None else tuple(int(i) for i in seen_ids)
        self.unseen_ids = None if unseen_ids is None else tuple(int(i) for i in unseen_ids)
        self.ignore_index = ignore_index
        self.output_dir = output_dir

    @property
    def num_classes(self) -> int:
        return len(self.dataset_meta['classes'])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        k = self.num_classes
        for ds in data_samples:
            pred = ds['pred_sem_seg']['data'].squeeze()
            gt = ds['gt_sem_seg']['data'].squeeze().to(pred)
            valid = gt != self.ignore_index
            g, p = gt[valid].long(), pred[valid].long()
            bad = (g < 0) | (g >= k)
            if bad.any():
                raise ValueError(
                    f'ground truth of {ds.get("seg_map_path", "<unknown file>")} holds label '
                    f'value {int(g[bad][0])} outside 0..{k - 1} (and ignore {self.ignore_index}) '
                    f'for the {k} classes {list(self.dataset_meta["classes"])}; check the '
                    f'dataset preparation or the class list.')
            p = p.clamp(0, k)  # predictions outside the vocabulary count as wrong (column k)
            conf = torch.bincount(g * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)
            self.results.append(conf.cpu().numpy())

    def _split_ids(self):
        seen = self.seen_ids if self.seen_ids is not None else tuple(self.dataset_meta.get('seen', ()))
        unseen = (self.unseen_ids if self.unseen_ids is not None
                  else tuple(self.dataset_meta.get('unseen', ())))
        k = self.num_classes
        for i in seen + unseen:
            if not 0 <= i < k:
                raise ValueError(f'seen/unseen id {i} outside 0..{k - 1} for classes '
                                 f'{list(self.dataset_meta["classes"])}')
        return seen, unseen

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        k = self.num_classes
        full = np.sum(results, axis=0)
        conf = full[:, :k]
        # predictions outside the vocabulary are false negatives of their gt class only
        tp = np.diag(conf).astype(np.float64)
        union = full.sum(1) + conf.sum(0) - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = tp / union
            acc = tp / full.sum(1)
        seen, unseen = self._split_ids()
        s = _nanmean(iou[list(seen)]) if seen else float('nan')
        u = _nanmean(iou[list(unseen)]) if unseen else float('nan')
        m = _nanmean(iou)
        metrics = OrderedDict()
        metrics['aAcc'] = round(float(tp.sum() / max(full.sum(), 1)) * 100, 2)
        metrics['mIoU'] = round(m * 100, 2)
        metrics['mAcc'] = round(_nanmean(acc) * 100, 2)
        metrics['s-mIoU'] = round(s * 100, 2)
        metrics['u-mIoU'] = round(u * 100, 2)
        metrics['h-mIoU'] = round(harmonic_mean(s, u) * 100, 2)
        classes = self.dataset_meta['classes']
        for name, v in zip(classes, iou):
            metrics[f'IoU.{name}'] = round(float(v) * 100, 2)
        self._log_table(classes, iou, acc, set(seen), logger)
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            np.save(os.path.join(self.output_dir, 'confusion.npy'), full)
            tmp = os.path.join(self.output_dir, '.per_class_iou.json.tmp')
            with open(tmp, 'w') as f:
                json.dump({n: float(v) for n, v in zip(classes, iou)}, f, indent=1)
            os.replace(tmp, os.path.join(self.output_dir, 'per_class_iou.json'))
        return dict(metrics)

    @staticmethod
    def _log_table(classes, iou, acc, seen, logger) -> None:
        lines = [f'{"class":<24} {"split":<7} {"IoU":>7} {"Acc":>7}']
        for i, name in enumerate(classes):
            lines.append(f'{name:<24} {"seen" if i in seen else "unseen":<7} '
                         f'{iou[i] * 100:7.2f} {acc[i] * 100:7.2f}')
        print_log('per-class results:\n' + '\n'.join(lines), logger=logger)

"""OpenVocabIoUMetric: per-class IoU equals mmseg's IoUMetric; s/u/h computed from it."""
import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

from aeroseg.datasets.splits import get_split
from aeroseg.evaluation import OpenVocabIoUMetric, harmonic_mean


def _samples(k, n=6, size=(17, 23), seed=0, absent=(), never_pred=()):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        gt = torch.randint(0, k, size, generator=g)
        for a in absent:  # class never in the ground truth
            gt[gt == a] = (a + 1) % k
        gt[torch.rand(size, generator=g) < 0.1] = 255  # ignored pixels
        pred = torch.where(torch.rand(size, generator=g) < 0.6, gt.clamp(max=k - 1),
                           torch.randint(0, k, size, generator=g))
        for a in never_pred:
            pred[pred == a] = (a + 2) % k
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=gt[None])
        s.pred_sem_seg = PixelData(data=pred[None])
        out.append(s.to_dict())
    return out


def _run(metric, samples, meta):
    metric.dataset_meta = meta
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


@pytest.mark.parametrize('absent,never_pred', [((), ()), ((3,), ()), ((3,), (3,)), ((), (5,))])
def test_per_class_iou_equals_mmseg(absent, never_pred):
    split = get_split('isaid')
    meta = dict(classes=split.classes, palette=split.palette, seen=split.seen, unseen=split.unseen)
    samples = _samples(split.num_classes, absent=absent, never_pred=never_pred)
    ours = _run(OpenVocabIoUMetric(), samples, meta)
    ref_metric = IoUMetric(iou_metrics=['mIoU'])
    ref_metric.dataset_meta = meta
    ref_metric.process({}, samples)
    results = tuple(zip(*ref_metric.results))
    inter, union = sum(results[0]).numpy(), sum(results[1]).numpy()
    with np.errstate(invalid='ignore', divide='ignore'):
        ref_iou = inter / union
    ours_iou = np.array([ours[f'IoU.{c}'] for c in split.classes])
    np.testing.assert_allclose(ours_iou, np.round(ref_iou * 100, 2), equal_nan=True)
    ref = ref_metric.compute_metrics(ref_metric.results)
    assert ours['mIoU'] == pytest.approx(ref['mIoU'], abs=0.01)
    s = np.nanmean(ref_iou[list(split.seen)]) * 100
    u = np.nanmean(ref_iou[list(split.unseen)]) * 100
    assert ours['s-mIoU'] == pytest.approx(round(s, 2))
    assert ours['u-mIoU'] == pytest.approx(round(u, 2))
    assert ours['h-mIoU'] == pytest.approx(round(2 * s * u / (s + u), 2), abs=0.01)
    if absent and absent == never_pred:
        assert np.isnan(ours[f'IoU.{split.classes[absent[0]]}'])  # 0/0 is left out of the means
    elif absent:
        assert ours[f'IoU.{split.classes[absent[0]]}'] == 0.0      # predicted but absent: counts


def test_seen_unseen_override_and_harmonic_mean():
    split = get_split('oem')
    meta = dict(classes=split.classes, seen=split.seen, unseen=split.unseen)
    samples = _samples(split.num_classes, seed=3)
    a = _run(OpenVocabIoUMetric(), samples, meta)
    b = _run(OpenVocabIoUMetric(seen_ids=split.unseen, unseen_ids=split.seen), samples, meta)
    assert a['s-mIoU'] == b['u-mIoU'] and a['u-mIoU'] == b['s-mIoU']
    assert a['h-mIoU'] == pytest.approx(b['h-mIoU'])
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.5, 0.25) == pytest.approx(1 / 3)


def test_perfect_prediction_and_label_out_of_range():
    split = get_split('dlrsd')
    meta = dict(classes=split.classes, seen=split.seen, unseen=split.unseen)
    gt = torch.arange(17).repeat_interleave(4).reshape(1, 4, 17)
    s = SegDataSample()
    s.gt_sem_seg = PixelData(data=gt)
    s.pred_sem_seg = PixelData(data=gt.clone())
    m = _run(OpenVocabIoUMetric(), [s.to_dict()], meta)
    assert m['mIoU'] == m['s-mIoU'] == m['u-mIoU'] == m['h-mIoU'] == 100.0
    bad = gt.clone()
    bad[0, 0, 0] = 20
    s.gt_sem_seg = PixelData(data=bad)
    s.set_metainfo(dict(seg_map_path='ann_dir/val/x.png'))
    metric = OpenVocabIoUMetric()
    metric.dataset_meta = meta
    with pytest.raises(ValueError, match=r'x\.png.*label value 20'):
        metric.process({}, [s.to_dict()])


def test_predictions_outside_the_vocabulary_count_against_their_gt_class_only():
    """A predicted id >= K (e.g. 200) is a false negative of the pixel's ground-truth class and
    a false positive of no class: class K-1's IoU is what it would be without those pixels."""
    split = get_split('isaid')
    k = split.num_classes
    meta = dict(classes=split.classes, palette=split.palette, seen=split.seen, unseen=split.unseen)
    gt = torch.tensor([[0, 0, 0, 0, k - 1, k - 1, 3, 3]])
    pred = torch.tensor([[0, 0, 200, 200, k - 1, 3, 3, 3]])
    s = SegDataSample()
    s.gt_sem_seg = PixelData(data=gt[None])
    s.pred_sem_seg = PixelData(data=pred[None])
    out = _run(OpenVocabIoUMetric(), [s.to_dict()], meta)
    assert out['IoU.ship'] == pytest.approx(50.0)           # 2 TP, 2 FN, 0 FP
    assert out[f'IoU.{split.classes[k - 1]}'] == pytest.approx(50.0)  # 1 TP, 1 FN, 0 FP
    assert out[f'IoU.{split.classes[3]}'] == pytest.approx(66.67)     # 2 TP, 1 FP

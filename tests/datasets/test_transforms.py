"""HideUnseenClasses and CheckLabelValues."""
import numpy as np
import pytest
from mmseg.registry import TRANSFORMS

import aeroseg.datasets  # noqa: F401  (registers)
from aeroseg.datasets.splits import get_split


def test_hide_unseen_from_split_keeps_full_id_space():
    unseen = get_split('isaid').unseen  # 3 6 8 9 12 14
    t = TRANSFORMS.build(dict(type='HideUnseenClasses', split='isaid'))
    gt = np.array([list(range(15)) + [255]], np.uint8)
    out = t(dict(gt_seg_map=gt.copy()))['gt_seg_map']
    assert out.dtype == np.uint8 and out.shape == gt.shape
    for v in range(15):
        assert out[0, v] == (254 if v in unseen else v)  # HIDDEN_INDEX: not unlabelled (255)
    assert out[0, 15] == 255


def test_hide_unseen_explicit_ids_and_other_dtypes():
    t = TRANSFORMS.build(dict(type='HideUnseenClasses', unseen_ids=[1, 2], hidden_index=255))
    gt = np.array([[0, 1, 2, 3, 255]], np.int64)
    np.testing.assert_array_equal(t(dict(gt_seg_map=gt))['gt_seg_map'], [[0, 255, 255, 3, 255]])
    same = TRANSFORMS.build(dict(type='HideUnseenClasses', unseen_ids=[]))
    np.testing.assert_array_equal(same(dict(gt_seg_map=gt.copy()))['gt_seg_map'], gt)


def test_hide_unseen_bad_arguments():
    # no ids, no split and a sample without `ov_unseen`: nothing says what to hide
    with pytest.raises(ValueError, match='unseen_ids'):
        hide = TRANSFORMS.build(dict(type='HideUnseenClasses'))
        hide(dict(gt_seg_map=np.zeros((1, 1), np.uint8)))
    with pytest.raises(KeyError, match='unknown dataset'):
        TRANSFORMS.build(dict(type='HideUnseenClasses', split='nope'))
    with pytest.raises(ValueError, match='hidden_index'):
        TRANSFORMS.build(dict(type='HideUnseenClasses', unseen_ids=[254]))
    with pytest.raises(KeyError, match='LoadAnnotations'):
        TRANSFORMS.build(dict(type='HideUnseenClasses', split='oem'))(dict())


def test_check_label_values():
    t = TRANSFORMS.build(dict(type='CheckLabelValues', split='oem'))
    ok = np.array([[0, 7, 255]], np.uint8)
    assert t(dict(gt_seg_map=ok))['gt_seg_map'] is ok
    with pytest.raises(ValueError, match=r"a/b\.png holds value\(s\) \[8, 254\]"):
        t(dict(gt_seg_map=np.array([[0, 8, 254]], np.uint8), seg_map_path='a/b.png'))
    t16 = TRANSFORMS.build(dict(type='CheckLabelValues', num_classes=3))
    with pytest.raises(ValueError, match=r'\[-1\]'):
        t16(dict(gt_seg_map=np.array([[-1, 0]], np.int16)))


def test_transforms_read_the_split_from_the_sample_and_explicit_arguments_win():
    gt = np.array([[0, 1, 2, 3, 255]], np.uint8)
    hide = TRANSFORMS.build(dict(type='HideUnseenClasses'))
    out = hide(dict(gt_seg_map=gt.copy(), ov_unseen=(1, 3)))['gt_seg_map']
    np.testing.assert_array_equal(out, [[0, 254, 2, 254, 255]])
    assert out.dtype == np.uint8
    out = hide(dict(gt_seg_map=gt.astype(np.int64), ov_unseen=(2,)))['gt_seg_map']
    np.testing.assert_array_equal(out, [[0, 1, 254, 3, 255]])  # per-sample ids, not cached ones
    explicit = TRANSFORMS.build(dict(type='HideUnseenClasses', unseen_ids=[0]))
    np.testing.assert_array_equal(
        explicit(dict(gt_seg_map=gt.copy(), ov_unseen=(1, 3)))['gt_seg_map'], [[254, 1, 2, 3, 255]])
    with pytest.raises(ValueError, match='hidden_index 254 is listed as unseen'):
        hide(dict(gt_seg_map=gt.copy(), ov_unseen=(254,)))

    check = TRANSFORMS.build(dict(type='CheckLabelValues'))
    assert check(dict(gt_seg_map=gt, ov_num_classes=4))['gt_seg_map'] is gt
    with pytest.raises(ValueError, match=r'holds value\(s\) \[3\]'):
        check(dict(gt_seg_map=gt, ov_num_classes=3))
    with pytest.raises(ValueError, match='num_classes'):
        check(dict(gt_seg_map=gt))
    by_split = TRANSFORMS.build(dict(type='CheckLabelValues', split='oem'))  # K = 8 wins over 2
    assert by_split(dict(gt_seg_map=gt, ov_num_classes=2))['gt_seg_map'] is gt

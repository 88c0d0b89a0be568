"""Dataset classes read the processed layout through mmseg's loading pipeline."""
import numpy as np
import pytest
from mmseg.registry import DATASETS
from PIL import Image

import aeroseg.datasets  # noqa: F401  (registers)
from aeroseg.datasets import resolve_vocabulary
from aeroseg.datasets.splits import get_split
from dataset_fakes import fake_processed

LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')]
CASES = [('ISAIDOVDataset', 'isaid', '.png'), ('DLRSDDataset', 'dlrsd', '.jpg'),
         ('OpenEarthMapDataset', 'oem', '.png')]


def build(type_, root, split='val', **kw):
    return DATASETS.build(dict(
        type=type_, data_root=str(root),
        data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
        pipeline=LOAD, **kw))


@pytest.mark.parametrize('type_,name,img_suffix', CASES)
def test_reads_processed_layout_with_split_classes(tmp_path, type_, name, img_suffix):
    labels = fake_processed(tmp_path, name, {'train': 1, 'val': 3}, img_suffix=img_suffix)
    ds = build(type_, tmp_path)
    s = get_split(name)
    assert len(ds) == 3
    assert ds.metainfo['classes'] == s.classes
    assert ds.metainfo['seen'] == s.seen and ds.metainfo['unseen'] == s.unseen
    assert [tuple(c) for c in ds.metainfo['palette']] == list(s.palette)
    item = ds[1]
    gt = item['data_samples'].gt_sem_seg.data.numpy()[0]
    want = np.asarray(Image.open([p for p in labels if '/val/' in str(p)][1]))
    np.testing.assert_array_equal(gt, want)  # read as-is: ids 0..K-1 and 255
    assert set(np.unique(gt)) == set(range(s.num_classes)) | {255}
    assert item['inputs'].shape == (3, 24, 24)
    assert item['data_samples'].img_path.endswith(img_suffix)


def test_missing_data_root_names_the_prepare_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data root .*nowhere.*prepare dlrsd"):
        build('DLRSDDataset', tmp_path / 'nowhere')


def test_missing_ann_dir_is_named(tmp_path):
    fake_processed(tmp_path, 'oem', {'val': 1})
    for p in (tmp_path / 'ann_dir' / 'val').iterdir():
        p.unlink()
    (tmp_path / 'ann_dir' / 'val').rmdir()
    with pytest.raises(FileNotFoundError, match=r"label folder \(ann_dir\) .*ann_dir/val"):
        build('OpenEarthMapDataset', tmp_path)


def test_missing_img_dir_is_named(tmp_path):
    fake_processed(tmp_path, 'isaid', {'val': 1})
    with pytest.raises(FileNotFoundError, match=r"image folder \(img_dir\) .*img_dir/train.*"
                                                r"prepare isaid"):
        build('ISAIDOVDataset', tmp_path, split='train')


def test_image_without_label_and_empty_folder(tmp_path):
    labels = fake_processed(tmp_path, 'isaid', {'val': 2})
    labels[0].unlink()
    with pytest.raises(FileNotFoundError, match=r'without label.*x0\.png'):
        build('ISAIDOVDataset', tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no images ending in '\.jpg'"):
        build('DLRSDDataset', tmp_path)  # DLRSD expects .jpg images


def test_class_subset_carries_split_by_name(tmp_path):
    fake_processed(tmp_path, 'oem', {'val': 1})
    # 'road' (3, seen) and 'water' (5, unseen), in a new order
    ds = build('OpenEarthMapDataset', tmp_path, metainfo=dict(classes=('water', 'road')))
    assert ds.metainfo['seen'] == (1,) and ds.metainfo['unseen'] == (0,)
    gt = ds[0]['data_samples'].gt_sem_seg.data.numpy()[0]
    raw = np.asarray(Image.open(tmp_path / 'ann_dir' / 'val' / 'x0.png'))
    np.testing.assert_array_equal(gt[raw == 5], 0)
    np.testing.assert_array_equal(gt[raw == 3], 1)
    assert (gt[(raw != 5) & (raw != 3)] == 255).all()


def test_seen_unseen_override_and_validation(tmp_path):
    fake_processed(tmp_path, 'oem', {'val': 1})
    s = get_split('oem')
    ds = build('OpenEarthMapDataset', tmp_path, metainfo=dict(seen=s.unseen, unseen=s.seen))
    assert ds.metainfo['seen'] == s.unseen
    with pytest.raises(ValueError, match='outside 0..7'):
        build('OpenEarthMapDataset', tmp_path, metainfo=dict(seen=(0, 9)))
    with pytest.raises(ValueError, match='both seen and unseen'):
        build('OpenEarthMapDataset', tmp_path, metainfo=dict(seen=(0, 1), unseen=(1, 2)))


def test_resolve_vocabulary():
    s = get_split('dlrsd')
    assert resolve_vocabulary('dlrsd', 'seen') == s.seen
    assert resolve_vocabulary('dlrsd', 'all') == tuple(range(17))
    assert resolve_vocabulary('dlrsd', ['water', 0]) == (16, 0)
    with pytest.raises(KeyError, match='unknown class'):
        resolve_vocabulary('dlrsd', ['lava'])
    with pytest.raises(ValueError, match='vocabulary'):
        resolve_vocabulary('dlrsd', 'some')


def test_data_info_carries_the_protocol_for_split_free_transforms(tmp_path):
    fake_processed(tmp_path, 'oem', {'val': 1})
    s = get_split('oem')
    info = build('OpenEarthMapDataset', tmp_path).get_data_info(0)
    assert info['ov_unseen'] == s.unseen and info['ov_num_classes'] == s.num_classes
    # it follows the dataset's metainfo (overrides, class subsets), not the split module
    info = build('OpenEarthMapDataset', tmp_path,
                 metainfo=dict(seen=s.unseen, unseen=s.seen)).get_data_info(0)
    assert info['ov_unseen'] == s.seen
    info = build('OpenEarthMapDataset', tmp_path,
                 metainfo=dict(classes=('water', 'road'))).get_data_info(0)
    assert info['ov_unseen'] == (0,) and info['ov_num_classes'] == 2

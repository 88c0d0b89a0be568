"""configs/_base_/datasets/*.py load with mmengine and run their pipelines."""
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS, METRICS

import aeroseg.datasets  # noqa: F401  (registers)
import aeroseg.evaluation  # noqa: F401
from aeroseg.datasets.splits import get_split
from dataset_fakes import fake_processed

REPO = Path(__file__).resolve().parents[2]
CFG = REPO / 'configs' / '_base_' / 'datasets'
SAMPLES = REPO / 'tests' / 'data' / 'real_samples'


def _dataset(cfg, which, root):
    d = cfg[which]['dataset'].copy()
    d['data_root'] = str(root)
    return DATASETS.build(d)


@pytest.mark.parametrize('name,suffix', [('isaid', '.png'), ('dlrsd', '.jpg'), ('oem', '.png')])
def test_train_pipeline_hides_unseen_and_crops_to_clip_size(tmp_path, name, suffix):
    cfg = Config.fromfile(str(CFG / f'{name}.py'))
    assert cfg.ov_protocol == dict(dataset=name, train_vocabulary='seen', test_vocabulary='all')
    assert cfg.train_dataloader.batch_size == 4
    assert METRICS.get(cfg.val_evaluator['type']) is not None
    fake_processed(tmp_path, name, {'train': 2, 'val': 1}, size=64, img_suffix=suffix)
    s = get_split(name)
    ds = _dataset(cfg, 'train_dataloader', tmp_path)
    item = ds[0]
    assert item['inputs'].shape == (3, 384, 384)  # short side 64 -> 384, crop 384
    gt = item['data_samples'].gt_sem_seg.data.numpy()[0]
    vals = set(np.unique(gt).tolist())
    assert vals <= set(s.seen) | {254, 255}  # unseen -> 254 (hidden), unlabelled stays 255
    assert vals & set(s.seen)  # seen classes survive
    assert 254 in vals         # the fake labels hold every class, so some unseen pixel was hidden
    val = _dataset(cfg, 'val_dataloader', tmp_path)
    item = val[0]
    assert item['inputs'].shape == (3, 640, 640)  # ResizeShortestEdge(640)
    gt = item['data_samples'].gt_sem_seg.data.numpy()[0]
    assert gt.shape == (64, 64)  # label kept at the original size
    assert set(np.unique(gt).tolist()) == set(range(s.num_classes)) | {255}
    assert val.metainfo['unseen'] == s.unseen


@pytest.mark.parametrize('name', ['potsdam', 'vaihingen', 'loveda'])
def test_cross_configs_on_real_tiles(name):
    cfg = Config.fromfile(str(CFG / f'{name}.py'))
    d = cfg.test_dataloader['dataset'].copy()
    d.update(data_root=str(SAMPLES / name),
             data_prefix=dict(img_path='img_dir', seg_map_path='ann_dir'))
    ds = DATASETS.build(d)
    item = ds[0]
    h = 1024 if name == 'loveda' else 512
    assert item['inputs'].shape == (3, 640, 640)
    gt = item['data_samples'].gt_sem_seg.data.numpy()[0]
    assert gt.shape == (h, h)  # label at the original size
    assert set(np.unique(gt).tolist()) <= set(range(get_split(name).num_classes)) | {255}


def test_configs_hold_no_class_lists():
    for p in CFG.glob('*.py'):
        text = p.read_text()
        assert 'classes=' not in text and "'ship'" not in text, p

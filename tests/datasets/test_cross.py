"""Cross-dataset targets on real tiles (tests/data/real_samples, see its README)."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
from mmseg.registry import DATASETS
from PIL import Image

import aeroseg.datasets  # noqa: F401  (registers)
from aeroseg.datasets.splits import get_split

SAMPLES = Path(__file__).resolve().parents[1] / 'data' / 'real_samples'

# raw value counts from the README (measured on the files)
COUNTS = {
    'potsdam': {0: 24696, 1: 100557, 2: 64023, 3: 34357, 4: 30670, 5: 7841},
    'vaihingen': {0: 21283, 1: 135362, 2: 79847, 3: 16532, 4: 4908, 5: 4212},
    'loveda': {1: 142441, 2: 14427, 3: 19208, 4: 3888, 7: 868612},
}
TYPES = {'potsdam': 'PotsdamOVDataset', 'vaihingen': 'VaihingenOVDataset',
         'loveda': 'LoveDAOVDataset'}


def test_fixture_hashes():
    for line in (SAMPLES / 'SHA256SUMS').read_text().splitlines():
        digest, rel = line.split()
        assert hashlib.sha256((SAMPLES / rel).read_bytes()).hexdigest() == digest, rel


@pytest.mark.parametrize('name', ['potsdam', 'vaihingen', 'loveda'])
def test_reduce_zero_label_on_real_tiles(name):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='CheckLabelValues', split=name), dict(type='PackSegInputs')]
    ds = DATASETS.build(dict(type=TYPES[name], data_root=str(SAMPLES / name),
                             data_prefix=dict(img_path='img_dir', seg_map_path='ann_dir'),
                             pipeline=pipeline))
    s = get_split(name)
    assert len(ds) == 1
    assert ds.metainfo['classes'] == s.classes
    assert ds.metainfo['seen'] == () and ds.metainfo['unseen'] == tuple(range(s.num_classes))
    item = ds[0]
    gt = item['data_samples'].gt_sem_seg.data.numpy()[0]
    got = dict(zip(*[v.tolist() for v in np.unique(gt, return_counts=True)]))
    want = {(255 if v == 0 else v - 1): n for v, n in COUNTS[name].items()}
    assert got == want
    raw = np.asarray(Image.open(next((SAMPLES / name / 'ann_dir').iterdir())))
    np.testing.assert_array_equal(gt[raw == 2], 1)  # building (ISPRS) / building (LoveDA)
    h = 1024 if name == 'loveda' else 512
    assert item['inputs'].shape == (3, h, h)

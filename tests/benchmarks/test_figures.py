"""benchmarks.figures: per-class IoU bars from runs.csv and the Fig. 5 grid from a work dir."""
import csv
import json

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS
from PIL import Image

from aeroseg.config import load_config
from aeroseg.datasets.splits import get_split
from aeroseg.hooks import clear_outside_weights
from benchmarks.figures import checkpoint_path, main, method_list, per_class_iou

CATSEG = 'configs/catseg/catseg_vitb16_isaid.py'


def _runs(path, rows):
    cols = ['job', 'config', 'dataset', 'seed', 'status', 'iou_per_class']
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def test_per_class_iou_orders_seen_then_unseen_and_averages_seeds(tmp_path):
    split = get_split('isaid')
    iou0 = {c: 10.0 for c in split.classes}
    iou1 = {c: 30.0 for c in split.classes}
    iou1['bridge'] = 50.0
    runs = tmp_path / 'mini' / 'runs.csv'
    _runs(runs, [
        dict(job='c0', config=CATSEG, dataset='iSAID', seed=0, status='ok', iou_per_class=json.dumps(iou0)),
        dict(job='c1', config=CATSEG, dataset='iSAID', seed=1, status='ok', iou_per_class=json.dumps(iou1)),
        dict(job='o', config='configs/ovrs/ovrs_vitb16_isaid.py', dataset='iSAID', seed=0,
             status='failed', iou_per_class=''),
    ])
    classes, n_seen, values, missing = per_class_iou(runs, 'isaid', method_list())
    assert n_seen == len(split.seen) and classes[:n_seen] == list(split.seen_classes)
    assert classes[n_seen:] == list(split.unseen_classes)
    assert list(values) == ['CAT-Seg']
    assert values['CAT-Seg'][classes.index('ship')] == 20.0
    assert values['CAT-Seg'][classes.index('bridge')] == 30.0
    assert {'OVRS', 'AerOSeg', 'SAN'} <= set(missing)       # failed or absent runs are named
    assert main(['--results', str(tmp_path), '--what', 'per-class', '--datasets', 'isaid']) == 0
    with Image.open(tmp_path / 'mini' / 'figures' / 'per_class_iou_isaid.png') as im:
        assert im.size[0] > 800


def test_fig5_uses_checkpoints_that_exist_and_names_the_skipped(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / 'data' / 'isaid'
    for sub in ('img_dir/val', 'ann_dir/val'):
        (root / sub).mkdir(parents=True)
    for name in ('P0001_0_0', 'P0002_0_0', 'P0003_0_0'):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / 'img_dir/val' / f'{name}.png')
        Image.fromarray(rng.integers(0, 15, (64, 64), dtype=np.uint8)).save(root / 'ann_dir/val' / f'{name}.png')
    work = tmp_path / 'work_dirs' / 'bench'
    ckpt = checkpoint_path(work, 'mini', CATSEG)
    assert ckpt == work / 'mini' / 'catseg' / 'catseg_vitb16_isaid' / 'seed0' / 'final_weights.pth'
    ckpt.parent.mkdir(parents=True)
    cfg = load_config(CATSEG, scale='mini', data_root='unused')
    clear_outside_weights(cfg.model)
    torch.manual_seed(0)
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, ckpt)
    rc = main(['--results', str(tmp_path / 'results'), '--work-dirs', str(work), '--what', 'fig5',
               '--datasets', 'isaid', '--data-root', str(tmp_path / 'data'), '--num-images', '2'])
    out = capsys.readouterr().out
    assert rc == 0
    assert 'skipped OVRS: no checkpoint' in out and 'skipped AerOSeg: no checkpoint' in out
    assert 'skipped SED: no checkpoint' in out and 'skipped CAT-Seg' not in out
    png = tmp_path / 'results' / 'mini' / 'figures' / 'fig5_isaid.png'
    with Image.open(png) as im:
        w, h = im.size
    assert w > h > 0                               # 2 rows x (image, GT, CAT-Seg) + legend


def test_fig5_without_trained_checkpoints_draws_only_the_training_free(tmp_path, capsys):
    """No trained checkpoint: each trained method is named as skipped; SegEarth-OV (training-free,
    its mini version needs no file) is still drawn."""
    root = tmp_path / 'data' / 'isaid' / 'img_dir' / 'val'
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'a.png')
    assert main(['--results', str(tmp_path), '--work-dirs', str(tmp_path / 'none'), '--what', 'fig5',
                 '--datasets', 'isaid', '--data-root', str(tmp_path / 'data')]) == 0
    out = capsys.readouterr().out
    assert 'skipped CAT-Seg: no checkpoint' in out and 'skipped SegEarth-OV' not in out
    assert (tmp_path / 'mini' / 'figures' / 'fig5_isaid.png').exists()


@pytest.mark.parametrize('missing', ['runs'])
def test_per_class_without_runs_csv_fails_cleanly(tmp_path, capsys, missing):
    assert main(['--results', str(tmp_path), '--what', 'per-class', '--datasets', 'isaid']) == 2
    assert 'runs.csv not found' in capsys.readouterr().err

"""A tiny config trains on mini data and beats a constant predictor on s-mIoU (issue: CAT-Seg/OVRS).

Runs the real entry points (benchmarks.train / benchmarks.test) on the mini iSAID with the
pretrained tiny CLIP, for a short schedule, and compares with the best constant predictor (every
pixel = the most frequent seen class of the val ground truth) scored by the same metric.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aeroseg.datasets.splits import get_split
from aeroseg.evaluation.open_vocab_metric import iou_from_confusion
from aeroseg.mini import ensure_mini

ASSET = Path(__file__).resolve().parents[2] / 'aeroseg' / 'assets' / 'mini' / 'aeroseg-mini-ViT-8.pt'
VAL = 40


def _constant_s_miou(root: Path, split, n: int) -> float:
    files = sorted((root / 'ann_dir' / 'val').glob('*.png'))[:n]
    labels = [np.asarray(Image.open(f)) for f in files]
    counts = np.bincount(np.concatenate([l.ravel() for l in labels]), minlength=256)
    best = max(split.seen, key=lambda i: counts[i])
    k = split.num_classes
    conf = np.zeros((k, k))
    for i in range(k):
        conf[i, best] = counts[i]
    iou = iou_from_confusion(conf)
    return float(np.nanmean(iou[list(split.seen)]) * 100)


@pytest.mark.skipif(not ASSET.exists(), reason='tiny CLIP checkpoint not built')
def test_tiny_catseg_beats_constant_predictor(tmp_path):
    from benchmarks import test as bench_test
    from benchmarks import train as bench_train
    root = ensure_mini('isaid')
    cfg = 'configs/catseg/catseg_vitb16_isaid.py'
    n = 100  # half the mini schedule
    opts = [f'train_cfg.max_iters={n}', f'param_scheduler.0.end={n}', f'param_scheduler.0.T_max={n}',
            f'test_dataloader.dataset.indices={VAL}', 'default_hooks.checkpoint.interval=1000']
    assert bench_train.main([cfg, '--scale', 'mini', '--work-dir', str(tmp_path), '--no-validate',
                             '--cfg-options', *opts]) == 0
    assert bench_test.main([cfg, str(tmp_path / 'final_weights.pth'), '--scale', 'mini',
                            '--work-dir', str(tmp_path), '--cfg-options', *opts]) == 0
    metrics = json.loads((tmp_path / 'metrics.json').read_text())['metrics']
    const = _constant_s_miou(root, get_split('isaid'), VAL)
    assert metrics['s-mIoU'] > const + 5, (metrics, const)

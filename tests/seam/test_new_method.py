"""A new method joins through the public seam only (tests/seam/probe_method.py + configs here).

It builds at full and mini scale, trains a step, runs through ``aeroseg.apis.segment``, and the
runner trains, tests and tables it from a spec module of its own; nothing outside the method's
own files (this folder and a tmp dir) is edited.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS

from aeroseg.apis import init_model, segment
from aeroseg.config import REPO_ROOT, load_config
from aeroseg.hooks import clear_outside_weights, weight_fields

HERE = Path(__file__).resolve().parent
TILE = REPO_ROOT / 'tests/data/real_samples/potsdam/img_dir/2_10_0_0_512_512.png'
CONFIG = '''
_base_ = ['{root}/configs/_base_/datasets/{ds}.py', '{root}/configs/_base_/schedules/catseg_10k.py',
          '{root}/configs/_base_/default_runtime.py']
custom_imports = dict(imports=['aeroseg', 'baselines', 'probe_method'], allow_failed_imports=False)
model = dict(
    type='LinearProbeSegmentor',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=None, std=None, bgr_to_rgb=True,
                           pad_val=0, seg_pad_val=255, size=(224, 224)),
    clip=dict(type='CLIPDenseBackbone', model_name='ViT-B-16', pretrained='openai', image_size=224,
              tap_indices=()),
    vocabulary=dict(split='{ds}', train='seen', test='all'),
    test_cfg=dict(mode='whole'))
'''


@pytest.fixture(scope='module')
def method_dir(tmp_path_factory):
    """The method's own files: its module (on sys.path, as a user's package would be) + configs."""
    d = tmp_path_factory.mktemp('probe')
    for ds in ('isaid', 'dlrsd', 'oem'):
        (d / f'probe_vitb16_{ds}.py').write_text(CONFIG.format(root=REPO_ROOT, ds=ds))
    sys.path.insert(0, str(HERE))
    import probe_method  # noqa: F401  (registers LinearProbeSegmentor)
    yield d
    sys.path.remove(str(HERE))


def test_builds_at_full_and_mini_scale_and_trains(method_dir, tmp_path):
    cfg = load_config(str(method_dir / 'probe_vitb16_isaid.py'))
    assert weight_fields(cfg.model) == {'vl': 'clip.pretrained'}
    clear_outside_weights(cfg.model)  # random ViT-B/16: no download here
    full = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        scores = full.predict_logits(torch.rand(1, 3, 224, 224) * 255)
    assert scores.shape == (1, 15, 224, 224) and 0 <= float(scores.min()) <= float(scores.max()) <= 1
    mini = load_config(str(method_dir / 'probe_vitb16_isaid.py'), scale='mini', data_root=str(tmp_path))
    assert mini.model.clip.model_name == 'aeroseg-mini-ViT-8'  # its own hook ran
    torch.manual_seed(0)
    model = MODELS.build(mini.model).train()
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    s = SegDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128)))
    s.gt_sem_seg = PixelData(data=torch.randint(0, 15, (1, 128, 128)))
    loss = model.loss(torch.rand(1, 3, 128, 128) * 255, [s])['loss_ce']
    loss.backward()
    assert model.proj.weight.grad is not None
    assert all(p.grad is None for p in model.clip.parameters())  # frozen CLIP


def test_runs_through_apis_segment(method_dir, tmp_path):
    cfg = load_config(str(method_dir / 'probe_vitb16_isaid.py'), scale='mini', data_root='unused')
    clear_outside_weights(cfg.model)
    torch.manual_seed(0)
    ckpt = tmp_path / 'final_weights.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, ckpt)
    model = init_model(str(method_dir / 'probe_vitb16_isaid.py'), str(ckpt), scale='mini')
    out = segment(model, str(TILE), ['building', 'tree', 'road', 'car'])
    assert out.shape == (512, 512) and out.max() < 4


SPEC = '''
from benchmarks.methods import Method, register_method
from benchmarks.tables import Table, method_row
register_method(Method('probe', 'Probe', {cfg!r}, 'CLIP ViT-B/16 (frozen) + 1x1 probe'))
TABLES = (Table('T2', 'a new method beside the paper', (method_row('probe'),), ('isaid',),
                ('s-mIoU', 'u-mIoU', 'h-mIoU')),)
'''


def test_the_runner_trains_tests_and_tables_it(method_dir, tmp_path):
    """``benchmarks.run --spec`` trains (200 mini iterations) and tests it as subprocesses."""
    import csv
    import json
    spec = tmp_path / 'probe_spec.py'
    spec.write_text(SPEC.format(cfg=str(method_dir / 'probe_vitb16_{ds}.py')))
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(HERE), str(REPO_ROOT), os.environ.get('PYTHONPATH', '')]))
    work, res = tmp_path / 'w', tmp_path / 'r'
    r = subprocess.run([sys.executable, '-m', 'benchmarks.run', '--spec', str(spec), '--scale', 'mini',
                        '--work-dir', str(work), '--results-dir', str(res)], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    metrics = json.loads(next(work.glob('mini/**/seed0/metrics.json')).read_text())['metrics']
    rows = {x['metric']: x for x in csv.DictReader(open(res / 'mini' / 'table2.csv'))}
    for k in ('s-mIoU', 'u-mIoU', 'h-mIoU'):
        assert float(rows[k]['value']) == pytest.approx(metrics[k], abs=1e-4)
    assert metrics['s-mIoU'] > 5  # it learnt something from the seen classes in 200 iterations
    weights = next(work.glob('mini/**/seed0/final_weights.pth'))
    model = init_model(str(method_dir / 'probe_vitb16_isaid.py'), str(weights), scale='mini')
    assert segment(model, np.zeros((64, 64, 3), np.uint8), ['ship', 'harbor']).shape == (64, 64)

"""The inference command (python -m aeroseg.infer) on real imagery, with a mini model.

The model is mini CAT-Seg with random weights saved as training saves them (as tests/test_apis.py
does): these tests check the command's plumbing (geo metadata, nodata, tiling, synonyms, errors),
not segmentation quality.
"""
import hashlib
import json
import os
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from mmseg.registry import MODELS
from PIL import Image

import aeroseg.apis as apis
from aeroseg.config import load_config
from aeroseg.hooks import clear_outside_weights
from aeroseg.infer import main

CONFIG = 'configs/catseg/catseg_vitb16_isaid.py'
ROOT = Path(__file__).resolve().parents[1]
NEON = ROOT / 'tests' / 'data' / 'real_samples' / 'neon' / 'OSBS_029.tif'
PNG_TILE = ROOT / 'tests' / 'data' / 'real_samples' / 'potsdam' / 'img_dir' / '2_10_0_0_512_512.png'
CLASSES = 'tree,grass|lawn,road,building'


def _ckpt(config, path):
    cfg = load_config(config, scale='mini', data_root='unused')
    clear_outside_weights(cfg.model)
    torch.manual_seed(0)
    torch.save({'meta': {'iter': 200}, 'state_dict': MODELS.build(cfg.model).state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    return _ckpt(CONFIG, tmp_path_factory.mktemp('ckpt') / 'final_weights.pth')


def _run(ckpt, images, out, *extra, classes=CLASSES):
    args = [CONFIG, *([ckpt] if ckpt else []), '--scale', 'mini', '--images', *map(str, images),
            '--classes', classes, '--out', str(out), '--device', 'cpu', '--no-progress', *extra]
    return main(args)


def test_fixture_is_the_file_from_the_deepforest_wheel():
    line = (NEON.parent / 'SHA256SUMS').read_text().split()
    assert line[1] == NEON.name and hashlib.sha256(NEON.read_bytes()).hexdigest() == line[0]


def test_real_geotiff_keeps_crs_transform_size_and_nodata(ckpt, tmp_path):
    # a copy with a nodata block of our own (nodata = 255 in every band, the file's nodata value)
    scene = tmp_path / 'in' / 'OSBS_029_holes.tif'
    scene.parent.mkdir()
    shutil.copy(NEON, scene)
    with rasterio.open(scene, 'r+') as dst:
        data = dst.read()
        data[:, 50:120, 200:330] = 255
        dst.write(data)
    out = tmp_path / 'out'
    rc = _run(ckpt, [NEON, scene], out, '--tile', '256', '--overlap', '32', '--batch-size', '2',
              '--confidence')
    assert rc == 0
    assert sorted(os.listdir(out)) == sorted(f'{s}_{k}' for s in ('OSBS_029', 'OSBS_029_holes')
                                             for k in ('classes.tif', 'confidence.tif', 'overlay.png'))
    for src_path in (NEON, scene):
        stem = src_path.stem
        with rasterio.open(src_path) as src, rasterio.open(out / f'{stem}_classes.tif') as res:
            assert res.crs == src.crs and res.crs.to_epsg() == 32617
            assert res.transform == src.transform
            assert (res.width, res.height) == (src.width, src.height) == (400, 400)
            assert (res.count, res.dtypes[0], res.nodata) == (1, 'uint8', 255)
            labels, pixels = res.read(1), src.read()
            assert json.loads(res.tags()['CLASS_NAMES']) == ['tree', 'grass', 'road', 'building']
            assert json.loads(res.tags()['CLASS_QUERIES'])[1] == ['grass', 'lawn']
            assert set(res.colormap(1)) >= {0, 1, 2, 3, 255}
        nodata = (pixels == 255).all(0)          # the file's rule: every band at its nodata value
        np.testing.assert_array_equal(labels == 255, nodata)
        assert labels[~nodata].max() <= 3
        with rasterio.open(out / f'{stem}_confidence.tif') as conf:
            c = conf.read(1)
            assert conf.transform == src.transform
            np.testing.assert_array_equal(np.isnan(c), nodata)
            assert 0 <= np.nanmin(c) and np.nanmax(c) <= 1
    with rasterio.open(out / 'OSBS_029_holes_classes.tif') as res:
        assert (res.read(1)[50:120, 200:330] == 255).all()
    with Image.open(out / 'OSBS_029_overlay.png') as im:
        assert im.size[0] > 400 and im.size[1] > 300


def test_png_gives_png_equal_to_the_python_api(ckpt, tmp_path):
    assert _run(ckpt, [PNG_TILE], tmp_path, '--no-overlay') == 0
    assert sorted(os.listdir(tmp_path)) == ['2_10_0_0_512_512_classes.png']
    model = apis.init_model(CONFIG, ckpt, scale='mini')
    ref = apis.segment(model, str(PNG_TILE), ['tree', 'grass|lawn', 'road', 'building'])
    with Image.open(tmp_path / '2_10_0_0_512_512_classes.png') as im:
        assert im.mode == 'P'
        np.testing.assert_array_equal(np.asarray(im), ref)   # one tile = one model pass


def test_synonyms_score_the_max_over_their_queries(ckpt):
    model = apis.init_model(CONFIG, ckpt, scale='mini')
    grouped = apis.segment_scores(model, str(PNG_TILE), ['building|house', 'tree'])
    flat = apis.segment_scores(model, str(PNG_TILE), ['building', 'house', 'tree'])
    np.testing.assert_allclose(grouped[0], np.maximum(flat[0], flat[1]), atol=1e-6)
    np.testing.assert_allclose(grouped[1], flat[2], atol=1e-6)
    with pytest.raises(TypeError, match='single string'):
        apis.segment(model, str(PNG_TILE), 'building,tree')
    with pytest.raises(ValueError, match='duplicate'):
        apis.segment(model, str(PNG_TILE), ['building|tree', 'tree'])


def test_no_checkpoint_builds_from_the_config(tmp_path, capsys):
    """CHECKPOINT is optional (training-free methods): the config's own weights are used."""
    assert _run(None, [NEON], tmp_path, '--no-overlay', '--tile', '400') == 0
    assert 'no CHECKPOINT' in capsys.readouterr().err
    assert os.listdir(tmp_path) == ['OSBS_029_classes.tif']


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err       # one line, no traceback
    return err


@pytest.mark.parametrize('case', ['not_image', 'band', 'empty', 'duplicate', 'stray_comma'])
def test_user_errors_are_one_line_naming_file_and_fix(ckpt, tmp_path, capsys, case):
    images, kw, extra = [NEON], {}, []
    if case == 'not_image':
        bad = tmp_path / 'notes.tif'
        bad.write_text('these are not pixels')
        images, want = [bad], ('notes.tif: not an image or raster', 'GeoTIFF, PNG or JPEG')
    elif case == 'band':
        extra, want = ['--bands', '4,3,2'], ('OSBS_029.tif: band 4 is out of range', '--bands 3,2,1')
    elif case == 'empty':
        kw, want = dict(classes=''), ('class list is empty', '--classes "ship,harbor,water"')
    elif case == 'duplicate':
        kw, want = dict(classes='tree,road,tree'), ('duplicate', "['tree']")
    else:
        kw, want = dict(classes='tree,,road'), ('empty name', 'stray comma')
    out = tmp_path / 'out'
    assert _run(ckpt, images, out, *extra, **kw) == 2
    err = _error(capsys)
    assert all(w in err for w in want), err
    assert not out.exists() or os.listdir(out) == []


def test_checkpoint_that_does_not_fit_names_keys(tmp_path, capsys):
    other = _ckpt('configs/ovrs/ovrs_vitb16_isaid.py', tmp_path / 'ovrs_weights.pth')
    assert _run(other, [NEON], tmp_path / 'out') == 2
    err = _error(capsys)
    assert 'ovrs_weights.pth' in err and 'catseg_vitb16_isaid.py' in err
    assert 'unexpected in file' in err or 'missing in file' in err
    assert 'head.' in err and 'Fix: pass the CHECKPOINT trained with' in err


def test_unwritable_output_folder(ckpt, tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    assert _run(ckpt, [NEON], blocker / 'out') == 2
    assert 'cannot be written' in _error(capsys)


def test_failure_mid_scene_leaves_nothing_behind(ckpt, tmp_path, monkeypatch, capsys):
    calls = []
    real = apis.score_batch

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError('simulated device failure')
        return real(*a, **k)
    monkeypatch.setattr(apis, 'score_batch', flaky)
    out = tmp_path / 'out'
    assert _run(ckpt, [NEON], out, '--tile', '256', '--overlap', '32', '--confidence') == 1
    assert 'simulated device failure' in _error(capsys) and len(calls) == 2
    assert os.listdir(out) == []                 # no class map, confidence or temp file
    with pytest.raises(RuntimeError, match='simulated'):
        _run(ckpt, [NEON], out, '--tile', '256', '--overlap', '32', '--verbose')


def test_console_script_is_declared():
    scripts = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']
    assert scripts['aeroseg-infer'] == 'aeroseg.infer:main'
    reqs = (ROOT / 'requirements.txt').read_text().split()
    assert 'rasterio' in reqs and 'tqdm' in reqs and 'matplotlib' in reqs

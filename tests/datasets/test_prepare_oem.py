"""`python -m aeroseg.datasets.prepare oem` on a fabricated OpenEarthMap_wo_xBD release."""
import json

import numpy as np
import pytest
from PIL import Image

from aeroseg.datasets.prepare import main
from dataset_fakes import fake_oem

TRAIN = {'aachen_1.tif': (40, 72), 'aachen_2.tif': (32, 32)}
VAL = {'tokyo_3.tif': (48, 40)}
XBD = {'palu_7.tif': (32, 32)}


@pytest.fixture
def release(tmp_path):
    raw = tmp_path / 'raw'
    return raw, tmp_path / 'out', fake_oem(raw, TRAIN, VAL, XBD)


def run(raw, out, *extra):
    return main(['oem', '--raw', str(raw), '--out', str(out), '--crop-size', '16', *extra])


def test_crops_values_and_xbd_dropped(release, capsys):
    raw, out, exp = release
    assert run(raw, out) == 0
    got = {s: sorted(p.name for p in (out / 'ann_dir' / s).iterdir()) for s in ('train', 'val')}
    want = {'train': [], 'val': []}
    for split, items in (('train', TRAIN), ('val', VAL)):
        for name, (h, w) in items.items():
            stem = name[:-4]
            for y in range(0, h - 15, 16):      # grid, partial border windows dropped
                for x in range(0, w - 15, 16):
                    crop = f'{stem}_{y}_{y + 16}_{x}_{x + 16}.png'
                    want[split].append(crop)
                    np.testing.assert_array_equal(
                        np.asarray(Image.open(out / 'ann_dir' / split / crop)),
                        exp[name][y:y + 16, x:x + 16])
                    src = np.asarray(Image.open(raw / stem.split('_')[0] / 'images' / name))
                    np.testing.assert_array_equal(
                        np.asarray(Image.open(out / 'img_dir' / split / crop)),
                        src[y:y + 16, x:x + 16])
    assert got == {s: sorted(v) for s, v in want.items()}
    # aachen_1 40x72 -> 2 x 4 = 8 crops (border rows/cols of 8 px dropped); 32x32 -> 4; 48x40 -> 6
    assert len(got['train']) == 12 and len(got['val']) == 6
    assert not any('palu' in n for n in got['train'])
    text = capsys.readouterr().out
    assert 'xBD tiles dropped (xbd_files.csv): train 1, val 0' in text
    assert 'paper 31,154' in text and 'paper 5,195' in text
    rep = json.loads((out / 'prepare_report.json').read_text())
    assert set(int(k) for k in rep['histogram']) <= set(range(8)) | {255}
    assert '255' in rep['histogram']  # official 0 (unknown) -> 255


def test_shift_edge_covers_borders(release):
    raw, out, _ = release
    assert run(raw, out, '--edge', 'shift') == 0
    names = {p.name for p in (out / 'ann_dir' / 'train').iterdir()}
    assert 'aachen_1_24_40_56_72.png' in names  # shifted back to end at the border
    assert len([n for n in names if n.startswith('aachen_1_')]) == 3 * 5


def test_limit_and_idempotency(release):
    raw, out, _ = release
    assert run(raw, out, '--limit', '1') == 0
    assert {p.name.rsplit('_', 4)[0] for p in (out / 'ann_dir' / 'train').iterdir()} == {'aachen_1'}
    stamps = {p: p.stat().st_mtime_ns for p in (out / 'ann_dir').rglob('*.png')}
    assert run(raw, out, '--limit', '1') == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def _err(capsys):
    return capsys.readouterr().err


def test_missing_xbd_csv(release, capsys):
    raw, out, _ = release
    (raw / 'xbd_files.csv').unlink()
    assert run(raw, out) == 1
    assert 'xbd_files.csv' in _err(capsys)


def test_listed_image_missing(release, capsys):
    raw, out, _ = release
    (raw / 'tokyo' / 'images' / 'tokyo_3.tif').unlink()
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'tokyo_3.tif' in err and 'missing' in err


def test_image_without_label(release, capsys):
    raw, out, _ = release
    (raw / 'aachen' / 'labels' / 'aachen_2.tif').unlink()
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'image without label' in err and 'aachen_2.tif' in err


def test_value_above_8(release, capsys):
    raw, out, _ = release
    p = raw / 'aachen' / 'labels' / 'aachen_2.tif'
    a = np.asarray(Image.open(p)).copy()
    a[0, 0] = 9
    Image.fromarray(a, 'L').save(p)
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'aachen_2.tif' in err and '[9]' in err


def test_rgb_label_refused(release, capsys):
    raw, out, _ = release
    p = raw / 'aachen' / 'labels' / 'aachen_2.tif'
    Image.open(p).convert('RGB').save(p)
    assert run(raw, out) == 1
    assert 'aachen_2.tif' in _err(capsys)


def test_size_mismatch(release, capsys):
    raw, out, _ = release
    p = raw / 'aachen' / 'images' / 'aachen_2.tif'
    Image.fromarray(np.zeros((32, 31, 3), np.uint8)).save(p)
    assert run(raw, out) == 1
    assert 'size mismatch' in _err(capsys)


def test_all_unknown_labels_fail(release, capsys):
    raw, out, _ = release
    for p in raw.glob('*/labels/*.tif'):
        Image.fromarray(np.zeros(Image.open(p).size[::-1], np.uint8), 'L').save(p)
    assert run(raw, out) == 1
    assert 'every label pixel is ignore' in _err(capsys)


def _geotiff(path, arr, **opts):
    """A georeferenced GeoTIFF as GDAL writes them (CRS, transform, tiles, compression)."""
    import rasterio
    from rasterio.transform import from_origin
    arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    with rasterio.open(path, 'w', driver='GTiff', width=arr.shape[2], height=arr.shape[1],
                       count=arr.shape[0], dtype='uint8', crs='EPSG:32632',
                       transform=from_origin(500000, 5600000, 0.5, 0.5), **opts) as dst:
        dst.write(arr)


@pytest.mark.parametrize('opts', [
    dict(compress='deflate', predictor=2, tiled=True, blockxsize=16, blockysize=16, interleave='band'),
    dict(compress='lerc'),   # a GDAL codec PIL cannot decode
])
def test_geotiffs_are_read_through_rasterio(release, opts):
    """#19 item 6: OEM rasters go through the suite's raster dependency (rasterio / GDAL), so a
    tile PIL cannot decode is read too, with the same values."""
    pytest.importorskip('rasterio')
    raw, out, exp = release
    img = np.asarray(Image.open(raw / 'aachen' / 'images' / 'aachen_1.tif'))
    lab = np.asarray(Image.open(raw / 'aachen' / 'labels' / 'aachen_1.tif'))
    _geotiff(raw / 'aachen' / 'images' / 'aachen_1.tif', img, **opts)
    _geotiff(raw / 'aachen' / 'labels' / 'aachen_1.tif', lab, **opts)
    if opts['compress'] == 'lerc':
        with pytest.raises(Exception):  # the reason to read through GDAL
            Image.open(raw / 'aachen' / 'images' / 'aachen_1.tif').load()
    assert run(raw, out) == 0
    for y, x in ((0, 0), (16, 48)):
        crop = f'aachen_1_{y}_{y + 16}_{x}_{x + 16}.png'
        np.testing.assert_array_equal(np.asarray(Image.open(out / 'ann_dir' / 'train' / crop)),
                                      exp['aachen_1.tif'][y:y + 16, x:x + 16])
        np.testing.assert_array_equal(np.asarray(Image.open(out / 'img_dir' / 'train' / crop)),
                                      img[y:y + 16, x:x + 16])


def test_multiband_float_raster_is_one_line(release, capsys):
    raw, out, _ = release
    import rasterio
    p = raw / 'aachen' / 'images' / 'aachen_1.tif'
    with rasterio.open(p, 'w', driver='GTiff', width=8, height=8, count=2, dtype='float32') as d:
        d.write(np.zeros((2, 8, 8), np.float32))
    assert run(raw, out) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert all('OEM train tiles:' in ln for ln in err[:-1])  # the tqdm bar, ended before the error
    err = err[-1:]
    assert err == [f"error: '{p}': 2 band(s) of float32; expected uint8 with 1 (label), 3 or 4 (image) bands"]

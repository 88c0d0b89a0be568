"""Raster I/O for inference (aeroseg.raster): bands, stretch, nodata, atomic class-map writes."""
import json
import os

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from aeroseg.raster import (ClassMapWriter, InputError, check_writable_dir, list_images, open_image,
                            parse_bands)

CRS = 'EPSG:32633'
TRANSFORM = from_origin(500000.0, 4000000.0, 0.5, 0.5)


def _tif(path, data, nodata=None, dtype=None):
    data = np.asarray(data)
    with rasterio.open(path, 'w', driver='GTiff', width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=dtype or data.dtype, crs=CRS, transform=TRANSFORM,
                       nodata=nodata) as dst:
        dst.write(data)
    return str(path)


def test_bands_are_chosen_and_checked(tmp_path):
    data = np.stack([np.full((8, 8), v, np.uint8) for v in (10, 20, 30, 40)])
    path = _tif(tmp_path / 'four.tif', data)
    with open_image(path) as src:
        assert src.bands == (1, 2, 3)
        assert src.read(0, 8)[0][:, 0, 0].tolist() == [10, 20, 30]
    with open_image(path, bands='4,2,1') as src:
        assert src.read(0, 8)[0][:, 0, 0].tolist() == [40, 20, 10]
    with open_image(path, bands='2') as src:       # one band -> grey
        assert src.read(0, 8)[0][:, 0, 0].tolist() == [20, 20, 20]
    with pytest.raises(InputError, match=r'four.tif: band 5 is out of range.*1\.\.4.*--bands'):
        open_image(path, bands='5,2,1')
    for bad in ('a,b,c', '1,2'):
        with pytest.raises(InputError, match='--bands'):
            parse_bands(bad)
    two = _tif(tmp_path / 'two.tif', data[:2])
    with pytest.raises(InputError, match='two.tif: 2 bands.*--bands'):
        open_image(two)


def test_16bit_percentile_stretch_is_one_mapping_for_the_whole_scene(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(1000, 5001, size=(3, 64, 48)).astype(np.uint16)
    data[:, :32] //= 2                          # top half darker: per-strip stats would differ
    path = _tif(tmp_path / 'u16.tif', data)
    with open_image(path) as src:               # auto -> percentile 2..98 for non-uint8
        assert src.stretch == 'percentile'
        whole, _ = src.read(0, 64)
        top, _ = src.read(0, 32)
        bottom, _ = src.read(32, 32)
    np.testing.assert_array_equal(np.concatenate([top, bottom], 1), whole)
    lo, hi = np.percentile(data[0], (2, 98))
    expect = np.clip((data[0].astype(np.float32) - lo) * (255 / (hi - lo)), 0, 255)
    np.testing.assert_allclose(whole[0], expect, atol=1e-3)
    assert whole.min() == 0 and whole.max() == 255
    with open_image(path, stretch='minmax') as src:
        mm, _ = src.read(0, 64)
    assert mm[0].min() == 0 and mm[0].max() == 255
    with open_image(path, stretch='none') as src:   # no stretch: clipped to 0..255
        assert src.read(0, 64)[0].min() == 255


def test_nodata_is_where_every_chosen_band_is_nodata(tmp_path):
    data = np.full((3, 6, 6), 100, np.uint8)
    data[:, 0, 0] = 0            # all bands nodata
    data[0, 1, 1] = 0            # only one band: a real (dark red-less) pixel
    path = _tif(tmp_path / 'nd.tif', data, nodata=0)
    with open_image(path) as src:
        rgb, valid = src.read(0, 6)
    assert not valid[0, 0] and valid[1, 1] and valid.sum() == 35
    assert (rgb[:, 0, 0] == 0).all()
    with open_image(path, nodata=100) as src:        # the user's value wins over the file's
        _, valid = src.read(0, 6)
    assert valid.sum() == 2
    f = np.full((1, 4, 4), 0.5, np.float32)
    f[0, 2, 2] = np.nan
    with open_image(_tif(tmp_path / 'f.tif', f)) as src:
        rgb, valid = src.read(0, 4)
    assert valid.sum() == 15 and not valid[2, 2] and np.isfinite(rgb).all()


def test_png_alpha_is_nodata_and_jpeg_reads(tmp_path):
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = 255
    rgba[2, 3, 3] = 0
    Image.fromarray(rgba).save(tmp_path / 'a.png')
    with open_image(str(tmp_path / 'a.png')) as src:
        rgb, valid = src.read(0, 5)
    assert rgb.shape == (3, 5, 7) and valid.sum() == 34 and not valid[2, 3]
    Image.fromarray(rgba[..., :3]).save(tmp_path / 'b.jpg')
    with open_image(str(tmp_path / 'b.jpg')) as src:
        assert src.read(0, 5)[1].all() and not src.georeferenced


def test_not_an_image_is_named(tmp_path):
    for name in ('notes.tif', 'notes.png', 'notes.dat'):
        (tmp_path / name).write_text('not pixels')
        with pytest.raises(InputError, match=f'{name}: not an image or raster'):
            open_image(str(tmp_path / name))
    with pytest.raises(InputError, match='no such file'):
        open_image(str(tmp_path / 'missing.tif'))


def test_list_images_files_folders_globs(tmp_path):
    for n in ('b.tif', 'a.png', 'c.txt'):
        (tmp_path / n).write_bytes(b'x')
    assert [os.path.basename(p) for p in list_images([str(tmp_path)])] == ['a.png', 'b.tif']
    assert [os.path.basename(p) for p in list_images([str(tmp_path / '*.tif')])] == ['b.tif']
    with pytest.raises(InputError, match='matches no file'):
        list_images([str(tmp_path / '*.jp2')])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='holds no'):
        list_images([str(tmp_path / 'empty')])


def test_geotiff_writer_is_atomic_and_carries_metadata(tmp_path):
    names, colours = ['ship', 'water'], [(255, 0, 0), (0, 0, 255)]
    w = ClassMapWriter(str(tmp_path), 'scene', 300, 260, names, colours, geotiff=True,
                       profile=dict(crs=rasterio.crs.CRS.from_string(CRS), transform=TRANSFORM),
                       confidence=True)
    labels = np.zeros((300, 260), np.uint8)
    labels[:, 130:] = 1
    labels[0, 0] = 255
    w.write(0, labels[:150], np.full((150, 260), 0.75))
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in w._tmp.values())
    assert not os.path.exists(w.paths['classes'])          # nothing final before commit
    w.write(150, labels[150:], np.full((150, 260), 0.25))
    paths = w.commit()
    assert sorted(os.listdir(tmp_path)) == ['scene_classes.tif', 'scene_confidence.tif']
    with rasterio.open(paths['classes']) as r:
        assert (r.width, r.height, r.count, r.dtypes[0], r.nodata) == (260, 300, 1, 'uint8', 255)
        assert r.crs.to_string() == CRS and r.transform == TRANSFORM
        np.testing.assert_array_equal(r.read(1), labels)
        assert json.loads(r.tags()['CLASS_NAMES']) == names and r.tags()['CLASS_1'] == 'water'
        assert r.colormap(1)[1] == (0, 0, 255, 255)
    with rasterio.open(paths['confidence']) as r:
        c = r.read(1)
        assert r.dtypes[0] == 'float32' and c[0, 5] == 0.75 and c[299, 0] == 0.25


def test_writer_abort_leaves_nothing_and_png_for_png(tmp_path):
    w = ClassMapWriter(str(tmp_path), 'x', 10, 10, ['a'], [(1, 2, 3)], geotiff=True,
                       profile={}, confidence=True)
    w.write(0, np.zeros((5, 10), np.uint8), np.zeros((5, 10)))
    w.abort()
    assert os.listdir(tmp_path) == []
    w = ClassMapWriter(str(tmp_path), 'x', 4, 6, ['a', 'b'], [(1, 2, 3), (4, 5, 6)], geotiff=False)
    w.write(0, np.array([[0, 1, 255, 0, 1, 1]] * 4, np.uint8))
    p = w.commit()['classes']
    with Image.open(p) as im:
        assert im.mode == 'P' and im.text['CLASS_NAMES'] == '["a", "b"]'
        assert np.asarray(im)[0].tolist() == [0, 1, 255, 0, 1, 1]
        assert im.getpalette()[3:6] == [4, 5, 6]
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~mask     # not mkstemp's private 0600


def test_unwritable_output_folder_is_named(tmp_path):
    f = tmp_path / 'a_file'
    f.write_text('')
    with pytest.raises(InputError, match=r'a_file/out: the output folder cannot be written.*--out'):
        check_writable_dir(str(f / 'out'))


def test_geotiff_rows_arriving_off_block_boundaries_are_written_once_and_right(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(700, 300)).astype(np.uint8)
    conf = rng.random((700, 300)).astype(np.float32)
    w = ClassMapWriter(str(tmp_path), 'big', 700, 300, ['a', 'b', 'c'], [(1, 1, 1)] * 3, geotiff=True,
                       profile=dict(crs=rasterio.crs.CRS.from_string(CRS), transform=TRANSFORM),
                       confidence=True)
    for r0 in (0, 233, 466):
        w.write(r0, labels[r0:r0 + 233 + (r0 == 466)], conf[r0:r0 + 233 + (r0 == 466)])
        assert all(p[0] % 256 == 0 for p in w._pending[:1])   # held from a block boundary
    paths = w.commit()
    with rasterio.open(paths['classes']) as r, rasterio.open(paths['confidence']) as c:
        np.testing.assert_array_equal(r.read(1), labels)
        np.testing.assert_array_equal(c.read(1), conf)

"""Tiled inference (aeroseg.tiling): blended tiles against one untiled pass.

The reference model is local: per-class scores are a sigmoid of a 7 x 7 convolution of the image
with zero padding, so a tile's scores equal the untiled ones except within 3 pixels of a tile
edge (where the tile lacks context, as any model does at its border). Stated tolerance: inside
the blend zones (the ``overlap`` pixels next to an edge shared by two tiles) the blended scores
are within BLEND_TOL = 0.02 of the untiled ones; everywhere else they are equal (1e-6).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aeroseg.tiling as tiling
from aeroseg.tiling import blend_strips, ramp, tile_starts

BLEND_TOL = 0.02
N_CLASSES, K = 3, 7


def _local_model(seed=0):
    g = torch.Generator().manual_seed(seed)
    kernels = torch.randn(N_CLASSES, 3, K, K, generator=g) / (K * K * 3) ** 0.5 / 40.0

    def predict(batch):
        x = torch.from_numpy(np.ascontiguousarray(batch)) - 127.5
        return torch.sigmoid(F.conv2d(x, kernels, padding=K // 2)).numpy()
    return predict


def _scene(h, w, seed=1):
    """A smooth random RGB scene 0..255 (regions a few tens of pixels across)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 16 + 2, w // 16 + 2, generator=g)
    return (F.interpolate(low, size=(h, w), mode='bicubic', align_corners=False)[0]
            .clamp(0, 1) * 255).numpy().astype(np.float32)


def _tiled(img, tile, overlap, predict, batch_size=2):
    h, w = img.shape[1:]
    read = lambda r0, n: (img[:, r0:r0 + n], np.ones((n, w), bool))  # noqa: E731
    rows, out = [], []
    for r0, scores, valid in blend_strips(h, w, N_CLASSES, tile, overlap, read, predict, batch_size):
        rows.append((r0, scores.shape[1]))
        out.append(scores)
    return np.concatenate(out, axis=1), rows


def _zone(length, tile, overlap):
    """Positions along one axis inside a blend zone (next to an edge shared by two tiles)."""
    starts, t = tile_starts(length, tile, overlap), min(tile, length)
    z = np.zeros(length, bool)
    for i, s in enumerate(starts):
        if i > 0:
            z[s:s + overlap] = True
        if i < len(starts) - 1:
            z[s + t - overlap:s + t] = True
    return z


@pytest.mark.parametrize('shape', [(200, 300), (130, 96)])
def test_tiled_equals_untiled_outside_blend_zones_and_close_inside(shape):
    h, w = shape
    img, predict = _scene(h, w), _local_model()
    whole = predict(img[None])[0]
    tiled, rows = _tiled(img, 96, 32, predict)
    assert [r0 for r0, _ in rows] == tile_starts(h, 96, 32) and sum(n for _, n in rows) == h
    zone = _zone(h, 96, 32)[:, None] | _zone(w, 96, 32)[None, :]
    assert zone.any() and (~zone).any()
    np.testing.assert_allclose(tiled[:, ~zone], whole[:, ~zone], atol=1e-6)
    err = np.abs(tiled - whole)[:, zone].max()
    assert err <= BLEND_TOL, err
    # the class map follows the untiled one, not the tile grid
    agree = (tiled.argmax(0) == whole.argmax(0))[zone].mean()
    assert agree > 0.995, agree


def test_equal_weights_would_put_the_tile_border_in_the_result(monkeypatch):
    """Control: with flat weights (plain averaging) the same comparison fails the tolerance."""
    img, predict = _scene(200, 300), _local_model()
    whole = predict(img[None])[0]
    monkeypatch.setattr(tiling, 'ramp', lambda n, o, s, e: np.ones(n, np.float32))
    tiled, _ = _tiled(img, 96, 32, predict)
    assert np.abs(tiled - whole).max() > BLEND_TOL


def test_scene_smaller_than_a_tile_is_one_pass():
    img, predict = _scene(70, 90), _local_model()
    tiled, rows = _tiled(img, 128, 32, predict)
    assert rows == [(0, 70)]
    np.testing.assert_array_equal(tiled, predict(img[None])[0])


def test_ramps_of_neighbours_add_up_to_one():
    r = ramp(64, 16, start=True, end=True)
    assert r[16:48].min() == 1.0 and 0 < r[0] < 0.01
    np.testing.assert_allclose(r[:16] + r[-16:], 1.0, atol=1e-6)  # next tile's rise + this fall
    assert (ramp(64, 16, start=False, end=False) == 1).all()      # scene borders keep weight 1


def test_nodata_tiles_are_skipped():
    img, predict = _scene(96, 192), _local_model()
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return predict(batch)
    valid = np.ones((96, 192), bool)
    valid[:, :96] = False                      # the left tile holds no data
    read = lambda r0, n: (img[:, r0:r0 + n], valid[r0:r0 + n])  # noqa: E731
    out = list(blend_strips(96, 192, N_CLASSES, 96, 0, read, counting, batch_size=4))
    assert calls == [1] and out[0][2][:, :96].sum() == 0


def test_bad_tile_settings_are_refused():
    read = lambda r0, n: (np.zeros((3, n, 64), np.float32), np.ones((n, 64), bool))  # noqa: E731
    with pytest.raises(ValueError, match='--overlap'):
        next(blend_strips(64, 64, 1, 64, 40, read, lambda b: b[:, :1]))
    with pytest.raises(ValueError, match='--tile'):
        next(blend_strips(64, 64, 1, 8, 0, read, lambda b: b[:, :1]))

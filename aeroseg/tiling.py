"""Scenes larger than one model pass: overlapping tiles, blended with a smooth weight, strip by strip.

Tiles of ``tile`` x ``tile`` pixels start every ``tile - overlap`` pixels along each axis, the last
one flush with the border (:func:`aeroseg.models.base_segmentor.window_starts`, the rule the
model's own sliding window uses); a scene side shorter than ``tile`` is one tile of that length.
Each tile's class scores are weighted by a separable ramp that rises as ``sin^2`` over the
``overlap`` pixels next to an edge shared with another tile (1 elsewhere, also along the scene
border) and the weighted scores are summed and divided by the summed weights. Where two tiles
overlap by exactly ``overlap`` their ramps add up to 1, so the result moves smoothly from one
tile's prediction to the next one's: a class boundary does not jump at the tile grid, as it does
when tiles are cut edge to edge or averaged with equal weights (the tile border, where a model
sees the least context, then counts as much as the other tile's interior).

Memory stays bounded by the scene's width: the blender holds one strip of ``tile`` rows (the
scores of every class, the weights, the input of that strip) and hands back finished rows as soon
as no later tile touches them (:func:`blend_strips`).
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from .models.base_segmentor import window_starts

__all__ = ['tile_starts', 'ramp', 'blend_weight', 'count_tiles', 'blend_strips', 'check_tiling']


def check_tiling(tile: int, overlap: int) -> None:
    """``tile`` >= 16 and 0 <= ``overlap`` <= tile // 2 (so a tile's two ramps never meet)."""
    if tile < 16:
        raise ValueError(f'--tile {tile}: use at least 16 pixels (e.g. --tile 512)')
    if not 0 <= overlap <= tile // 2:
        raise ValueError(f'--overlap {overlap}: use 0..{tile // 2} (at most half of --tile {tile})')


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Tile offsets along one axis (a side shorter than ``tile`` gives the single offset 0)."""
    t = min(tile, length)
    return window_starts(length, t, max(t - overlap, 1))


def ramp(n: int, overlap: int, start: bool, end: bool) -> np.ndarray:
    """1-D weight of length ``n``: ``sin^2`` rise over ``overlap`` pixels at the ends flagged, else 1."""
    w = np.ones(n, np.float32)
    if overlap > 0:
        r = np.sin(np.pi * (np.arange(overlap) + 0.5) / (2 * overlap)).astype(np.float32) ** 2
        if start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if end:
            w[n - overlap:] = np.minimum(w[n - overlap:], r[::-1])
    return w


def blend_weight(h: int, w: int, overlap: int, top: bool, bottom: bool, left: bool,
                 right: bool) -> np.ndarray:
    """(h, w) tile weight: the outer product of the row and column ramps."""
    return ramp(h, overlap, top, bottom)[:, None] * ramp(w, overlap, left, right)[None, :]


def count_tiles(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


ReadFn = Callable[[int, int], Tuple[np.ndarray, np.ndarray]]
PredictFn = Callable[[np.ndarray], np.ndarray]


def blend_strips(height: int, width: int, num_classes: int, tile: int, overlap: int,
                 read: ReadFn, predict: PredictFn, batch_size: int = 1,
                 progress: Optional[Callable[[int], None]] = None
                 ) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """Blended scores of a scene, top to bottom (module docstring).

    ``read(row0, rows) -> (rgb (3, rows, W) float32, valid (rows, W) bool)`` gives the input;
    ``predict(batch (B, 3, th, tw) float32) -> (B, N, th, tw)`` scores a batch of tiles.
    Yields ``(row0, scores (N, rows, W) float32, valid (rows, W))`` for consecutive row bands that
    together cover the scene once. Tiles without a valid pixel are skipped (their pixels are
    nodata); ``progress(k)`` is called after each batch with the number of tiles it held.
    """
    check_tiling(tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    col_w = [ramp(tw, overlap, j > 0, j < len(xs) - 1) for j in range(len(xs))]
    acc = np.zeros((num_classes, th, width), np.float32)
    wsum = np.zeros((th, width), np.float32)
    for i, y in enumerate(ys):
        rgb, valid = read(y, th)
        row_w = ramp(th, overlap, i > 0, i < len(ys) - 1)
        todo = [j for j, x in enumerate(xs) if valid[:, x:x + tw].any()]
        if progress is not None and len(todo) < len(xs):
            progress(len(xs) - len(todo))
        for b in range(0, len(todo), batch_size):
            js = todo[b:b + batch_size]
            batch = np.stack([rgb[:, :, xs[j]:xs[j] + tw] for j in js])
            scores = np.asarray(predict(batch), np.float32)
            if scores.shape != (len(js), num_classes, th, tw):
                raise RuntimeError(f'predict returned {scores.shape}, expected '
                                   f'{(len(js), num_classes, th, tw)}')
            for s, j in zip(scores, js):
                wt = row_w[:, None] * col_w[j][None, :]
                acc[:, :, xs[j]:xs[j] + tw] += s * wt
                wsum[:, xs[j]:xs[j] + tw] += wt
            if progress is not None:
                progress(len(js))
        end = ys[i + 1] if i + 1 < len(ys) else height
        n = end - y
        yield y, acc[:, :n] / np.maximum(wsum[:n], 1e-12), valid[:n]
        # keep the rows later tiles still touch at the top of the buffers
        acc[:, :th - n], wsum[:th - n] = acc[:, n:].copy(), wsum[n:].copy()
        acc[:, th - n:], wsum[th - n:] = 0.0, 0.0

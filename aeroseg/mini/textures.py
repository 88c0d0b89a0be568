"""Stuff textures: the look of each stuff concept (colour, grain, pattern), and rendering a
canvas's stuff layout into its image.

A texture is a full-image array; :func:`render_stuff` keeps each concept's pixels of it.
"""
from __future__ import annotations

import math

import numpy as np

from .canvas import Canvas, rgb
from .concepts import CONCEPTS


def render_stuff(cv: Canvas):
    """Fill ``cv.img`` with the texture of each concept laid out in ``cv.cmap``."""
    cv.img = np.zeros((cv.H, cv.W, 3), np.float32)
    for cid in np.unique(cv.cmap):
        if cid < 0:
            continue
        key = CONCEPTS[cid].key
        tex = stuff_texture(key, cv)
        m = cv.cmap == cid
        cv.img[m] = tex[m]


def stuff_texture(key: str, cv: Canvas) -> np.ndarray:
    rng, H, W = cv.rng, cv.H, cv.W
    jit = rng.uniform(0.94, 1.06)

    def base(c):
        return np.broadcast_to(rgb(*c) * jit, (H, W, 3)).copy()

    def add(t, field, amp, tint=(1, 1, 1)):
        t += (amp * field)[..., None] * rgb(*tint)
        return t

    fine = lambda: rng.standard_normal((H, W), dtype=np.float32)
    if key == 'water':  # dark, smooth
        t = add(base((0.09, 0.21, 0.33)), cv.smooth(1, 4)[0], 0.025)
        return add(t, fine(), 0.006)
    if key == 'sea':  # brighter blue with wave crests
        ang = rng.uniform(0, math.pi)
        a, _ = cv.rotated(ang, 0, 0)
        waves = np.sin(2 * math.pi * a / (7 * cv.s) + 1.5 * cv.smooth(1, 3)[0])
        t = add(base((0.13, 0.37, 0.62)), waves, 0.05, (0.6, 0.9, 1.0))
        return add(t, cv.smooth(1, 5)[0], 0.03)
    if key == 'sand':  # beige speckle
        t = add(base((0.86, 0.79, 0.60)), fine(), 0.045)
        return add(t, cv.smooth(1, 4)[0], 0.03)
    if key == 'bare soil':  # brown, blotchy
        t = add(base((0.56, 0.42, 0.30)), cv.smooth(1, 12)[0], 0.06)
        return add(t, fine(), 0.03)
    if key == 'grass':  # bright green, fine
        t = add(base((0.42, 0.66, 0.28)), fine(), 0.025)
        return add(t, cv.smooth(1, 6)[0], 0.03)
    if key == 'field':  # parcels of crop rows, each parcel its own direction and tint
        pts = rng.uniform(0, H, (5, 2)).astype(np.float32)
        d = (cv.Y[None] - pts[:, 0, None, None]) ** 2 + (cv.X[None] - pts[:, 1, None, None]) ** 2
        parcel = np.argmin(d, 0)
        angs = rng.uniform(0, math.pi, 5).astype(np.float32)[parcel]
        per = (rng.uniform(6, 9, 5) * cv.s).astype(np.float32)[parcel]
        rows = np.sin(2 * math.pi * (cv.X * np.cos(angs) + cv.Y * np.sin(angs)) / per)
        tint = rng.uniform(-0.06, 0.06, (5, 1)).astype(np.float32)[parcel]
        t = base((0.60, 0.66, 0.30)) + tint * rgb(1, 0.6, 0.2)
        t = add(t, rows, 0.07, (1.0, 0.8, 0.6))
        return add(t, fine(), 0.015)
    if key == 'chaparral':  # tan ground with dark shrub dots
        t = add(base((0.63, 0.59, 0.43)), fine(), 0.03)
        dots = cv.smooth(1, 36)[0] > 0.75
        t[dots] = rgb(0.30, 0.36, 0.21) * jit
        return t
    if key == 'tree':  # dark green canopy clumps
        t = add(base((0.13, 0.34, 0.15)), cv.smooth(1, 22)[0], 0.07, (0.7, 1.0, 0.6))
        return add(t, fine(), 0.02)
    if key == 'rangeland':  # pale olive-yellow, mottled
        t = add(base((0.68, 0.67, 0.44)), cv.smooth(1, 9)[0], 0.05)
        return add(t, fine(), 0.03)
    if key == 'pavement':  # mid grey concrete slabs
        per = 10 * cv.s
        joints = ((cv.X % per) < 1) | ((cv.Y % per) < 1)
        t = add(base((0.57, 0.57, 0.56)), fine(), 0.015)
        t[joints] *= 0.88
        return t
    if key == 'developed space':  # warm light grey, blocky yards
        b = max(1, int(4 * cv.s))
        blocks = rng.standard_normal((H // b + 1, W // b + 1)).astype(np.float32)
        blocks = np.repeat(np.repeat(blocks, b, 0), b, 1)[:H, :W]
        t = add(base((0.75, 0.71, 0.65)), blocks, 0.045)
        return add(t, fine(), 0.015)
    raise KeyError(f'mini world: no stuff texture for {key!r}')

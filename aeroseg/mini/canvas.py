"""Canvas: one scene's concept map and image, and the drawing primitives painters use.

Stuff (water, fields, trees, ...) is first laid out as a concept map (``layout``, ``shore``,
``river``, ``pond``, ``band``) and rendered by :func:`aeroseg.mini.textures.render_stuff`; things
are then painted on top in local rotated frames (``frame`` + ``put``), each writing its concept
into the map too. Vectorised numpy; every random draw comes from the canvas's ``rng``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .concepts import CID

DEFAULT_IMG_SIZE = 128  # 8-px patches keep vehicles visible from 96 px up (docs/design.md §4).


@lru_cache(maxsize=None)
def interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation weights (align-corners) for separable upsampling."""
    pos = np.linspace(0, n_in - 1, n_out)
    i0 = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    f = pos - i0
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), i0] = 1 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


def rgb(*c) -> np.ndarray:
    return np.asarray(c, np.float32)


class Canvas:
    """Concept map (pre-render stuff layout) + image (painted things) of one scene."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.H, self.W = rng, size, size
        self.s = size / 128.0  # size regimes are written for 128 px
        self.Y, self.X = np.mgrid[0:size, 0:size].astype(np.float32)
        self.cmap = np.full((size, size), -1, np.int16)
        self.img: Optional[np.ndarray] = None
        self.ignore = np.zeros((size, size), bool)  # OEM 'unknown'

    # --- noise -----------------------------------------------------------------------------
    def smooth(self, n: int, cells: int) -> np.ndarray:
        g = self.rng.standard_normal((n, cells + 1, cells + 1)).astype(np.float32)
        a = interp_matrix(self.H, cells + 1)
        b = interp_matrix(self.W, cells + 1)
        return a @ g @ b.T

    def rotated(self, ang: float, cy: float, cx: float):
        c, s = math.cos(ang), math.sin(ang)
        dy, dx = self.Y - cy, self.X - cx
        return dx * c + dy * s, -dx * s + dy * c  # along, across

    # --- stuff layout ----------------------------------------------------------------------
    def layout(self, keys: Sequence[str], weights: Sequence[float], cells: int = 3,
               where: Optional[np.ndarray] = None):
        f = self.smooth(len(keys), cells) + 1.2 * np.log(np.asarray(weights, np.float32))[:, None, None]
        ids = np.asarray([CID[k] for k in keys], np.int16)[np.argmax(f, 0)]
        if where is None:
            self.cmap[:] = ids
        else:
            self.cmap[where] = ids[where]

    def shore(self, key: str, wavy: float = 6.0, frac: Tuple[float, float] = (0.3, 0.55)):
        """Water on one side of a (wavy) line; returns (angle, along, normal) of the straight line."""
        rng = self.rng
        ang = rng.uniform(0, 2 * math.pi)
        # offset chosen so the water covers roughly `frac` of the image
        off = (0.5 - rng.uniform(*frac)) * self.H
        a, n = self.rotated(ang, self.H / 2, self.W / 2)
        d = n - off + wavy * self.s * self.smooth(1, 3)[0]
        self.cmap[d > 0] = CID[key]
        return ang, a, n - off, off

    def point(self, ang: float, along: float, normal: float) -> Tuple[float, float]:
        """(y, x) of the point with coords (along, normal) in the frame rotated by ang about the centre."""
        c, s = math.cos(ang), math.sin(ang)
        return self.H / 2 + along * s + normal * c, self.W / 2 + along * c - normal * s

    def river(self, key: str = 'water', width: Tuple[float, float] = (14, 26)):
        rng = self.rng
        ang = rng.uniform(0, math.pi)
        a, n = self.rotated(ang, self.H / 2 + rng.uniform(-20, 20) * self.s,
                            self.W / 2 + rng.uniform(-20, 20) * self.s)
        amp, per, ph = rng.uniform(3, 12) * self.s, rng.uniform(90, 200) * self.s, rng.uniform(0, 6.3)
        centre = amp * np.sin(2 * math.pi * a / per + ph)
        w = rng.uniform(*width) * self.s / 2
        dist = np.abs(n - centre)
        self.cmap[dist < w] = CID[key]
        return ang, a, n - centre, w

    def pond(self, key: str, thr: float = 1.1, cells: int = 4):
        m = self.smooth(1, cells)[0] > thr
        self.cmap[m] = CID[key]

    def band(self, key: str, ang: float, width: float, cy: float, cx: float):
        a, n = self.rotated(ang, cy, cx)
        m = np.abs(n) < width / 2
        self.cmap[m] = CID[key]
        return m

    def mask_of(self, *keys: str) -> np.ndarray:
        return np.isin(self.cmap, [CID[k] for k in keys])

    def sample(self, mask: np.ndarray, k: int, margin: float = 0) -> List[Tuple[float, float]]:
        if margin > 0:
            mg = int(margin)
            mask = mask.copy()
            mask[:mg], mask[-mg:], mask[:, :mg], mask[:, -mg:] = False, False, False, False
        idx = np.flatnonzero(mask)
        if idx.size == 0 or k <= 0:
            return []
        pick = self.rng.choice(idx, size=k, replace=idx.size < k)
        jit = self.rng.uniform(0, 1, (k, 2))
        return [(float(p // self.W) + j[0], float(p % self.W) + j[1]) for p, j in zip(pick, jit)]

    # --- painting --------------------------------------------------------------------------
    def frame(self, cy: float, cx: float, r: float, ang: float):
        """Window around (cy, cx) of radius r and its local coords (u along ang, v across)."""
        y0, y1 = max(0, int(cy - r)), min(self.H, int(cy + r) + 2)
        x0, x1 = max(0, int(cx - r)), min(self.W, int(cx + r) + 2)
        if y0 >= y1 or x0 >= x1:
            return None
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        c, s = math.cos(ang), math.sin(ang)
        return (slice(y0, y1), slice(x0, x1)), dx * c + dy * s, -dx * s + dy * c

    def put(self, win, mask: np.ndarray, color, key: Optional[str] = None):
        sub = self.img[win]
        if np.ndim(color) == 1:
            sub[mask] = color
        else:
            sub[mask] = color[mask]
        if key is not None:
            self.cmap[win][mask] = CID[key]

    def shade(self, win, mask: np.ndarray, factor: float):
        self.img[win][mask] *= factor

    def finish(self) -> np.ndarray:
        rng = self.rng
        gain = rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
        img = self.img * gain + rng.normal(0, 0.012, self.img.shape).astype(np.float32)
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

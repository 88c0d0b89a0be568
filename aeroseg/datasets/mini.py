"""Mini world: seeded synthetic iSAID, DLRSD and OpenEarthMap in the processed on-disk format.

Why: the suite must train and evaluate every method on a CPU in minutes and still say whether
open-vocabulary transfer works. The mini datasets keep each real dataset's class names, ids and
seen/unseen split (read from :mod:`aeroseg.datasets.splits`), its processed layout and file
formats, and give every class its own learnable appearance. The tiny CLIP in
``aeroseg/assets/mini`` was pretrained on captioned scenes of the same world (a separate seed
stream, see ``tools/train_tiny_clip.py``), so unseen classes are known to it by name the way web
pretraining makes real CLIP know them.

World. One set of *concepts* shared by the three datasets; a concept fixes an appearance (colour,
texture, shape, size regime) and the names it goes by. Classes that are the same thing in two
datasets share a concept (iSAID ``plane`` = DLRSD ``airplane``; ``small vehicle`` = ``cars``;
``storage tank`` = ``tanks``; ``buildings`` = ``building``; ``trees`` = ``tree``; DLRSD ``water``
= OEM ``water``; ``bare soil`` = ``bareland``; ``field`` = ``agriculture land``). Size regimes:
vehicles 3-16 px, planes / helicopters / ships 10-25 px, courts and fields 20-50 px; stuff
(water, fields, trees, soil, ...) covers large smooth regions. Scenes follow a small set of scene
types per dataset with plausible co-occurrence (ships with harbors and water, planes on aprons,
cars on roads and parking lots, bridges over rivers, ...); the scene type cycles with the image
index so every class occurs in both splits.

Format (processed layout, CONTRACTS.md)::

    <root>/img_dir/{train,val}/<stem><img_suffix>    RGB, 128 x 128 by default
    <root>/ann_dir/{train,val}/<stem>.png            uint8 ids 0..K-1, 255 = ignore
    <root>/mini_stamp.json                           generator hash + parameters

* iSAID: ``.png`` images; everything that is not one of the 15 classes (land, water, roads,
  buildings) is 255, as in the processed iSAID where background becomes 255.
* DLRSD: ``.jpg`` images (JPEG quality 75, like the converted UC Merced images OVRS reads);
  every pixel is one of the 17 classes (the raw masks have no unlabelled value).
* OEM: ``.png`` images; OEM's ``unknown`` (official 0) is 255: ~30% of images carry unlabelled
  blobs whose pixels still show land cover, as in the real release.

The tiny CLIP and tiny SAM in ``aeroseg/assets/mini`` were pretrained on scenes of this generator
at ``GENERATOR_VERSION``: a change to how scenes look must bump it and retrain both
(``tools/train_tiny_clip.py``, ``tools/make_tiny_sam.py``); the zero-shot test guards the pairing.

Determinism: image ``i`` of split ``s`` draws from ``np.random.default_rng([seed, dataset, s, i])``,
so a dataset is byte-for-byte reproducible for a seed (same numpy / Pillow / zlib / libjpeg) and
independent of generation order. ``ensure_mini`` regenerates when the stamp (a hash of this file's
source, the class lists and the parameters) changes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL
from PIL import Image

from .splits import get_split

__all__ = ['ensure_mini', 'generate_mini', 'render_scene', 'make_caption', 'concept_names',
           'CONCEPTS', 'MINI_DATASETS', 'mini_stamp', 'GENERATOR_VERSION']

GENERATOR_VERSION = 1
MINI_DATASETS = ('isaid', 'dlrsd', 'oem')
# (image suffix, label suffix) of the processed real datasets (CONTRACTS.md, "Layout").
FORMATS = {'isaid': ('.png', '.png'), 'dlrsd': ('.jpg', '.png'), 'oem': ('.png', '.png')}
JPEG_QUALITY = 75  # Pillow's default; the paper's DLRSD images are JPEG re-encodings.
_DS_CODE = {'isaid': 1, 'dlrsd': 2, 'oem': 3}
_SPLIT_CODE = {'train': 0, 'val': 1}
DEFAULT_SEED = 0
DEFAULT_SIZES = {'train': 400, 'val': 100}
DEFAULT_IMG_SIZE = 128  # 8-px patches keep vehicles visible from 96 px up (DESIGN.md §4).


# ----------------------------------------------------------------------------------------------
# Concepts: the world's things and stuff, and the names captions use for them.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Concept:
    key: str
    kind: str  # 'thing' (painted object) or 'stuff' (region texture)


_THINGS = ('ship', 'storage tank', 'baseball diamond', 'tennis court', 'basketball court',
           'ground track field', 'bridge', 'large vehicle', 'small vehicle', 'helicopter',
           'swimming pool', 'roundabout', 'soccer ball field', 'plane', 'harbor', 'court',
           'dock', 'mobile home', 'building', 'road')
_STUFFS = ('water', 'sea', 'sand', 'bare soil', 'grass', 'field', 'chaparral', 'tree',
           'rangeland', 'pavement', 'developed space')
CONCEPTS: Tuple[Concept, ...] = tuple([Concept(k, 'thing') for k in _THINGS] +
                                      [Concept(k, 'stuff') for k in _STUFFS])
_CID = {c.key: i for i, c in enumerate(CONCEPTS)}

# dataset class name -> concept key (identity unless listed).
_CLASS_TO_CONCEPT = {
    'dlrsd': {'airplane': 'plane', 'buildings': 'building', 'cars': 'small vehicle',
              'tanks': 'storage tank', 'trees': 'tree'},
    'oem': {'bareland': 'bare soil', 'agriculture land': 'field'},
}
# Extra caption names beyond the dataset class names and splits.py synonyms (cross-dataset
# targets' wording; chosen here, the paper is silent on pretraining vocabulary).
_EXTRA_NAMES = {'tree': ('forest',), 'bare soil': ('barren',), 'field': ('farmland',),
                'small vehicle': ('vehicle',), 'ship': ('boat',)}


def concept_of(dataset: str, class_name: str) -> str:
    return _CLASS_TO_CONCEPT.get(dataset, {}).get(class_name, class_name)


@lru_cache(maxsize=None)
def concept_names() -> Dict[str, Tuple[str, ...]]:
    """Every name a concept goes by: class names of all three datasets + splits.py synonyms."""
    names: Dict[str, List[str]] = {c.key: [c.key] for c in CONCEPTS}
    for ds in MINI_DATASETS:
        sp = get_split(ds)
        for i, cls in enumerate(sp.classes):
            key = concept_of(ds, cls)
            if key not in names:
                raise KeyError(f'mini world: class {cls!r} of {ds} maps to unknown concept {key!r}')
            for n in (cls,) + tuple(sp.synonyms.get(i, ())):
                if n not in names[key]:
                    names[key].append(n)
    for key, extra in _EXTRA_NAMES.items():
        names[key].extend(n for n in extra if n not in names[key])
    return {k: tuple(v) for k, v in names.items()}


@lru_cache(maxsize=None)
def _label_lut(dataset: str) -> np.ndarray:
    """concept id -> dataset id; 255 for concepts the dataset does not name (iSAID background),
    -1 for concepts that must never occur in that dataset's scenes (a generator bug)."""
    sp = get_split(dataset)
    fill = 255 if dataset == 'isaid' else -1
    lut = np.full(len(CONCEPTS) + 1, fill, np.int16)  # last slot: unpainted (-1 in cmap)
    for i, cls in enumerate(sp.classes):
        lut[_CID[concept_of(dataset, cls)]] = i
    lut[-1] = -1
    return lut


# ----------------------------------------------------------------------------------------------
# Canvas and numeric helpers (vectorised numpy).
# ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation weights (align-corners) for separable upsampling."""
    pos = np.linspace(0, n_in - 1, n_out)
    i0 = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    f = pos - i0
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), i0] = 1 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


def _rgb(*c) -> np.ndarray:
    return np.asarray(c, np.float32)


class _Canvas:
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
        a = _interp_matrix(self.H, cells + 1)
        b = _interp_matrix(self.W, cells + 1)
        return a @ g @ b.T

    def rotated(self, ang: float, cy: float, cx: float):
        c, s = math.cos(ang), math.sin(ang)
        dy, dx = self.Y - cy, self.X - cx
        return dx * c + dy * s, -dx * s + dy * c  # along, across

    # --- stuff layout ----------------------------------------------------------------------
    def layout(self, keys: Sequence[str], weights: Sequence[float], cells: int = 3,
               where: Optional[np.ndarray] = None):
        f = self.smooth(len(keys), cells) + 1.2 * np.log(np.asarray(weights, np.float32))[:, None, None]
        ids = np.asarray([_CID[k] for k in keys], np.int16)[np.argmax(f, 0)]
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
        self.cmap[d > 0] = _CID[key]
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
        self.cmap[dist < w] = _CID[key]
        return ang, a, n - centre, w

    def pond(self, key: str, thr: float = 1.1, cells: int = 4):
        m = self.smooth(1, cells)[0] > thr
        self.cmap[m] = _CID[key]

    def band(self, key: str, ang: float, width: float, cy: float, cx: float):
        a, n = self.rotated(ang, cy, cx)
        m = np.abs(n) < width / 2
        self.cmap[m] = _CID[key]
        return m

    def mask_of(self, *keys: str) -> np.ndarray:
        return np.isin(self.cmap, [_CID[k] for k in keys])

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

    # --- rendering -------------------------------------------------------------------------
    def render_stuff(self):
        self.img = np.zeros((self.H, self.W, 3), np.float32)
        for cid in np.unique(self.cmap):
            if cid < 0:
                continue
            key = CONCEPTS[cid].key
            tex = _stuff_texture(key, self)
            m = self.cmap == cid
            self.img[m] = tex[m]

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
            self.cmap[win][mask] = _CID[key]

    def shade(self, win, mask: np.ndarray, factor: float):
        self.img[win][mask] *= factor

    def finish(self) -> np.ndarray:
        rng = self.rng
        gain = rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
        img = self.img * gain + rng.normal(0, 0.012, self.img.shape).astype(np.float32)
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Stuff textures (full-image arrays; the caller keeps the concept's pixels).
# ----------------------------------------------------------------------------------------------
def _stuff_texture(key: str, cv: _Canvas) -> np.ndarray:
    rng, H, W = cv.rng, cv.H, cv.W
    jit = rng.uniform(0.94, 1.06)

    def base(c):
        return np.broadcast_to(_rgb(*c) * jit, (H, W, 3)).copy()

    def add(t, field, amp, tint=(1, 1, 1)):
        t += (amp * field)[..., None] * _rgb(*tint)
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
        t = base((0.60, 0.66, 0.30)) + tint * _rgb(1, 0.6, 0.2)
        t = add(t, rows, 0.07, (1.0, 0.8, 0.6))
        return add(t, fine(), 0.015)
    if key == 'chaparral':  # tan ground with dark shrub dots
        t = add(base((0.63, 0.59, 0.43)), fine(), 0.03)
        dots = cv.smooth(1, 36)[0] > 0.75
        t[dots] = _rgb(0.30, 0.36, 0.21) * jit
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


# ----------------------------------------------------------------------------------------------
# Thing painters (local frame: u along the object's axis, v across).
# ----------------------------------------------------------------------------------------------
_CAR_COLOURS = (_rgb(0.93, 0.93, 0.93), _rgb(0.75, 0.14, 0.13), _rgb(0.12, 0.12, 0.14),
                _rgb(0.70, 0.72, 0.76), _rgb(0.20, 0.30, 0.68))


def _small_vehicle(cv, cy, cx, ang, key='small vehicle'):
    L, Wd = 3.2 * cv.s, 1.6 * cv.s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    body = (np.abs(u) < L) & (np.abs(v) < Wd)
    cv.put(win, body, _CAR_COLOURS[cv.rng.integers(len(_CAR_COLOURS))], key)
    cv.put(win, body & (u > 0.3 * L) & (u < 0.75 * L), _rgb(0.2, 0.22, 0.26))


def _large_vehicle(cv, cy, cx, ang):
    L, Wd = cv.rng.uniform(6, 9) * cv.s, cv.rng.uniform(2.0, 2.6) * cv.s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    body = (np.abs(u) < L) & (np.abs(v) < Wd)
    sh = cv.frame(cy + 1.5 * cv.s, cx + 1.5 * cv.s, L + 1, ang)
    if sh is not None:
        cv.shade(sh[0], (np.abs(sh[1]) < L) & (np.abs(sh[2]) < Wd), 0.7)
    cv.put(win, body, _rgb(0.86, 0.84, 0.74) * cv.rng.uniform(0.9, 1.05), 'large vehicle')
    cv.put(win, body & (u > L - 2.2 * cv.s), _rgb(0.45, 0.47, 0.55))
    cv.put(win, body & (np.abs(u - (L - 2.2 * cv.s)) < 0.5), _rgb(0.25, 0.25, 0.25))


def _plane(cv, cy, cx, ang, key='plane'):
    L = cv.rng.uniform(8, 12) * cv.s
    f = cv.frame(cy, cx, L * 1.05 + 1, ang)
    if f is None:
        return
    win, u, v = f
    fus = (np.abs(u) < L) & (np.abs(v) < 0.13 * L + 0.6)
    wing = (np.abs(v) < 0.95 * L) & (u > 0.05 * L - 0.25 * np.abs(v)) & (u < 0.3 * L - 0.25 * np.abs(v))
    tail = (np.abs(v) < 0.38 * L) & (u > -0.95 * L) & (u < -0.78 * L + 0.0 * v)
    m = fus | wing | tail
    cv.put(win, m, _rgb(0.91, 0.91, 0.93), key)
    cv.put(win, fus & (u > 0.8 * L), _rgb(0.35, 0.38, 0.45))  # cockpit
    cv.put(win, wing & (np.abs(np.abs(v) - 0.45 * L) < 0.7), _rgb(0.6, 0.6, 0.65))  # engines


def _helicopter(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.9, 1.2)
    f = cv.frame(cy, cx, 9 * s, ang)
    if f is None:
        return
    win, u, v = f
    body = (u / (4 * s)) ** 2 + (v / (1.9 * s)) ** 2 < 1
    boom = (u < -2 * s) & (u > -8 * s) & (np.abs(v) < 0.6 * s + 0.3)
    tailrot = (np.abs(u + 8 * s) < 0.6 * s + 0.3) & (np.abs(v) < 2 * s)
    c, sn = math.cos(math.pi / 4), math.sin(math.pi / 4)
    ru, rv = u * c + v * sn, -u * sn + v * c
    rotor = ((np.abs(ru) < 0.55 * s) | (np.abs(rv) < 0.55 * s)) & (np.maximum(np.abs(ru), np.abs(rv)) < 7.5 * s)
    cv.put(win, body | boom | tailrot, _rgb(0.24, 0.30, 0.24), 'helicopter')
    cv.put(win, rotor, _rgb(0.10, 0.10, 0.10), 'helicopter')
    cv.put(win, body & (u > 2.2 * s), _rgb(0.5, 0.6, 0.7))


def _ship(cv, cy, cx, ang, a=None, wake=True):
    rng = cv.rng
    a = (a if a is not None else rng.uniform(5, 12)) * cv.s
    b = max(1.3, a * rng.uniform(0.2, 0.28))
    f = cv.frame(cy, cx, a * 2.5 + 1, ang)
    if f is None:
        return
    win, u, v = f
    half = np.where(u < 0.35 * a, b, b * (a - u) / (0.65 * a))
    hull = (u > -a) & (u < a) & (np.abs(v) < half)
    if wake:
        wk = (u < -a) & (u > -2.4 * a) & (np.abs(v) < b * (1 + 0.6 * (-a - u) / a))
        cv.img[win][wk] = cv.img[win][wk] * 0.7 + 0.3 * _rgb(0.75, 0.85, 0.9)
    cv.put(win, hull, _rgb(0.88, 0.88, 0.86) * rng.uniform(0.9, 1.05), 'ship')
    cv.put(win, hull & (u > -0.5 * a) & (u < 0.2 * a) & (np.abs(v) < 0.55 * b), _rgb(0.45, 0.47, 0.52))


def _storage_tank(cv, cy, cx, ang=0.0, r=None):
    r = (r if r is not None else cv.rng.uniform(4, 8)) * cv.s
    f = cv.frame(cy, cx, r + 3, 0.0)
    if f is None:
        return
    win, u, v = f
    d = np.sqrt(u ** 2 + v ** 2)
    ds = np.sqrt((u - 1.5) ** 2 + (v - 1.5) ** 2)  # shadow, down-right
    cv.shade(win, (ds < r) & (d >= r), 0.55)
    cv.put(win, d < r, _rgb(0.87, 0.87, 0.84), 'storage tank')
    cv.put(win, (d < r) & (d > r - 1.3), _rgb(0.55, 0.55, 0.55))
    cv.put(win, d < 0.25 * r, _rgb(0.7, 0.7, 0.7))


def _pool(cv, cy, cx, ang):
    L, Wd = cv.rng.uniform(3.5, 7) * cv.s, cv.rng.uniform(2.2, 3.8) * cv.s
    f = cv.frame(cy, cx, L + 2, ang)
    if f is None:
        return
    win, u, v = f
    outer = (np.abs(u) < L + 1) & (np.abs(v) < Wd + 1)
    cv.put(win, outer, _rgb(0.95, 0.95, 0.93), 'swimming pool')
    cv.put(win, (np.abs(u) < L) & (np.abs(v) < Wd), _rgb(0.22, 0.78, 0.88))


def _lines_rect(u, v, L, Wd, t=0.55):
    return ((np.abs(np.abs(u) - L) < t) & (np.abs(v) <= Wd + t)) | \
           ((np.abs(np.abs(v) - Wd) < t) & (np.abs(u) <= L + t))


def _tennis_court(cv, cy, cx, ang, key='tennis court'):
    s = cv.s * cv.rng.uniform(0.9, 1.15)
    L, Wd, m = 9.5 * s, 4.5 * s, 2.2 * s
    f = cv.frame(cy, cx, L + m + 2, ang)
    if f is None:
        return
    win, u, v = f
    outer = (np.abs(u) < L + m) & (np.abs(v) < Wd + m)
    inner = (np.abs(u) < L) & (np.abs(v) < Wd)
    if key == 'tennis court':
        surround, court = _rgb(0.62, 0.33, 0.28), _rgb(0.27, 0.55, 0.38)
    else:  # DLRSD 'court': blue hard court on green surround
        surround, court = _rgb(0.30, 0.52, 0.36), _rgb(0.24, 0.40, 0.70)
    cv.put(win, outer, surround, key)
    cv.put(win, inner, court)
    white = _rgb(0.96, 0.96, 0.96)
    lines = _lines_rect(u, v, L, Wd) | ((np.abs(u) < 0.5) & (np.abs(v) < Wd + m * 0.6))
    lines |= (np.abs(np.abs(u) - 0.55 * L) < 0.45) & (np.abs(v) < Wd)
    lines |= (np.abs(v) < 0.45) & (np.abs(u) < 0.55 * L)
    cv.put(win, lines & outer, white)


def _basketball_court(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.9, 1.15)
    L, Wd = 8 * s, 4.6 * s
    f = cv.frame(cy, cx, L + 3, ang)
    if f is None:
        return
    win, u, v = f
    out = (np.abs(u) < L + 1) & (np.abs(v) < Wd + 1)
    cv.put(win, out, _rgb(0.82, 0.55, 0.34), 'basketball court')
    key = (np.abs(u) > L - 3 * s) & (np.abs(v) < 1.6 * s) & out
    cv.put(win, key, _rgb(0.66, 0.30, 0.24))
    d = np.sqrt(u ** 2 + v ** 2)
    lines = _lines_rect(u, v, L, Wd, 0.5) | (np.abs(u) < 0.45) | (np.abs(d - 2.2 * s) < 0.45)
    lines |= (np.abs(np.sqrt((np.abs(u) - L) ** 2 + v ** 2) - 4.2 * s) < 0.45)
    cv.put(win, lines & out & (np.abs(u) <= L + 0.5) & (np.abs(v) <= Wd + 0.5), _rgb(0.96, 0.96, 0.96))


def _baseball_diamond(cv, cy, cx, ang):
    R = cv.rng.uniform(14, 20) * cv.s
    f = cv.frame(cy, cx, R + 1, ang)
    if f is None:
        return
    win, u, v = f
    # (cy, cx) is home plate; the field opens along +u within +-45 degrees.
    d = np.sqrt(u ** 2 + v ** 2)
    sector = (d < R) & (u > np.abs(v) - 0.8)
    p, q = (u + v) / math.sqrt(2), (u - v) / math.sqrt(2)
    grass = _rgb(0.40, 0.64, 0.30) + (0.03 * np.sin(u / (2.5 * cv.s)))[..., None]
    cv.put(win, sector, grass, 'baseball diamond')
    cv.put(win, sector & (d < 0.6 * R) & (d > 0.42 * R), _rgb(0.74, 0.54, 0.38))  # infield arc
    inner = (p > 0.06 * R) & (q > 0.06 * R) & (p < 0.34 * R) & (q < 0.34 * R)
    square = (p > -1) & (q > -1) & (p < 0.42 * R) & (q < 0.42 * R)
    cv.put(win, sector & square, _rgb(0.74, 0.54, 0.38))
    cv.put(win, sector & inner, _rgb(0.40, 0.64, 0.30))
    cv.put(win, sector & ((np.abs(p) < 0.5) | (np.abs(q) < 0.5)), _rgb(0.95, 0.95, 0.95))


def _ground_track_field(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.9, 1.15)
    L, R = 22 * s, 12 * s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    d = np.sqrt(np.maximum(np.abs(u) - (L - R), 0) ** 2 + v ** 2)
    cv.put(win, d < R, _rgb(0.35, 0.62, 0.31) + (0.03 * np.sin(u / (2.5 * s)))[..., None],
           'ground track field')
    cv.put(win, (d < R) & (d > R - 4 * s), _rgb(0.72, 0.31, 0.25))
    cv.put(win, (np.abs(d - (R - 2 * s)) < 0.45) | (np.abs(d - (R - 4 * s)) < 0.5), _rgb(0.95, 0.93, 0.93))


def _soccer_field(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.85, 1.15)
    L, Wd = 17 * s, 11 * s
    f = cv.frame(cy, cx, L + 2, ang)
    if f is None:
        return
    win, u, v = f
    out = (np.abs(u) < L + 1) & (np.abs(v) < Wd + 1)
    mow = np.where(np.sin(2 * math.pi * u / (6 * s)) > 0, 1.0, 0.86).astype(np.float32)
    cv.put(win, out, _rgb(0.33, 0.62, 0.30) * mow[..., None], 'soccer ball field')
    d = np.sqrt(u ** 2 + v ** 2)
    lines = _lines_rect(u, v, L, Wd) | (np.abs(u) < 0.45) | (np.abs(d - 3.2 * s) < 0.45)
    box = ((np.abs(np.abs(u) - (L - 3.5 * s)) < 0.45) & (np.abs(v) < 5 * s)) | \
          ((np.abs(np.abs(v) - 5 * s) < 0.45) & (np.abs(u) > L - 3.5 * s))
    cv.put(win, (lines | box) & out & (np.abs(u) <= L + 0.5) & (np.abs(v) <= Wd + 0.5), _rgb(0.96, 0.96, 0.96))


def _road(cv, ang, cy, cx, width=None, key='road'):
    """Straight road across the image: dark asphalt with a dashed centre line."""
    w = (width or cv.rng.uniform(7, 10)) * cv.s
    a, n = cv.rotated(ang, cy, cx)
    m = np.abs(n) < w / 2
    full = (slice(0, cv.H), slice(0, cv.W))
    cv.put(full, m, _rgb(0.29, 0.29, 0.31) + cv.rng.normal(0, 0.012, (cv.H, cv.W, 1)).astype(np.float32), key)
    cv.put(full, m & (np.abs(n) < 0.5) & ((a % (8 * cv.s)) < 4 * cv.s), _rgb(0.88, 0.86, 0.70))
    return m, a, n, ang, w


def _roundabout(cv, cy, cx):
    R = cv.rng.uniform(11, 16) * cv.s
    Ri = R * cv.rng.uniform(0.45, 0.6)
    # approach roads first (background 'road'), then the disc on top
    for k in range(cv.rng.integers(2, 5)):
        ang = k * math.pi / 2 + cv.rng.uniform(-0.2, 0.2)
        a, n = cv.rotated(ang, cy, cx)
        m = (np.abs(n) < 3.5 * cv.s) & (a > 0)
        full = (slice(0, cv.H), slice(0, cv.W))
        cv.put(full, m, _rgb(0.29, 0.29, 0.31), 'road')
    f = cv.frame(cy, cx, R + 1, 0.0)
    win, u, v = f
    d = np.sqrt(u ** 2 + v ** 2)
    cv.put(win, d < R, _rgb(0.33, 0.33, 0.35), 'roundabout')
    cv.put(win, d < Ri + 0.8, _rgb(0.85, 0.85, 0.82))
    cv.put(win, d < Ri, _rgb(0.38, 0.62, 0.31) + 0.04 * cv.rng.standard_normal(d.shape + (1,)).astype(np.float32))
    cv.put(win, np.abs(d - (R + Ri) / 2) < 0.4, _rgb(0.7, 0.7, 0.6))


def _building(cv, cy, cx, ang, L=None, Wd=None):
    rng = cv.rng
    L = (L or rng.uniform(4, 9)) * cv.s
    Wd = (Wd or rng.uniform(3, 6)) * cv.s
    f = cv.frame(cy, cx, L + Wd + 3, ang)
    if f is None:
        return
    win, u, v = f
    sh = cv.frame(cy + 2 * cv.s, cx + 2 * cv.s, L + Wd + 3, ang)
    if sh is not None:
        cv.shade(sh[0], (np.abs(sh[1]) < L) & (np.abs(sh[2]) < Wd), 0.5)
    roof = (np.abs(u) < L) & (np.abs(v) < Wd)
    col = (_rgb(0.70, 0.36, 0.27), _rgb(0.60, 0.58, 0.58), _rgb(0.80, 0.78, 0.73))[rng.integers(3)]
    shade = np.where(v > 0, 1.0, 0.86).astype(np.float32)[..., None]  # two roof planes
    cv.put(win, roof, col * rng.uniform(0.92, 1.06) * shade, 'building')
    cv.put(win, roof & (np.abs(v) < 0.45), col * 0.7)  # ridge


def _mobile_home(cv, cy, cx, ang):
    L, Wd = 5.0 * cv.s, 1.9 * cv.s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    body = (np.abs(u) < L) & (np.abs(v) < Wd)
    cv.put(win, body, _rgb(0.90, 0.90, 0.88) * cv.rng.uniform(0.92, 1.04), 'mobile home')
    cv.put(win, body & (np.abs(v) < 0.4), _rgb(0.62, 0.62, 0.62))


def _piers(cv, shore_ang, a_map, n_map, key):
    """Harbor (wide concrete quay + jetties) or dock (narrow wooden piers) on a straight shore;
    n_map > 0 is water. Returns the pier axis positions along the shore, the pier length, the
    axis spacing and the pier half-width (for mooring boats)."""
    rng = cv.rng
    if key == 'harbor':
        fw, spacing, length, quay = rng.uniform(2.5, 4) * cv.s, rng.uniform(16, 24) * cv.s, \
            rng.uniform(18, 30) * cv.s, rng.uniform(4, 7) * cv.s
        col = _rgb(0.68, 0.64, 0.57)
    else:
        fw, spacing, length, quay = rng.uniform(0.8, 1.2) * cv.s, rng.uniform(9, 13) * cv.s, \
            rng.uniform(14, 24) * cv.s, rng.uniform(1.5, 2.5) * cv.s
        col = _rgb(0.52, 0.41, 0.30)
    a0 = rng.uniform(-cv.H, -cv.H / 2)
    extent = rng.uniform(0.5, 1.0) * cv.H * 1.5
    axes = np.arange(a0 + spacing / 2, a0 + extent, spacing)
    m = (n_map > -quay) & (n_map < 0.5) & (a_map > a0) & (a_map < a0 + extent)
    for ax in axes:
        m |= (np.abs(a_map - ax) < fw) & (n_map >= 0) & (n_map < length)
    full = (slice(0, cv.H), slice(0, cv.W))
    tex = col + (0.03 * rng.standard_normal((cv.H, cv.W, 1))).astype(np.float32)
    if key == 'dock':
        tex = tex * np.where((a_map % 2) < 1, 1.0, 0.88).astype(np.float32)[..., None]
    cv.put(full, m, tex, key)
    return axes, length, spacing, fw


def _unknown_blobs(cv):
    m = cv.smooth(1, 5)[0] > cv.rng.uniform(1.2, 1.6)
    cv.ignore |= m


# ----------------------------------------------------------------------------------------------
# Scene recipes.
# ----------------------------------------------------------------------------------------------
def _place(cv, painter, mask, k, margin=4, **kw):
    for (y, x) in cv.sample(mask, k, margin):
        painter(cv, y, x, cv.rng.uniform(0, 2 * math.pi), **kw)


def _cars_on_road(cv, road, k, mask=None, key='small vehicle'):
    """k cars in the lanes of a road returned by :func:`_road` (optionally within mask)."""
    m, a, n, ang, w = road
    pts = cv.sample(m if mask is None else m & mask, k, 3)
    for (y, x) in pts:
        nn = n[min(int(y), cv.H - 1), min(int(x), cv.W - 1)]
        lane = w / 4 if nn > 0 else -w / 4
        # snap across the road to the lane centre
        dy, dx = (lane - nn) * math.cos(ang), -(lane - nn) * math.sin(ang)
        _small_vehicle(cv, y + dy, x + dx, ang + (0 if nn > 0 else math.pi), key)


def _parking_lot(cv, cy, cx, ang, rows, cols, fill=0.8, key='small vehicle'):
    """Pavement lot with rows of cars parked across the row axis."""
    s = cv.s
    f = cv.frame(cy, cx, (max(rows, cols) + 1) * 8 * s, ang)
    if f is None:
        return
    win, u, v = f
    lot = (np.abs(u) < cols * 2.5 * s + 2) & (np.abs(v) < rows * 4.5 * s + 2)
    full_tex = _stuff_texture('pavement', cv)
    cv.put(win, lot, full_tex[win], 'pavement')
    c, sn = math.cos(ang), math.sin(ang)
    for r in range(rows):
        for q in range(cols):
            if cv.rng.uniform() > fill:
                continue
            lu = (q - (cols - 1) / 2) * 5 * s
            lv = (r - (rows - 1) / 2) * 9 * s
            _small_vehicle(cv, cy + lu * sn + lv * c, cx + lu * c - lv * sn, ang + math.pi / 2, key)


def _isaid_scene(cv: _Canvas, t: int):
    rng, s, H = cv.rng, cv.s, cv.H
    land = ['grass', 'bare soil', 'pavement', 'developed space', 'tree', 'rangeland']
    kind = ('harbor', 'airport', 'sports', 'urban', 'river', 'industrial', 'stadium', 'heliport')[t % 8]
    if kind == 'harbor':
        cv.layout(['pavement', 'developed space', 'bare soil', 'grass'], [3, 2, 1, 1])
        ang, a, n, off = cv.shore('water', wavy=0.0)
        cv.render_stuff()
        axes, length, spacing, fw = _piers(cv, ang, a, n, 'harbor')
        for ax in axes:
            for side in (-1, 1):
                if rng.uniform() < 0.6:
                    y, x = cv.point(ang, ax + side * (fw + rng.uniform(2.5, 3.5) * s),
                                    off + rng.uniform(0.3, 0.8) * length)
                    _ship(cv, y, x, ang + math.pi / 2 * (1 if rng.uniform() < 0.5 else -1),
                          a=rng.uniform(5, 8), wake=False)
        _place(cv, _ship, (n > length + 6 * s), rng.integers(0, 3))
        if rng.uniform() < 0.4:
            _place(cv, _storage_tank, (n < -12 * s) & cv.mask_of('pavement', 'bare soil', 'developed space'), 3)
        if rng.uniform() < 0.6:
            _place(cv, _small_vehicle, (n < -8 * s), rng.integers(2, 7))
        if rng.uniform() < 0.4:
            _place(cv, _large_vehicle, (n < -8 * s), rng.integers(1, 3))
    elif kind == 'airport':
        cv.layout(['pavement', 'grass', 'bare soil'], [4, 2, 1])
        cv.band('pavement', rng.uniform(0, math.pi), rng.uniform(20, 34) * s, H / 2, H / 2)
        cv.render_stuff()
        _place(cv, _plane, cv.mask_of('pavement'), rng.integers(2, 5), margin=8)
        if rng.uniform() < 0.3:
            _place(cv, _helicopter, cv.mask_of('pavement', 'grass'), 1, margin=8)
        _place(cv, _small_vehicle, cv.mask_of('pavement'), rng.integers(0, 5))
        _place(cv, _large_vehicle, cv.mask_of('pavement'), rng.integers(0, 3))
    elif kind == 'heliport':
        cv.layout(['grass', 'pavement', 'developed space'], [2, 2, 1])
        cv.render_stuff()
        for (y, x) in cv.sample(np.ones_like(cv.ignore), rng.integers(1, 4), 12 * s):
            f = cv.frame(y, x, 10 * s, 0.0)
            win, u, v = f
            cv.put(win, u ** 2 + v ** 2 < (9 * s) ** 2, _rgb(0.78, 0.78, 0.74))  # helipad (bg)
            _helicopter(cv, y, x, rng.uniform(0, 2 * math.pi))
        for _ in range(rng.integers(1, 4)):
            _building(cv, *rng.uniform(0, H, 2), rng.uniform(0, math.pi))
        if rng.uniform() < 0.3:
            _place(cv, _pool, cv.mask_of('grass'), 1)
        _place(cv, _small_vehicle, cv.mask_of('pavement'), rng.integers(1, 6))
    elif kind in ('sports', 'stadium'):
        cv.layout(['grass', 'developed space', 'tree', 'pavement'], [4, 2, 1, 1])
        cv.render_stuff()
        if rng.uniform() < 0.6:
            _cars_on_road(cv, _road(cv, rng.uniform(0, math.pi), *rng.uniform(0, H, 2)), rng.integers(1, 6))
        choices = ([_ground_track_field, _soccer_field, _tennis_court, _baseball_diamond]
                   if kind == 'stadium' else
                   [_tennis_court, _basketball_court, _baseball_diamond, _pool, _soccer_field,
                    _tennis_court, _basketball_court])
        for painter in rng.choice(np.array(choices, dtype=object), size=rng.integers(2, 4), replace=False):
            y, x = rng.uniform(0.2, 0.8, 2) * H
            ang = rng.uniform(0, math.pi)
            if painter is _tennis_court and rng.uniform() < 0.6:  # courts side by side
                for k in range(rng.integers(2, 4)):
                    painter(cv, y + k * 13.5 * s * math.cos(ang), x - k * 13.5 * s * math.sin(ang), ang)
            else:
                painter(cv, y, x, ang)
        if rng.uniform() < 0.5:
            _place(cv, _small_vehicle, cv.mask_of('pavement', 'developed space'), rng.integers(1, 5))
    elif kind == 'urban':
        cv.layout(['developed space', 'grass', 'tree'], [3, 1, 1])
        cv.render_stuff()
        ang0 = rng.uniform(0, math.pi)
        roads = [_road(cv, ang0 + k * math.pi / 2, *rng.uniform(0.2, 0.8, 2) * H)
                 for k in range(rng.integers(1, 3))]
        for _ in range(rng.integers(2, 6)):
            y, x = rng.uniform(0, H, 2)
            if not cv.mask_of('road')[int(y), int(x)]:
                _building(cv, y, x, ang0)
        if rng.uniform() < 0.6:
            _roundabout(cv, *rng.uniform(0.25, 0.75, 2) * H)
        for road in roads:
            _cars_on_road(cv, road, rng.integers(2, 8), mask=cv.mask_of('road'))
            if rng.uniform() < 0.5:
                _place(cv, _large_vehicle, cv.mask_of('road') & road[0], 1)
        if rng.uniform() < 0.5:
            _place(cv, _pool, cv.mask_of('grass', 'developed space'), rng.integers(1, 3))
        if rng.uniform() < 0.3:
            _place(cv, _basketball_court, cv.mask_of('grass', 'developed space'), 1, margin=10)
        if rng.uniform() < 0.5:
            _parking_lot(cv, *rng.uniform(0.2, 0.8, 2) * H, rng.uniform(0, math.pi), 2, rng.integers(3, 6))
    elif kind == 'river':
        cv.layout(['grass', 'field', 'tree', 'bare soil'], [2, 2, 1, 1])
        rang, a, n, w = cv.river('water')
        cv.render_stuff()
        water = cv.mask_of('water')
        for _ in range(rng.integers(1, 3)):
            # a road perpendicular to the river; its span over the water (+2 px) is the bridge
            bang = rang + math.pi / 2 + rng.uniform(-0.3, 0.3)
            pts = cv.sample(water, 1, 20 * s) or [(H / 2, H / 2)]
            road = _road(cv, bang, *pts[0], width=rng.uniform(6, 9))
            m, ra, rn, _, rw = road
            bridge = m & (np.abs(n) < w + 2 * s)
            full = (slice(0, H), slice(0, H))
            cv.put(full, bridge, _rgb(0.68, 0.66, 0.62) + 0.02 * rng.standard_normal((H, H, 1)).astype(np.float32), 'bridge')
            cv.put(full, bridge & (np.abs(np.abs(rn) - (rw / 2 - 0.7)) < 0.6), _rgb(0.3, 0.3, 0.3))  # railings
            _cars_on_road(cv, road, rng.integers(1, 5))
        _place(cv, _ship, cv.mask_of('water'), rng.integers(1, 4), margin=6, a=rng.uniform(4, 7))
    else:  # industrial
        cv.layout(['bare soil', 'pavement', 'developed space'], [2, 2, 1])
        cv.render_stuff()
        y0, x0 = rng.uniform(0.15, 0.55, 2) * H
        r = rng.uniform(4.5, 8)
        step = 2 * r * s + rng.uniform(2, 5) * s
        nr, nc = rng.integers(1, 4), rng.integers(2, 4)
        for i in range(nr):
            for j in range(nc):
                if rng.uniform() < 0.85:
                    _storage_tank(cv, y0 + i * step, x0 + j * step, r=r)
        if rng.uniform() < 0.7:
            _cars_on_road(cv, _road(cv, rng.uniform(0, math.pi), *rng.uniform(0, H, 2)), rng.integers(0, 4))
        _place(cv, _large_vehicle, cv.mask_of('pavement', 'bare soil'), rng.integers(1, 4))
        _place(cv, _small_vehicle, cv.mask_of('pavement', 'developed space'), rng.integers(0, 5))


def _streets(cv, key: str = 'pavement') -> float:
    """1-2 perpendicular streets of ``key`` (DLRSD labels streets 'pavement'); returns their angle."""
    rng, s, H = cv.rng, cv.s, cv.H
    ang = rng.uniform(0, math.pi)
    for k in range(rng.integers(1, 3)):
        y, x = rng.uniform(0.25, 0.75, 2) * H
        cv.band(key, ang + k * math.pi / 2, rng.uniform(7, 10) * s, y, x)
    return ang


def _dlrsd_scene(cv: _Canvas, t: int):
    rng, s, H = cv.rng, cv.s, cv.H
    kind = ('agricultural', 'airplane', 'beach', 'dense residential', 'chaparral', 'forest',
            'harbor', 'mobile home park', 'parking lot', 'river', 'storage tanks', 'tennis court',
            'sparse residential')[t % 13]
    if kind == 'agricultural':
        cv.layout(['field', 'tree', 'grass', 'bare soil'], [5, 1, 1, 1])
        cv.render_stuff()
    elif kind == 'airplane':
        cv.layout(['pavement', 'grass', 'bare soil'], [4, 2, 1])
        cv.band('pavement', rng.uniform(0, math.pi), rng.uniform(24, 40) * s, H / 2, H / 2)
        cv.render_stuff()
        _place(cv, _plane, cv.mask_of('pavement'), rng.integers(1, 4), margin=10)
        if rng.uniform() < 0.4:
            _place(cv, _small_vehicle, cv.mask_of('pavement'), rng.integers(1, 4))
    elif kind == 'beach':
        cv.layout(['grass', 'tree', 'pavement'], [2, 2, 1])
        ang, a, n, _ = cv.shore('sea', wavy=5.0, frac=(0.35, 0.6))
        cv.cmap[(n > -rng.uniform(10, 25) * s) & (n <= 0)] = _CID['sand']
        cv.cmap[n > 0] = _CID['sea']
        cv.render_stuff()
        if rng.uniform() < 0.4:
            _place(cv, _ship, cv.mask_of('sea'), rng.integers(1, 3), a=rng.uniform(4, 7))
    elif kind in ('dense residential', 'sparse residential'):
        dense = kind == 'dense residential'
        cv.layout(['grass', 'tree', 'bare soil'] if not dense else ['grass', 'tree', 'pavement'],
                  [3, 2, 1] if not dense else [2, 2, 1])
        ang = _streets(cv)
        if not dense and rng.uniform() < 0.6:
            cv.pond('water', thr=1.3, cells=5)
        cv.render_stuff()
        nb = rng.integers(8, 16) if dense else rng.integers(3, 7)
        free = ~cv.mask_of('pavement', 'water')
        for (y, x) in cv.sample(free, nb, 5):
            _building(cv, y, x, ang + rng.choice([0, math.pi / 2]))
        _place(cv, _small_vehicle, cv.mask_of('pavement'), rng.integers(2, 8), margin=3)
        if dense and rng.uniform() < 0.25:
            _tennis_court(cv, *rng.uniform(0.25, 0.75, 2) * H, ang, key='court')
        if not dense and rng.uniform() < 0.5:  # backyard pools are DLRSD 'water'
            for (y, x) in cv.sample(free, rng.integers(1, 3), 6):
                f = cv.frame(y, x, 6 * s, ang)
                cv.put(f[0], (np.abs(f[1]) < 4 * s) & (np.abs(f[2]) < 2.5 * s), _rgb(0.10, 0.24, 0.36), 'water')
    elif kind == 'chaparral':
        cv.layout(['chaparral', 'bare soil', 'grass', 'tree', 'sand'], [6, 1.5, 1, 0.7, 0.7])
        cv.render_stuff()
    elif kind == 'forest':
        cv.layout(['tree', 'grass', 'bare soil'], [6, 1.5, 0.7])
        cv.render_stuff()
    elif kind == 'harbor':
        cv.layout(['pavement', 'tree', 'grass'], [3, 1, 1])
        ang, a, n, off = cv.shore('water', wavy=0.0, frac=(0.45, 0.7))
        cv.render_stuff()
        axes, length, spacing, fw = _piers(cv, ang, a, n, 'dock')
        for ax in axes:
            for side in (-1, 1):
                for pos in np.arange(4 * s, length, 7.5 * s):
                    if rng.uniform() < 0.55:
                        y, x = cv.point(ang, ax + side * (fw + 1.8 * s), off + pos)
                        _ship(cv, y, x, ang + math.pi / 2, a=rng.uniform(2.8, 3.4), wake=False)
        for _ in range(rng.integers(1, 4)):
            y, x = rng.uniform(0, H, 2)
            if n[int(y), int(x)] < -8 * s:
                _building(cv, y, x, ang)
        _place(cv, _small_vehicle, (n < -6 * s) & cv.mask_of('pavement'), rng.integers(0, 5))
    elif kind == 'mobile home park':
        cv.layout(['pavement', 'grass', 'tree'], [3, 2, 1])
        cv.render_stuff()
        ang = rng.uniform(0, math.pi)
        c, sn = math.cos(ang), math.sin(ang)
        for r in range(-4, 5):
            for q in range(-6, 7):
                if rng.uniform() < 0.7:
                    lu, lv = q * 13 * s, r * 6 * s
                    _mobile_home(cv, H / 2 + lu * sn + lv * c, H / 2 + lu * c - lv * sn, ang)
        _place(cv, _small_vehicle, cv.mask_of('pavement'), rng.integers(1, 5))
    elif kind == 'parking lot':
        cv.layout(['pavement', 'grass', 'tree'], [5, 1, 1])
        cv.render_stuff()
        ang = rng.uniform(0, math.pi)
        _parking_lot(cv, H / 2, H / 2, ang, rng.integers(3, 6), rng.integers(6, 12), fill=rng.uniform(0.5, 0.95))
    elif kind == 'river':
        cv.layout(['grass', 'tree', 'field', 'bare soil'], [2, 2, 1, 1])
        cv.river('water', width=(20, 36))
        cv.render_stuff()
        if rng.uniform() < 0.3:
            _place(cv, _ship, cv.mask_of('water'), 1, margin=8, a=rng.uniform(4, 6))
    elif kind == 'storage tanks':
        cv.layout(['pavement', 'bare soil', 'grass'], [3, 2, 1])
        cv.render_stuff()
        y0, x0 = rng.uniform(0.15, 0.5, 2) * H
        r = rng.uniform(5, 9)
        step = 2 * r * s + rng.uniform(2, 5) * s
        for i in range(rng.integers(2, 4)):
            for j in range(rng.integers(2, 4)):
                if rng.uniform() < 0.85:
                    _storage_tank(cv, y0 + i * step, x0 + j * step, r=r)
        for _ in range(rng.integers(0, 3)):
            _building(cv, *rng.uniform(0, H, 2), rng.uniform(0, math.pi), L=rng.uniform(8, 14))
    elif kind == 'tennis court':
        cv.layout(['grass', 'tree', 'pavement'], [3, 2, 1])
        cv.render_stuff()
        ang = rng.uniform(0, math.pi)
        y, x = rng.uniform(0.3, 0.7, 2) * H
        for k in range(rng.integers(1, 4)):
            _tennis_court(cv, y + k * 13.5 * s * math.cos(ang), x - k * 13.5 * s * math.sin(ang), ang, key='court')
        for _ in range(rng.integers(1, 4)):
            yy, xx = rng.uniform(0, H, 2)
            if not cv.mask_of('court')[int(yy), int(xx)]:
                _building(cv, yy, xx, ang)
        _place(cv, _small_vehicle, cv.mask_of('pavement'), rng.integers(0, 4))


def _oem_scene(cv: _Canvas, t: int):
    rng, s, H = cv.rng, cv.s, cv.H
    kind = ('urban', 'rural', 'riverine', 'suburban', 'barren')[t % 5]
    if kind == 'urban':
        cv.layout(['developed space', 'rangeland', 'tree'], [3, 1, 1])
    elif kind == 'rural':
        cv.layout(['field', 'rangeland', 'tree', 'bare soil'], [4, 2, 1, 1])
    elif kind == 'riverine':
        cv.layout(['rangeland', 'tree', 'field'], [2, 2, 1])
        cv.river('water', width=(16, 34))
    elif kind == 'suburban':
        cv.layout(['rangeland', 'tree', 'developed space'], [2, 2, 1])
    else:
        cv.layout(['bare soil', 'rangeland', 'developed space'], [3, 2, 0.5])
        if rng.uniform() < 0.5:
            cv.pond('water', thr=1.2)
    cv.render_stuff()
    nroads = {'urban': 2, 'rural': 1, 'riverine': 1, 'suburban': 2, 'barren': 1}[kind]
    ang = rng.uniform(0, math.pi)
    for k in range(rng.integers(1, nroads + 1)):
        _road(cv, ang + k * math.pi / 2, *rng.uniform(0.2, 0.8, 2) * H)
    nb = {'urban': (10, 20), 'rural': (0, 4), 'riverine': (0, 3), 'suburban': (5, 12), 'barren': (0, 3)}[kind]
    free = ~cv.mask_of('road', 'water')
    for (y, x) in cv.sample(free, rng.integers(*nb), 5):
        _building(cv, y, x, ang + rng.choice([0, math.pi / 2]))
    if rng.uniform() < 0.3:
        _unknown_blobs(cv)


_SCENES = {'isaid': (_isaid_scene, 8), 'dlrsd': (_dlrsd_scene, 13), 'oem': (_oem_scene, 5)}


def render_scene(dataset: str, rng: np.random.Generator, scene_type: Optional[int] = None,
                 size: int = DEFAULT_IMG_SIZE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene of ``dataset``'s world.

    Returns ``(image uint8 HxWx3, concept map int16 HxW, label uint8 HxW)``; the concept map
    indexes :data:`CONCEPTS` (for captions), the label holds the dataset's ids and 255.
    """
    fn, ntypes = _SCENES[dataset]
    cv = _Canvas(rng, size)
    fn(cv, int(rng.integers(ntypes)) if scene_type is None else scene_type)
    img = cv.finish()
    lut = _label_lut(dataset)
    lab = lut[cv.cmap]
    if (lab < 0).any():
        bad = sorted({CONCEPTS[c].key if c >= 0 else '<unpainted>' for c in np.unique(cv.cmap[lab < 0])})
        raise AssertionError(f'mini {dataset}: scene painted concepts outside the dataset: {bad}')
    lab = lab.astype(np.uint8)
    lab[cv.ignore] = 255
    return img, cv.cmap, lab


# ----------------------------------------------------------------------------------------------
# Captions (for pretraining the tiny CLIP on the same world).
# ----------------------------------------------------------------------------------------------
# The paper's four remote-sensing templates (Sec. 3.1) and the generic CAT-Seg / OVRS template,
# plus a few web-caption styles; '{}' receives 'a X', 'a X and a Y', 'a X, a Y and a Z'.
CAPTION_TEMPLATES = ('a satellite image of {}.', 'a land use image of {}.',
                     'a remote sensing image of {}.', 'an aerial image of {}.',
                     'a photo of {} in the scene.', 'an overhead view of {}.',
                     '{} seen from above.', 'there is {} in the scene.')


def make_caption(cmap: np.ndarray, rng: np.random.Generator, max_names: int = 4,
                 min_stuff_frac: float = 0.04, min_thing_px: int = 6) -> Tuple[str, Tuple[str, ...]]:
    """Caption naming (a random subset of) the concepts present; returns (caption, concept keys)."""
    ids, counts = np.unique(cmap[cmap >= 0], return_counts=True)
    keys, weights = [], []
    for cid, cnt in zip(ids, counts):
        c = CONCEPTS[cid]
        if c.kind == 'thing' and cnt >= min_thing_px:
            keys.append(c.key)
            weights.append(2.0)
        elif c.kind == 'stuff' and cnt >= min_stuff_frac * cmap.size:
            keys.append(c.key)
            weights.append(0.5 + 2.0 * cnt / cmap.size)
    if not keys:
        cid = ids[np.argmax(counts)]
        keys, weights = [CONCEPTS[cid].key], [1.0]
    k = int(rng.integers(1, min(max_names, len(keys)) + 1))
    p = np.asarray(weights) / np.sum(weights)
    chosen = [keys[i] for i in rng.choice(len(keys), size=k, replace=False, p=p)]
    names = concept_names()
    words = ['a ' + names[c][int(rng.integers(len(names[c])))] for c in chosen]
    lst = words[0] if len(words) == 1 else ', '.join(words[:-1]) + ' and ' + words[-1]
    tpl = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    return tpl.format(lst), tuple(chosen)


# ----------------------------------------------------------------------------------------------
# On-disk generation.
# ----------------------------------------------------------------------------------------------
def _cache_root() -> Path:
    env = os.environ.get('AEROSEG_CACHE')
    return Path(env) if env else Path(__file__).resolve().parents[2] / '.cache'


def mini_stamp(name: str, seed: int = DEFAULT_SEED, num_train: int = DEFAULT_SIZES['train'],
               num_val: int = DEFAULT_SIZES['val'], img_size: int = DEFAULT_IMG_SIZE) -> dict:
    """What the generated data depends on; a different stamp on disk triggers regeneration."""
    src = Path(__file__).read_bytes()
    sp = get_split(name)
    return {'generator_version': GENERATOR_VERSION,
            'source_sha256': hashlib.sha256(src).hexdigest()[:16],
            'dataset': name, 'classes': list(sp.classes), 'seen': list(sp.seen),
            'unseen': list(sp.unseen), 'seed': seed, 'num_train': num_train, 'num_val': num_val,
            'img_size': img_size, 'numpy': np.__version__, 'pillow': PIL.__version__,
            'formats': list(FORMATS[name])}


def _check_name(name: str) -> str:
    key = name.lower().replace('-', '').replace('_', '')
    key = {'openearthmap': 'oem'}.get(key, key)
    if key not in MINI_DATASETS:
        raise KeyError(f'unknown mini dataset {name!r}; choose one of {", ".join(MINI_DATASETS)}')
    return key


def generate_mini(name: str, out_dir, seed: int = DEFAULT_SEED, num_train: int = DEFAULT_SIZES['train'],
                  num_val: int = DEFAULT_SIZES['val'], img_size: int = DEFAULT_IMG_SIZE) -> Path:
    """Write the mini dataset ``name`` into ``out_dir`` (processed layout) and its stamp."""
    name = _check_name(name)
    out = Path(out_dir)
    img_suffix, seg_suffix = FORMATS[name]
    fn, ntypes = _SCENES[name]
    for split, n in (('train', num_train), ('val', num_val)):
        (out / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (out / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, _DS_CODE[name], _SPLIT_CODE[split], i])
            img, _, lab = render_scene(name, rng, scene_type=i % ntypes, size=img_size)
            stem = f'mini_{name}_{split}_{i:04d}'
            im = Image.fromarray(img)
            if img_suffix == '.jpg':
                im.save(out / 'img_dir' / split / (stem + img_suffix), quality=JPEG_QUALITY)
            else:
                im.save(out / 'img_dir' / split / (stem + img_suffix), compress_level=1)
            Image.fromarray(lab).save(out / 'ann_dir' / split / (stem + seg_suffix),
                                                compress_level=1)
    stamp = mini_stamp(name, seed, num_train, num_val, img_size)
    (out / 'mini_stamp.json').write_text(json.dumps(stamp, indent=1))
    return out


def _read_stamp(root: Path) -> Optional[dict]:
    try:
        return json.loads((root / 'mini_stamp.json').read_text())
    except (OSError, ValueError):
        return None


def ensure_mini(name: str, root=None, *, seed: int = DEFAULT_SEED,
                num_train: int = DEFAULT_SIZES['train'], num_val: int = DEFAULT_SIZES['val'],
                img_size: int = DEFAULT_IMG_SIZE) -> Path:
    """Path to the mini dataset ``name`` ('isaid' | 'dlrsd' | 'oem'), generating it on first use.

    ``root`` defaults to ``$AEROSEG_CACHE/mini/<name>`` (``$AEROSEG_CACHE`` = ``<repo>/.cache``).
    Regenerates when the stamp differs (generator source, classes or parameters changed). Safe
    against concurrent callers: data is written to a temporary sibling and renamed into place.
    """
    name = _check_name(name)
    root = Path(root) if root is not None else _cache_root() / 'mini' / name
    want = mini_stamp(name, seed, num_train, num_val, img_size)
    if _read_stamp(root) == want:
        return root
    if root.exists() and any(root.iterdir()) and _read_stamp(root) is None:
        raise FileExistsError(f'{root} exists, is not empty and holds no mini_stamp.json; refusing to '
                              f'overwrite it. Pass another root or remove the folder.')
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f'.{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        generate_mini(name, tmp, seed, num_train, num_val, img_size)
        if _read_stamp(root) == want:  # another process finished first
            return root
        if root.exists():
            old = root.parent / f'.{root.name}.old-{uuid.uuid4().hex[:8]}'
            try:
                os.replace(root, old)
                shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.replace(tmp, root)
        except OSError:
            if _read_stamp(root) != want:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root

"""Scenes: one recipe module per dataset, and :func:`render_scene`, which runs a recipe on a fresh
canvas and returns the image, the concept map and the dataset's label.

A recipe ``scene(cv, t)`` lays out and renders stuff, then paints things, for scene type ``t``
(``generate_mini`` cycles it with the image index so every class occurs in both splits).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..canvas import DEFAULT_IMG_SIZE, Canvas
from ..concepts import CONCEPTS, label_lut
from . import dlrsd, isaid, oem

# dataset -> (recipe, number of scene types)
SCENES = {'isaid': (isaid.scene, 8), 'dlrsd': (dlrsd.scene, 13), 'oem': (oem.scene, 5)}


def render_scene(dataset: str, rng: np.random.Generator, scene_type: Optional[int] = None,
                 size: int = DEFAULT_IMG_SIZE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene of ``dataset``'s world.

    Returns ``(image uint8 HxWx3, concept map int16 HxW, label uint8 HxW)``; the concept map
    indexes :data:`CONCEPTS` (for captions), the label holds the dataset's ids and 255.
    """
    fn, ntypes = SCENES[dataset]
    cv = Canvas(rng, size)
    fn(cv, int(rng.integers(ntypes)) if scene_type is None else scene_type)
    img = cv.finish()
    lut = label_lut(dataset)
    lab = lut[cv.cmap]
    if (lab < 0).any():
        bad = sorted({CONCEPTS[c].key if c >= 0 else '<unpainted>' for c in np.unique(cv.cmap[lab < 0])})
        raise AssertionError(f'mini {dataset}: scene painted concepts outside the dataset: {bad}')
    lab = lab.astype(np.uint8)
    lab[cv.ignore] = 255
    return img, cv.cmap, lab

"""Captions of mini-world scenes, for pretraining the tiny CLIP on the same world
(``tools/train_tiny_clip.py``): a template filled with names of some of the concepts present.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .concepts import CONCEPTS, concept_names

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


"""Concepts: the mini world's things and stuff, and every name each goes by.

One set of concepts serves the three mini datasets; a class that is the same thing in two datasets
maps to one concept (:func:`concept_of`), so it looks the same in both. Class names, ids and splits
come from :mod:`aeroseg.datasets.splits`; captions draw names from :func:`concept_names`;
:func:`label_lut` turns a scene's concept map into a dataset's label ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Tuple

import numpy as np

from ..datasets.splits import get_split

MINI_DATASETS = ('isaid', 'dlrsd', 'oem')


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
CID = {c.key: i for i, c in enumerate(CONCEPTS)}  # concept key -> value in a concept map

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
def label_lut(dataset: str) -> np.ndarray:
    """concept id -> dataset id; 255 for concepts the dataset does not name (iSAID background),
    -1 for concepts that must never occur in that dataset's scenes (a generator bug)."""
    sp = get_split(dataset)
    fill = 255 if dataset == 'isaid' else -1
    lut = np.full(len(CONCEPTS) + 1, fill, np.int16)  # last slot: unpainted (-1 in cmap)
    for i, cls in enumerate(sp.classes):
        lut[CID[concept_of(dataset, cls)]] = i
    lut[-1] = -1
    return lut


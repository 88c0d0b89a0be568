"""The class names of SegEarth-OV's own class files, recorded beside the suite's.

The suite's names and synonyms come from :mod:`aeroseg.datasets.splits` (one source); this table
only records what the official ``configs/cls_*.txt`` files (likyoo/SegEarth-OV, commit in
``tests/golden/segearthov/README.md``) say, so a user can see where they differ and run with the
official names if wanted (``vocabulary=dict(split=..., test=official_entries(name))``,
``test_cfg=dict(background_queries=official_background(name))``).

Each official line is one class, comma-separated synonyms, e.g. ``'building,roof,house'``.
``offset``: leading official lines without a class of ours (iSAID and OEM start with
'background', which the suite's labels store as 255); the remaining lines are in the suite's
id order. DLRSD has no official class file (SegEarth-OV has no DLRSD config).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from aeroseg.datasets.splits import get_split

__all__ = ['OFFICIAL_CLASS_FILES', 'OFFICIAL_TEST_CFG', 'official_entries', 'official_background',
           'official_test_cfg', 'differences']

OFFICIAL_CLASS_FILES: Dict[str, dict] = {
    'isaid': dict(file='configs/cls_iSAID.txt', offset=1, lines=(
        'background', 'ship', 'store tank', 'baseball diamond', 'tennis court', 'basketball court',
        'ground track field', 'bridge', 'large vehicle', 'small vehicle', 'helicopter',
        'swimming pool', 'roundabout', 'soccer ball field', 'plane', 'harbor')),
    'oem': dict(file='configs/cls_openearthmap.txt', offset=1, lines=(
        'background', 'bareland,barren', 'grass', 'pavement', 'road', 'tree,forest', 'water,river',
        'cropland', 'building,roof,house')),
    'loveda': dict(file='configs/cls_loveda.txt', offset=0, lines=(
        'background', 'building,roof,house', 'road', 'water', 'barren', 'forest', 'agricultural')),
    'potsdam': dict(file='configs/cls_potsdam.txt', offset=0, lines=(
        'road,parking lot', 'building', 'low vegetation', 'tree', 'car', 'clutter,background')),
    'vaihingen': dict(file='configs/cls_vaihingen.txt', offset=0, lines=(
        'impervious surface', 'building', 'low vegetation', 'tree', 'car', 'clutter')),
}

# The official per-dataset post-processing (configs/cfg_*.py prob_thd / bg_idx; the constructor
# default bg_idx is 0) as SegEarthOV test_cfg keys on the suite's label sets. iSAID / OEM: the
# official class 0 'background' is no class of ours (label 255), so it becomes a background query
# and bg_idx None (-> 255). LoveDA: class 0 'background' is a class of ours too. Potsdam /
# Vaihingen: bg_idx 5 = clutter. DLRSD has no official config; our choice: no threshold (0.0, the
# official constructor default), because every DLRSD pixel carries one of the 17 classes (raw
# values 1..17, no background), so a thresholded pixel could only become a miss.
OFFICIAL_TEST_CFG: Dict[str, dict] = {
    'isaid': dict(prob_thd=0.4, bg_idx=None, background_queries=('background',)),
    'oem': dict(prob_thd=0.1, bg_idx=None, background_queries=('background',)),
    'loveda': dict(prob_thd=0.3, bg_idx=0, background_queries=()),
    'potsdam': dict(prob_thd=0.1, bg_idx=5, background_queries=()),
    'vaihingen': dict(prob_thd=0.1, bg_idx=5, background_queries=()),
    'dlrsd': dict(prob_thd=0.0, bg_idx=None, background_queries=()),   # our choice (see above)
}


def official_test_cfg(name: str) -> dict:
    """The post-processing keys of :data:`OFFICIAL_TEST_CFG` for a dataset (a copy)."""
    return dict(OFFICIAL_TEST_CFG[get_split(name).name])


def _entry(name: str) -> dict:
    key = get_split(name).name
    if key not in OFFICIAL_CLASS_FILES:
        raise KeyError(f'SegEarth-OV has no class file for {get_split(name).display}; '
                       f'official files exist for: {", ".join(OFFICIAL_CLASS_FILES)}')
    return OFFICIAL_CLASS_FILES[key]


def official_entries(name: str) -> List[str]:
    """The official lines for the suite's classes, in the suite's id order (comma synonyms kept)."""
    e = _entry(name)
    return list(e['lines'][e['offset']:])


def official_background(name: str) -> Tuple[str, ...]:
    """Official lines with no class of ours (queries that compete in the softmax, e.g. 'background')."""
    e = _entry(name)
    return tuple(e['lines'][:e['offset']])


def differences(name: str) -> Dict[int, Tuple[Tuple[str, ...], Tuple[str, ...]]]:
    """class id -> (our names, official names) for every class whose query lists differ.

    Our names: the split's class name then its synonyms; official: the line split at commas.
    """
    split = get_split(name)
    lines = official_entries(name)
    if len(lines) != split.num_classes:
        raise ValueError(f'{split.display}: {len(lines)} official lines for {split.num_classes} classes')
    out = {}
    for i, line in enumerate(lines):
        ours = (split.classes[i], *split.synonyms.get(i, ()))
        theirs = tuple(p.strip() for p in line.split(','))
        if ours != theirs:
            out[i] = (ours, theirs)
    return out

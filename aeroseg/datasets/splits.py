"""THE source of truth for classes, ids, seen/unseen splits, palettes and synonyms.

Every dataset class, config, metric, preparation tool and the mini-world generator reads
its class list from here. Ids are the contiguous label values 0..K-1 written in the processed
label files (255 = ignore); they follow OVRS's dataset registration files.

Seen / unseen follow the paper's Table 1 (docs/design.md §2). The table is garbled in the text we
have: its first list per dataset is read as *seen*, the second as *unseen*. To use the other
reading, call ``register_split(Split(..., seen=old.unseen, unseen=old.seen))`` under a new
name, or pass ``seen_ids`` / ``unseen_ids`` to the dataset and metric through a config.

Cross-dataset targets (LoveDA, Potsdam, Vaihingen) are zero-shot transfer targets only: every
class is unseen for a model trained elsewhere, so their split lists all ids as unseen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

__all__ = ['Split', 'get_split', 'register_split', 'available_splits', 'resolve_class_names',
           'check_name_list', 'ClassListError', 'name_split']


@dataclass(frozen=True)
class Split:
    """Classes of one dataset and its open-vocabulary split.

    Attributes:
        name: short key (``'isaid'``, ``'dlrsd'``, ``'oem'``, ...).
        display: the dataset's name as tables print it (``'iSAID'``, ``'DLRSD'``, ``'OEM'``).
        classes: class names in id order (id = index).
        seen: ids whose names and pixels are used in training.
        unseen: ids held out of training and scored as u-mIoU.
        palette: one RGB colour per class, for visualisation (and iSAID's raw colour masks).
        synonyms: optional extra names per class id (for text prompts; scored by max).
        raw_to_id: label values of the raw release -> processed id (255 = ignore).
    """
    name: str
    display: str
    classes: Tuple[str, ...]
    seen: Tuple[int, ...]
    unseen: Tuple[int, ...]
    palette: Tuple[Tuple[int, int, int], ...]
    synonyms: Mapping[int, Tuple[str, ...]] = field(default_factory=dict)
    raw_to_id: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self):
        k = len(self.classes)
        ids = sorted(self.seen + self.unseen)
        if ids != list(range(k)):
            raise ValueError(f'split {self.name!r}: seen + unseen must cover ids 0..{k - 1} '
                             f'exactly once, got seen={self.seen} unseen={self.unseen}')
        if len(self.palette) != k:
            raise ValueError(f'split {self.name!r}: {len(self.palette)} palette colours for {k} classes')

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def seen_classes(self) -> Tuple[str, ...]:
        return tuple(self.classes[i] for i in self.seen)

    @property
    def unseen_classes(self) -> Tuple[str, ...]:
        return tuple(self.classes[i] for i in self.unseen)

    def names(self, i: int) -> Tuple[str, ...]:
        """Class ``i``'s name and its synonyms."""
        return (self.classes[i],) + tuple(self.synonyms.get(i, ()))

    def index(self, name: str) -> int:
        """Id of a class name; a clear error naming the valid names otherwise."""
        try:
            return self.classes.index(name)
        except ValueError:
            raise KeyError(f'unknown class {name!r} for dataset {self.display}; '
                           f'valid names: {", ".join(self.classes)}') from None


# iSAID colour palette of the devkit's labels.py (also mmseg's iSAIDDataset.METAINFO), in our id
# order; background (0, 0, 0) is not a class and becomes 255.
_ISAID_PALETTE = ((0, 0, 63), (0, 63, 63), (0, 63, 0), (0, 63, 127), (0, 63, 191),
                  (0, 63, 255), (0, 127, 63), (0, 127, 127), (0, 0, 127), (0, 0, 191),
                  (0, 0, 255), (0, 191, 127), (0, 127, 191), (0, 127, 255), (0, 100, 155))

_SPLITS: Dict[str, Split] = {}


def register_split(split: Split, *, overwrite: bool = False) -> Split:
    """Add a split under ``split.name`` (e.g. an alternative reading of Table 1)."""
    if split.name in _SPLITS and not overwrite:
        raise KeyError(f'split {split.name!r} already registered; pass overwrite=True to replace it')
    _SPLITS[split.name] = split
    return split


def available_splits() -> Tuple[str, ...]:
    return tuple(_SPLITS)


_ALIASES = {'openearthmap': 'oem', 'isaid': 'isaid', 'dlrsd': 'dlrsd'}


def get_split(name: str) -> Split:
    """The split registered under ``name`` (case-insensitive; 'openearthmap' = 'oem')."""
    key = name.lower()
    if key not in _SPLITS:
        key = key.replace('-', '').replace('_', '')
        key = _ALIASES.get(key, key)
    if key not in _SPLITS:
        raise KeyError(f'unknown dataset {name!r}; known: {", ".join(_SPLITS)}')
    return _SPLITS[key]


class ClassListError(TypeError):
    """A class list of the wrong type (one string instead of a list of names)."""


def check_name_list(names) -> None:
    """A class list must be a sequence of names: one string would be read as its characters."""
    if isinstance(names, (str, bytes)):
        raise ClassListError(f'class names must be a list of strings, got the single string {names!r} '
                        f'(it would be read as the characters {list(str(names))[:4]}...); pass '
                        f'{[n.strip() for n in str(names).split(",")]!r}')


def resolve_class_names(names: Sequence[str], split: Optional[Split] = None) -> Tuple[str, ...]:
    """Validate a user's class list: non-empty, unique, non-blank strings. The names stay free
    text (open vocabulary); the argument must be a sequence of them, not one string."""
    check_name_list(names)
    names = tuple(str(n).strip() for n in names)
    if not names or any(not n for n in names):
        raise ValueError(f'class names must be non-empty strings, got {list(names)}')
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f'duplicate class names: {dup}')
    if split is not None:
        for n in names:
            split.index(n)
    return names


def name_split(source: str, target: str,
               train_ids: Optional[Sequence[int]] = None) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Target ids whose name or a synonym the source's training vocabulary held ("seen-name")
    and the others ("novel-name"); names compared case-insensitively. ``train_ids``: the
    source's training vocabulary (default: its seen classes)."""
    src, tgt = get_split(source), get_split(target)
    ids = src.seen if train_ids is None else tuple(train_ids)
    trained = {n.strip().lower() for i in ids for n in src.names(i)}
    seen = tuple(i for i in range(tgt.num_classes)
                 if any(n.strip().lower() in trained for n in tgt.names(i)))
    return seen, tuple(i for i in range(tgt.num_classes) if i not in seen)


register_split(Split(
    name='isaid', display='iSAID',
    classes=('ship', 'storage tank', 'baseball diamond', 'tennis court', 'basketball court',
             'ground track field', 'bridge', 'large vehicle', 'small vehicle', 'helicopter',
             'swimming pool', 'roundabout', 'soccer ball field', 'plane', 'harbor'),
    seen=(0, 1, 2, 4, 5, 7, 10, 11, 13),
    unseen=(3, 6, 8, 9, 12, 14),
    palette=_ISAID_PALETTE,
    synonyms={5: ('running track',), 12: ('soccer field', 'football field'), 13: ('airplane',)},
))

register_split(Split(
    name='dlrsd', display='DLRSD',
    classes=('airplane', 'bare soil', 'buildings', 'cars', 'chaparral', 'court', 'dock', 'field',
             'grass', 'mobile home', 'pavement', 'sand', 'sea', 'ship', 'tanks', 'trees', 'water'),
    seen=(4, 5, 6, 7, 8, 9, 11, 13, 14, 16),
    unseen=(0, 1, 2, 3, 10, 12, 15),
    palette=((166, 202, 240), (128, 128, 0), (0, 0, 128), (255, 0, 0), (0, 128, 0), (128, 0, 0),
             (255, 233, 233), (160, 160, 164), (0, 128, 128), (90, 87, 255), (255, 255, 0),
             (255, 192, 0), (0, 0, 255), (255, 0, 192), (128, 0, 128), (0, 255, 0), (0, 255, 255)),
    # DLRSD masks hold the class ids 1..17 (no 0): raw value v -> id v - 1.
    raw_to_id={v: v - 1 for v in range(1, 18)},
    synonyms={0: ('plane',), 3: ('car',), 14: ('storage tank',), 15: ('tree',)},
))

register_split(Split(
    name='oem', display='OEM',
    classes=('bareland', 'rangeland', 'developed space', 'road', 'tree', 'water',
             'agriculture land', 'building'),
    seen=(0, 1, 3, 7),
    unseen=(2, 4, 5, 6),
    # OpenEarthMap's official colours (its README), in our id order.
    palette=((128, 0, 0), (0, 255, 36), (148, 148, 148), (255, 255, 255), (34, 97, 38),
             (0, 69, 255), (75, 181, 73), (222, 31, 7)),
    # official 1..8 -> 0..7; official 0 (unknown) -> 255.
    raw_to_id={0: 255, **{v: v - 1 for v in range(1, 9)}},
))

# Cross-dataset zero-shot targets (OVRS / OVRSISBench protocol): all classes unseen.
# Raw values as mmseg reads them with reduce_zero_label=True (raw 0 -> 255, v -> v - 1).
_ISPRS_CLASSES = ('impervious surface', 'building', 'low vegetation', 'tree', 'car', 'clutter')
_ISPRS_PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0),
                  (255, 0, 0))
for _name, _display in (('potsdam', 'Potsdam'), ('vaihingen', 'Vaihingen')):
    register_split(Split(
        name=_name, display=_display, classes=_ISPRS_CLASSES, seen=(), unseen=tuple(range(6)),
        palette=_ISPRS_PALETTE, raw_to_id={0: 255, **{v: v - 1 for v in range(1, 7)}},
        synonyms={0: ('road',), 2: ('grass',)}))

register_split(Split(
    name='loveda', display='LoveDA',
    classes=('background', 'building', 'road', 'water', 'barren', 'forest', 'agricultural'),
    seen=(), unseen=tuple(range(7)),
    palette=((255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183),
             (0, 255, 0), (255, 195, 128)),
    raw_to_id={0: 255, **{v: v - 1 for v in range(1, 8)}},
    synonyms={5: ('tree',), 6: ('farmland',)},
))

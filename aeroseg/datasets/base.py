"""The shared base of our open-vocabulary datasets.

Every dataset class takes its classes, palette and seen / unseen ids from
:mod:`aeroseg.datasets.splits` (never from a list of its own) and reads the processed mmseg
layout::

    <data_root>/img_dir/{train,val}/<stem><img_suffix>
    <data_root>/ann_dir/{train,val}/<stem><seg_map_suffix>   # uint8 ids 0..K-1, 255 = ignore

``metainfo`` carries ``classes`` (all K classes, id order), ``palette``, ``seen`` and
``unseen`` (id tuples, read by ``OpenVocabIoUMetric``) and ``dataset`` (the split key).
Each sample's data info carries ``ov_unseen`` and ``ov_num_classes`` from that metainfo, so
``HideUnseenClasses()`` / ``CheckLabelValues()`` need no split argument in the configs.
A missing folder, an image without label or an empty folder is an error that names the path
and the command that creates it.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Sequence, Tuple, Union

from mmseg.datasets import BaseSegDataset

from .splits import get_split

__all__ = ['OVSegDataset', 'split_metainfo', 'resolve_vocabulary']


def split_metainfo(name: str) -> dict:
    """``METAINFO`` of a dataset class, built from ``get_split(name)``."""
    s = get_split(name)
    return dict(classes=tuple(s.classes), palette=[list(c) for c in s.palette],
                seen=tuple(s.seen), unseen=tuple(s.unseen), dataset=s.name)


def resolve_vocabulary(dataset: str, which: Union[str, Sequence[Union[int, str]]] = 'all'
                       ) -> Tuple[int, ...]:
    """Ids of a vocabulary of ``dataset``: ``'seen'``, ``'unseen'``, ``'all'`` or a list of
    ids / class names. Configs name the protocol this way (train = 'seen', test = 'all')."""
    s = get_split(dataset)
    if isinstance(which, str):
        key = which.lower()
        if key == 'all':
            return tuple(range(s.num_classes))
        if key in ('seen', 'unseen'):
            return tuple(getattr(s, key))
        raise ValueError(f'vocabulary {which!r} for {s.display}: use "seen", "unseen", "all" '
                         f'or a list of ids / class names')
    ids = []
    for w in which:
        i = s.index(w) if isinstance(w, str) else int(w)
        if not 0 <= i < s.num_classes:
            raise ValueError(f'class id {i} outside 0..{s.num_classes - 1} for {s.display}')
        ids.append(i)
    if len(set(ids)) != len(ids):
        raise ValueError(f'duplicate classes in vocabulary {list(which)}')
    return tuple(ids)


class OVSegDataset(BaseSegDataset):
    """Base of the open-vocabulary datasets (not registered; subclass it).

    Subclasses set ``METAINFO = split_metainfo(<key>)`` and ``PREPARE`` (the command, or
    the documentation, that writes the processed layout).

    Args beyond mmseg's ``BaseSegDataset``: none. ``metainfo`` may override ``seen`` /
    ``unseen`` (e.g. the other reading of the paper's Table 1); ids are validated.
    """
    METAINFO: dict = dict()
    PREPARE: str = ''

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._fix_split_ids()

    # ----------------------------------------------------------------- metainfo
    def _fix_split_ids(self) -> None:
        """Keep ``seen`` / ``unseen`` valid ids of the classes actually used."""
        meta = self._metainfo
        classes = list(meta.get('classes') or ())
        full = list(self.METAINFO.get('classes') or ())
        if self.label_map is not None and full:
            # a class subset was given: carry the split over by class name
            old_seen = set(self.METAINFO.get('seen', ()))
            meta['seen'] = tuple(i for i, c in enumerate(classes) if full.index(c) in old_seen)
            meta['unseen'] = tuple(i for i, c in enumerate(classes)
                                   if full.index(c) not in old_seen)
        seen = tuple(int(i) for i in meta.get('seen', ()))
        unseen = tuple(int(i) for i in meta.get('unseen', ()))
        k = len(classes)
        bad = [i for i in seen + unseen if not 0 <= i < k]
        if bad:
            raise ValueError(f'{type(self).__name__}: seen/unseen ids {bad} outside 0..{k - 1} '
                             f'for classes {classes}')
        if set(seen) & set(unseen):
            raise ValueError(f'{type(self).__name__}: ids {sorted(set(seen) & set(unseen))} '
                             f'are both seen and unseen')
        meta['seen'], meta['unseen'] = seen, unseen

    # ------------------------------------------------------------------ samples
    def get_data_info(self, idx: int) -> dict:
        """mmseg's data info plus what the protocol transforms read when built without a
        split (one shared pipeline for every dataset, configs/_base_/datasets/_open_vocab.py):
        ``ov_unseen`` (``metainfo['unseen']``, read by ``HideUnseenClasses``) and
        ``ov_num_classes`` (``len(metainfo['classes'])``, read by ``CheckLabelValues``)."""
        info = super().get_data_info(idx)
        info['ov_unseen'] = tuple(self._metainfo['unseen'])
        info['ov_num_classes'] = len(self._metainfo['classes'])
        return info

    # ------------------------------------------------------------------ loading
    def _where(self) -> str:
        return f'{type(self).__name__} (data_root={self.data_root!r})'

    def _missing(self, path: str, what: str) -> FileNotFoundError:
        return FileNotFoundError(
            f'{self._where()}: {what} {path!r} does not exist. {self.PREPARE} '
            f'(or set data_root / data_prefix in the config)')

    def _check_folders(self) -> None:
        if self.backend_args:  # remote storage: leave the checks to the backend
            return
        if self.data_root and not osp.isdir(self.data_root):
            raise self._missing(self.data_root, 'data root')
        img_dir = self.data_prefix.get('img_path')
        ann_dir = self.data_prefix.get('seg_map_path')
        if img_dir is not None and not osp.isdir(img_dir):
            raise self._missing(img_dir, 'image folder (img_dir)')
        if ann_dir is not None and not osp.isdir(ann_dir):
            raise self._missing(ann_dir, 'label folder (ann_dir)')
        if self.ann_file and not osp.isfile(self.ann_file) and not osp.isdir(self.ann_file):
            raise self._missing(self.ann_file, 'split list (ann_file)')

    def load_data_list(self) -> List[dict]:
        self._check_folders()
        data_list = super().load_data_list()
        img_dir = self.data_prefix.get('img_path')
        if not data_list:
            raise FileNotFoundError(
                f'{self._where()}: no images ending in {self.img_suffix!r} in {img_dir!r}. '
                f'{self.PREPARE}')
        if not self.backend_args:
            missing = [d['seg_map_path'] for d in data_list
                       if 'seg_map_path' in d and not osp.isfile(d['seg_map_path'])]
            if missing:
                raise FileNotFoundError(
                    f'{self._where()}: {len(missing)} image(s) without label, e.g. label '
                    f'{missing[0]!r} is missing for its image (expected suffix '
                    f'{self.seg_map_suffix!r}). {self.PREPARE}')
        return data_list

"""Cross-dataset zero-shot targets: LoveDA, ISPRS Potsdam, ISPRS Vaihingen.

They read MMSegmentation's own processed layouts (``tools/dataset_converters/{loveda,
potsdam,vaihingen}.py`` of mmsegmentation) with its ``reduce_zero_label=True`` semantics:
raw 0 (ignore / no-data / boundary) -> 255, raw v -> v - 1. Every class is unseen (the
models are trained on another dataset), so ``metainfo['seen']`` is empty.
"""
from __future__ import annotations

from mmseg.registry import DATASETS

from .base import OVSegDataset, split_metainfo

__all__ = ['LoveDAOVDataset', 'PotsdamOVDataset', 'VaihingenOVDataset']

_MMSEG_PREP = ('Create it with mmsegmentation\'s converter (tools/dataset_converters/{} in the '
               'mmsegmentation repository, see its docs/en/user_guides/2_dataset_prepare.md) '
               'and point data_root at its output')


class _CrossDataset(OVSegDataset):
    def __init__(self, img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=True,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


@DATASETS.register_module()
class LoveDAOVDataset(_CrossDataset):
    """LoveDA (urban and rural land cover, 0.3 m, 1024 x 1024 tiles), 7 classes.

    Layout (mmseg)::

        data/loveDA/img_dir/{train,val,test}/<n>.png
        data/loveDA/ann_dir/{train,val}/<n>.png     raw 0 no-data, 1..7

    Classes (``splits.get_split('loveda')``): background, building, road, water, barren,
    forest, agricultural.

    If you use this dataset in your research, please cite:

    * Wang et al., "LoveDA: A Remote Sensing Land-Cover Dataset for Domain Adaptive Semantic
      Segmentation", NeurIPS Datasets and Benchmarks 2021.
    """
    METAINFO = split_metainfo('loveda')
    PREPARE = _MMSEG_PREP.format('loveda.py')


@DATASETS.register_module()
class PotsdamOVDataset(_CrossDataset):
    """ISPRS Potsdam (5 cm aerial RGB; mmseg's 512 x 512 crops), 6 classes.

    Layout (mmseg)::

        data/potsdam/img_dir/{train,val}/2_10_0_0_512_512.png
        data/potsdam/ann_dir/{train,val}/2_10_0_0_512_512.png   raw 0 boundary, 1..6

    Classes (``splits.get_split('potsdam')``): impervious surface, building, low vegetation,
    tree, car, clutter.

    If you use this dataset in your research, please cite:

    * Rottensteiner et al., "The ISPRS Benchmark on Urban Object Classification and 3D
      Building Reconstruction", ISPRS Annals I-3, 2012.
    """
    METAINFO = split_metainfo('potsdam')
    PREPARE = _MMSEG_PREP.format('potsdam.py')


@DATASETS.register_module()
class VaihingenOVDataset(_CrossDataset):
    """ISPRS Vaihingen (9 cm false-colour IRRG; mmseg's 512 x 512 crops), 6 classes.

    Layout (mmseg)::

        data/vaihingen/img_dir/{train,val}/area1_0_0_512_512.png
        data/vaihingen/ann_dir/{train,val}/area1_0_0_512_512.png   raw 0 boundary, 1..6

    Classes (``splits.get_split('vaihingen')``): as Potsdam. Images are NIR-R-G stored as
    RGB (vegetation looks red).

    If you use this dataset in your research, please cite:

    * Rottensteiner et al., "The ISPRS Benchmark on Urban Object Classification and 3D
      Building Reconstruction", ISPRS Annals I-3, 2012.
    """
    METAINFO = split_metainfo('vaihingen')
    PREPARE = _MMSEG_PREP.format('vaihingen.py')

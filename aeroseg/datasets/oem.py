"""OpenEarthMap (without xBD) as an open-vocabulary land-cover benchmark."""
from __future__ import annotations

from mmseg.registry import DATASETS

from .base import OVSegDataset, split_metainfo

__all__ = ['OpenEarthMapDataset']


@DATASETS.register_module()
class OpenEarthMapDataset(OVSegDataset):
    """OpenEarthMap: global high-resolution land-cover mapping (8 classes).

    5,000 aerial and satellite images (0.25-0.5 m GSD, 97 regions, 44 countries); the paper
    drops the xBD subset (its RGB images are not in the public release) and crops the rest:
    31,154 train / 5,195 val crops. See :mod:`aeroseg.datasets.prepare.oem` for the crop
    size (256) and how it was inferred.

    Processed layout (written by ``python -m aeroseg.datasets.prepare oem``)::

        data/oem/img_dir/{train,val}/aachen_1_<y0>_<y1>_<x0>_<x1>.png   RGB crop
        data/oem/ann_dir/{train,val}/aachen_1_<y0>_<y1>_<x0>_<x1>.png   uint8 ids 0..7, 255

    Classes (``splits.get_split('oem')``): bareland, rangeland, developed space, road, tree,
    water, agriculture land, building (official values 1..8 -> ids 0..7; official 0 =
    unknown -> 255).

    If you use this dataset in your research, please cite:

    * Xia, Yokoya, Adriano and Broni-Bediako, "OpenEarthMap: A Benchmark Dataset for Global
      High-Resolution Land Cover Mapping", WACV 2023.
    """
    METAINFO = split_metainfo('oem')
    PREPARE = ('Create it with `python -m aeroseg.datasets.prepare oem --raw '
               '<OpenEarthMap_wo_xBD folder> --out data/oem`')

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)

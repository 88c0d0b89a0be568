"""DLRSD: dense labels for the UC Merced land-use images."""
from __future__ import annotations

from mmseg.registry import DATASETS

from .base import OVSegDataset, split_metainfo

__all__ = ['DLRSDDataset']


@DATASETS.register_module()
class DLRSDDataset(OVSegDataset):
    """DLRSD: Dense Labeling Remote Sensing Dataset.

    The 2,100 UC Merced land-use images (21 scene classes x 100, 256 x 256 px, 0.3 m, USGS
    aerial orthoimagery) with pixel labels of 17 classes. There is no official split; see
    :mod:`aeroseg.datasets.prepare.dlrsd` for ours (80 / 20 per scene class) and why the
    paper's 5,601 / 1,401 cannot be reproduced from the release.

    Processed layout (written by ``python -m aeroseg.datasets.prepare dlrsd``)::

        data/dlrsd/img_dir/{train,val}/agricultural00.jpg   RGB
        data/dlrsd/ann_dir/{train,val}/agricultural00.png   uint8 ids 0..16, 255

    Classes (``splits.get_split('dlrsd')``): airplane, bare soil, buildings, cars, chaparral,
    court, dock, field, grass, mobile home, pavement, sand, sea, ship, tanks, trees, water
    (raw mask values 1..17 -> ids 0..16).

    If you use this dataset in your research, please cite:

    * Shao, Yang and Zhou, "Performance Evaluation of Single-Label and Multi-Label Remote
      Sensing Image Retrieval Using a Dense Labeling Dataset", Remote Sensing 10(6), 2018.
    * Yang and Newsam, "Bag-of-Visual-Words and Spatial Extensions for Land-Use
      Classification", ACM SIGSPATIAL 2010 (UC Merced).
    """
    METAINFO = split_metainfo('dlrsd')
    PREPARE = ('Create it with `python -m aeroseg.datasets.prepare dlrsd --raw <folder with '
               'UCMerced_LandUse/ and DLRSD/> --out data/dlrsd`')

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)

"""iSAID in the iSAID-5i processing (256 x 256 crops), open-vocabulary split of the paper."""
from __future__ import annotations

from mmseg.registry import DATASETS

from .base import OVSegDataset, split_metainfo

__all__ = ['ISAIDOVDataset']


@DATASETS.register_module()
class ISAIDOVDataset(OVSegDataset):
    """iSAID: Instance Segmentation in Aerial Images, as a semantic open-vocabulary benchmark.

    Aerial images of the DOTA release (Google Earth, GF-2, JL-1; 800 to 13,000 px), pixel
    annotated with 15 object classes. The paper uses the iSAID-5i processing: 256 x 256 crops,
    18,076 train / 6,363 val, background ignored.

    Processed layout (written by ``python -m aeroseg.datasets.prepare isaid``)::

        data/isaid/img_dir/{train,val}/P0000_<y0>_<y1>_<x0>_<x1>.png   RGB crop
        data/isaid/ann_dir/{train,val}/P0000_<y0>_<y1>_<x0>_<x1>.png   uint8 ids 0..14, 255

    Classes (id order from ``splits.get_split('isaid')``): ship, storage tank, baseball
    diamond, tennis court, basketball court, ground track field, bridge, large vehicle, small
    vehicle, helicopter, swimming pool, roundabout, soccer ball field, plane, harbor.
    Background (black in the colour masks) is 255 = ignore.

    If you use this dataset in your research, please cite:

    * Zamir et al., "iSAID: A Large-scale Dataset for Instance Segmentation in Aerial
      Images", CVPR Workshops 2019.
    * Yao et al., "Scale-Aware Detailed Matching for Few-Shot Aerial Image Semantic
      Segmentation", IEEE TGRS 60, 2021 (iSAID-5i).
    """
    METAINFO = split_metainfo('isaid')
    PREPARE = ('Create it with `python -m aeroseg.datasets.prepare isaid --raw <iSAID download '
               'with train/ and val/> --out data/isaid`')

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)

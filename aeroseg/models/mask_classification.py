"""What the mask-classification methods (SAN, SCAN) share on the seam: input normalisation with
upstream's zero padding, set-prediction targets under the open-vocabulary label protocol, and
the class weights of the no-object class.

* detectron2's ``ImageList.from_tensors`` pads the *normalised* image with zeros; mmseg's data
  preprocessor pads the raw one with ``pad_val``: :func:`normalize_zero_pad` zeroes the padding
  again after normalising.
* Mask classification has no per-pixel ignore: hidden unseen pixels (``HIDDEN_INDEX``) become the
  ignore value, i.e. in no ground-truth mask and without a class target, as upstream treats
  unlabelled pixels (:func:`mask_targets`).
* The class cross-entropy has one weight per training class plus the no-object class
  (:func:`no_object_class_weight`; SAN issue #46 for what a wrong length does).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from mmseg.utils import SampleList
from torch import Tensor

from ..datasets.transforms import HIDDEN_INDEX

__all__ = ['normalize_zero_pad', 'mask_targets', 'no_object_class_weight']


def normalize_zero_pad(inputs: Tensor, mean: Tensor, std: Tensor,
                       data_samples: Optional[SampleList] = None) -> Tensor:
    """RGB 0..255 -> (x - mean) / std, with what lies outside each sample's ``img_shape`` (the
    data preprocessor's padding) set to 0."""
    x = (inputs - mean) / std
    for i, s in enumerate(data_samples or ()):
        h, w = s.metainfo.get('img_shape', x.shape[-2:])[:2]
        x[i, :, h:] = 0
        x[i, :, :, w:] = 0
    return x


def mask_targets(segmentor, data_samples: SampleList, size) -> list:
    """mmdet ``InstanceData`` per sample (one binary mask and label per training-vocabulary class
    present) from the seam's ``train_targets``; hidden unseen pixels -> the ignore value."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.utils import seg_data_to_instance_data
    targets = segmentor.train_targets(data_samples, size)
    targets[targets == HIDDEN_INDEX] = segmentor.ignore_index
    samples = [SegDataSample(gt_sem_seg=PixelData(data=t[None])) for t in targets]
    return seg_data_to_instance_data(segmentor.ignore_index, samples)


def no_object_class_weight(given: Optional[Sequence[float]], num_classes: int,
                           no_object_weight: float, key: str) -> List[float]:
    """``[1.0] * num_classes + [no_object_weight]`` when ``given`` is None; ``given`` when it has
    ``num_classes + 1`` entries; else a one-line error naming ``key``."""
    if given is None:
        return [1.0] * num_classes + [no_object_weight]
    if len(given) != num_classes + 1:
        raise ValueError(
            f'{key} has {len(given)} entries; it needs one per training class plus no-object '
            f'({num_classes} + 1 = {num_classes + 1}, SAN issue #46): set it to None (filled from '
            f'the vocabulary and no_object_weight)')
    return list(given)

"""Datasets: splits (the class source), dataset classes, transforms, preparation tools."""
from .splits import (Split, available_splits, get_split, register_split,  # noqa: F401
                     resolve_class_names)
from .base import OVSegDataset, resolve_vocabulary, split_metainfo  # noqa: F401
from .transforms import CheckLabelValues, HideUnseenClasses  # noqa: F401
from .isaid import ISAIDOVDataset  # noqa: F401
from .dlrsd import DLRSDDataset  # noqa: F401
from .oem import OpenEarthMapDataset  # noqa: F401
from .cross import LoveDAOVDataset, PotsdamOVDataset, VaihingenOVDataset  # noqa: F401

"""SegEarth-OV (likyoo/SegEarth-OV), the training-free baseline: registers ``SegEarthOV``,
``SegEarthCLIP`` and ``SimFeatUp`` in MMSegmentation's registry. Written from the official code
(no licence there: nothing of it is copied here); golden tests in tests/golden/segearthov."""
from .clip import SegEarthCLIP, segearth_attention  # noqa: F401
from .official_names import (OFFICIAL_CLASS_FILES, OFFICIAL_TEST_CFG, differences, official_background,  # noqa: F401
                             official_entries, official_test_cfg)
from .segmentor import SegEarthOV, load_class_file, parse_class_entries  # noqa: F401
from .simfeatup import JBULearnedRange, SimFeatUp, adaptive_conv  # noqa: F401

__all__ = ['SegEarthOV', 'SegEarthCLIP', 'SimFeatUp', 'JBULearnedRange', 'segearth_attention',
           'adaptive_conv', 'parse_class_entries', 'load_class_file', 'OFFICIAL_CLASS_FILES',
           'official_entries', 'official_background', 'differences', 'OFFICIAL_TEST_CFG',
           'official_test_cfg']

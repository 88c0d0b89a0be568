"""The baselines, one subpackage per method; importing this registers them in mmseg's registries.

Each ``baselines/<method>/`` holds what is the method's own (modules, official-checkpoint key
mapping, hooks); blocks shared with AerOSeg stay in :mod:`aeroseg.models`. Nothing under
``aeroseg/`` imports this package.
"""
from . import catseg, ovrs, san, scan, sed, segearthov  # noqa: F401

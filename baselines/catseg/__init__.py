"""CAT-Seg (cvlab-kaist/CAT-Seg): CLIP cost volume + spatial/class aggregation + upsampling decoder.

Its blocks are the ones AerOSeg builds on, so they live in :mod:`aeroseg.models` (clip backbone,
cost volume, ``AggregatorLayer``, ``CostAggregationHead``, ``OpenVocabCostSegmentor`` with its
hooks); the method is the configs ``configs/catseg/`` over them. Here: what is CAT-Seg's alone,
the mapping of its official checkpoints (:func:`convert_official_aggregator_state_dict`).
Recipe tests: ``tests/baselines/catseg/``; golden tests of the shared blocks: ``tests/models``.
"""
from .checkpoint import convert_official_aggregator_state_dict  # noqa: F401

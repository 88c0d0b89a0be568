"""OVRS (caoql98/OVRS): CAT-Seg over four rotations of the input with an attention-aware decoder.

Every block is shared with AerOSeg (:mod:`aeroseg.models`: ``rotations`` of the CLIP backbone,
the ``'ovrs'`` decoder block, sliding-window evaluation with a global view in the base
segmentor), so the method is its configs, ``configs/ovrs/``; official checkpoints map through
:func:`baselines.catseg.convert_official_aggregator_state_dict` (OVRS is a CAT-Seg fork).
Recipe tests: ``tests/baselines/ovrs/``.
"""

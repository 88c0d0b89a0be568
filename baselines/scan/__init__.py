"""SCAN (yongliu20/SCAN, CC BY-NC 4.0: read for facts, written anew) on MMSegmentation 1.x and
MMDetection 3.3 parts.

``modules.py``: SCAN's own blocks (LFM, projection, cross-attention stack, sequence-length-1
encoder, masked crops, contextual shift); ``proposal.py``: the Mask2Former head with the embedding
class head and the deformable-attention routing (the only file that imports mmdet, when a SCAN
model is built); ``model.py``: :class:`SCANSegmentor` on the seam; ``checkpoint.py``: the
authors' CS-CLIP files. Configs: ``configs/scan/``; tests: ``tests/baselines/scan/``; goldens
against the official code: ``tests/golden/scan/``.
"""
from .checkpoint import cs_clip_state_dict, load_cs_clip  # noqa: F401
from .model import SCANSegmentor  # noqa: F401

"""SED (xb534/SED): ConvNeXt CLIP hierarchical encoder + gradual fusion decoder with category early rejection.

``head.py``: the decoder (``SEDHead``, ``SEDUp``); ``model.py``: :class:`SEDSegmentor` behind the
suite's seam; ``checkpoint.py``: official SED checkpoints to this layout. The ConvNeXt CLIP
(``ConvNeXtCLIPBackbone``, dense features) is in :mod:`aeroseg.models.convnext_clip`. Configs:
``configs/sed/``; tests: ``tests/baselines/sed/``; goldens: ``tests/golden/sed/``.
"""
from .head import SEDHead, SEDUp, topk_valid_classes  # noqa: F401
from .model import SEDSegmentor, synonym_groups  # noqa: F401
from .checkpoint import convert_official_head_state_dict, load_official_sed, official_sed_to_suite  # noqa: F401

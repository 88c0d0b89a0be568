"""SAN (MendelXu/SAN, Side Adapter Network) as MMSegmentation 1.2.2 ships it.

mmseg's ``VisionTransformer`` / ``CLIPTextEncoder`` / ``SideAdapterCLIPHead`` are configured, not
rewritten: :class:`SANSegmentor` (``model.py``) builds them behind the suite's seam (vocabulary
per forward, label protocol, CLIP weights, hooks); ``checkpoint.py`` maps OpenAI / open_clip CLIP
and official SAN checkpoints to mmseg's SAN layout. Configs: ``configs/san/``; tests:
``tests/baselines/san/``; goldens against the official code: ``tests/golden/san/``.
"""
from .checkpoint import clip_to_san, official_san_to_mmseg  # noqa: F401
from .model import SANSegmentor, SANTextEncoder, clip_arch  # noqa: F401

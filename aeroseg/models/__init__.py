"""AerOSeg's parts and the blocks the cost-aggregation baselines share; the base segmentor."""
from . import cost_volume, refinement, decoders, head, losses  # noqa: F401
from . import back_projection, base_segmentor, segmentor  # noqa: F401
from . import prompts, clip_backbone, convnext_clip, guidance  # noqa: F401
from .base_segmentor import OpenVocabSegmentor  # noqa: F401

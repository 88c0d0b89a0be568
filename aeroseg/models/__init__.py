from . import cost_volume, refinement, decoders, head, losses  # noqa: F401
from . import back_projection, segmentor  # noqa: F401
from . import prompts, clip_backbone, guidance  # noqa: F401

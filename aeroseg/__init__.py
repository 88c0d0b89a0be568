"""aeroseg-bench: AerOSeg and the open-vocabulary remote-sensing segmentation suite.

Importing this package registers every model, dataset, transform, metric, hook and runner in
MMSegmentation's registries (configs do it through ``custom_imports``).
"""
__version__ = '0.1.0'

from . import datasets, evaluation, models  # noqa: F401,E402
from .utils import resume  # noqa: F401,E402

"""Test-wide setup: mmseg's registries as the default scope (as configs set default_scope)."""
import os

import torch

os.environ.setdefault('OMP_NUM_THREADS', '2')
torch.set_num_threads(min(2, torch.get_num_threads()))

try:
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import aeroseg  # noqa: F401  (registers the suite's modules)
except ImportError:  # the stack is not installed: tests needing it skip on import
    pass

"""Baselines, one subpackage each; importing this package registers their modules."""
from . import segearthov  # noqa: F401

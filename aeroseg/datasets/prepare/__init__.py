"""Preparation tools: official downloads -> the processed layout (see ``__main__``).

``python -m aeroseg.datasets.prepare {isaid,dlrsd,oem} --raw DIR --out DIR [--limit N]
[--force]``. Each tool verifies what it writes (counts vs the paper's, image/label sizes,
label values, degenerate label sets) and fails with the name of the offending file.
"""
from .common import PrepareError  # noqa: F401
from .cli import build_parser, main  # noqa: F401

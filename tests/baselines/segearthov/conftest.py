"""Fixtures of the SegEarth-OV tests: the golden tiny CLIP architecture (registered with open_clip
from a temp dir) and the golden jbu_one weights in the official checkpoint layout."""
from __future__ import annotations

import json

import pytest

from segearthov_helpers import ARCH, lightning_file, load_golden, open_clip


@pytest.fixture(scope='session')
def golden_arch(tmp_path_factory):
    """Register the golden tiny CLIP (patch 16, 64 px, width 32, 2 blocks, embed 8, QuickGELU)."""
    d = tmp_path_factory.mktemp('segearthov_open_clip_cfg')
    (d / f'{ARCH}.json').write_text(json.dumps(load_golden('clip')['open_clip_config']))
    open_clip.add_model_config(d)
    return ARCH


@pytest.fixture(scope='session')
def jbu_one_ckpt(tmp_path_factory):
    """The golden jbu_one weights (recorded from the official JBUOne) in the official file layout."""
    return lightning_file(tmp_path_factory.mktemp('jbu') / 'jbu_one_golden.ckpt',
                          load_golden('jbu_one')['state_dict'])



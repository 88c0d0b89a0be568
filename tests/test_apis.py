"""Inference on a user's image with the user's class names (aeroseg.apis)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS

from aeroseg.apis import init_model, segment, segment_scores
from aeroseg.config import load_config
from aeroseg.hooks import clear_outside_weights
from aeroseg.utils.checkpoint import CheckpointError

CONFIG = 'configs/catseg/catseg_vitb16_isaid.py'
TILE = Path(__file__).parent / 'data' / 'real_samples' / 'potsdam' / 'img_dir' / '2_10_0_0_512_512.png'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 'trained' mini CAT-Seg checkpoint (random weights, saved as training saves them)."""
    cfg = load_config(CONFIG, scale='mini', data_root='unused')
    clear_outside_weights(cfg.model)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('ckpt') / 'iter_300.pth'
    torch.save({'meta': {'iter': 300}, 'state_dict': model.state_dict()}, path)
    return path


def test_segment_real_tile_with_own_class_names(trained):
    model = init_model(CONFIG, str(trained), scale='mini')
    names = ['building', 'tree', 'road', 'car', 'low vegetation']
    out = segment(model, str(TILE), names)
    assert out.shape == (512, 512) and out.dtype == np.uint8 and out.max() < len(names)
    scores = segment_scores(model, str(TILE), names)
    perm = [2, 4, 0, 3, 1]
    scores_p = segment_scores(model, str(TILE), [names[i] for i in perm])
    np.testing.assert_allclose(scores_p, scores[perm], atol=1e-5)  # class order only permutes
    two = segment(model, str(TILE), names[:2])  # any number of classes
    assert two.max() <= 1


def test_bad_inputs_are_named(trained, tmp_path):
    model = init_model(CONFIG, str(trained), scale='mini')
    with pytest.raises(FileNotFoundError, match='nope.png'):
        segment(model, str(tmp_path / 'nope.png'), ['a', 'b'])
    with pytest.raises(ValueError, match='duplicate class names'):
        segment(model, str(TILE), ['car', 'car'])
    bad = tmp_path / 'other.pth'
    torch.save({'state_dict': {'head.foo': torch.zeros(1)}}, bad)
    with pytest.raises(CheckpointError, match='other.pth'):
        init_model(CONFIG, str(bad), scale='mini')

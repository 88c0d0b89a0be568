"""The mini world's tiny SimFeatUp: the committed checkpoint, the mini hook, the training pieces."""
import importlib.util

import numpy as np
import pytest
import torch

from segearthov_helpers import open_clip  # noqa: F401  (skips without open_clip / mmseg)

from aeroseg.config import MINI_OVERLAY, REPO_ROOT, load_config
from aeroseg.hooks import weight_fields
from baselines.segearthov import SegEarthOV
from baselines.segearthov.simfeatup import SimFeatUp

CKPT = REPO_ROOT / 'aeroseg/assets/mini/simfeatup_jbu_one_mini.ckpt'
ISAID = str(REPO_ROOT / 'configs/segearthov/segearthov_vitb16_isaid.py')


def _tool():
    spec = importlib.util.spec_from_file_location('train_tiny_simfeatup', REPO_ROOT / 'tools/train_tiny_simfeatup.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _overlay():
    from mmengine.config import Config
    return Config.fromfile(str(MINI_OVERLAY))


def test_committed_checkpoint_is_official_layout_and_loads():
    assert CKPT.is_file() and CKPT.stat().st_size < 400_000          # a JBU: ~48 k parameters
    raw = torch.load(CKPT, map_location='cpu', weights_only=True)
    assert set(raw) == {'state_dict'} and all(k.startswith('upsampler.') for k in raw['state_dict'])
    up = SimFeatUp(128, 'jbu_one', checkpoint=str(CKPT), num_stages=3)  # the suite's weights-only loader
    own = up.state_dict()
    assert sorted(own) == sorted(k[len('upsampler.'):] for k in raw['state_dict'])
    assert all(torch.equal(own[k[len('upsampler.'):]], v) for k, v in raw['state_dict'].items())
    # trained, not the seeded init: the learned temperature / spatial sigma have moved
    init = SimFeatUp(128, 'jbu_one').state_dict()
    assert not torch.equal(own['up.range_proj.0.weight'], init['up.range_proj.0.weight'])
    out = up.eval()(torch.randn(1, 128, 16, 16), torch.randn(1, 3, 128, 128))
    assert out.shape == (1, 128, 128, 128) and torch.isfinite(out).all()


def test_overlay_names_the_committed_checkpoint():
    tiny = _overlay().simfeatup
    assert (tiny.model_name, tiny.num_stages) == ('jbu_one', 3)
    assert (REPO_ROOT / tiny.checkpoint).resolve() == CKPT.resolve()


@pytest.mark.parametrize('feature_up', [True, False])
def test_mini_config_builds_with_the_tiny_upsampler(tmp_path, feature_up):
    from mmseg.registry import MODELS
    cfg = load_config(ISAID, scale='mini', data_root=str(tmp_path),
                      cfg_options={'model.feature_up': feature_up})
    assert cfg.model.upsampler.checkpoint == str(CKPT) and cfg.model.upsampler.num_stages == 3
    assert ('upsampler' in weight_fields(cfg.model)) == feature_up
    model = MODELS.build(cfg.model).eval()
    assert (model.upsampler is not None) == feature_up
    if feature_up:
        ref = torch.load(CKPT, map_location='cpu', weights_only=True)['state_dict']
        assert torch.equal(model.upsampler.up.range_temp, ref['upsampler.up.range_temp'])
    out = model.predict(torch.rand(1, 3, 128, 128) * 255)[0]
    assert out.pred_sem_seg.data.shape == (1, 128, 128)


def test_mini_default_follows_the_overlay(tmp_path):
    cfg = load_config(ISAID, scale='mini', data_root=str(tmp_path))
    assert cfg.model.feature_up == _overlay().simfeatup.feature_up
    # a full config that switched the upsampler off stays off at mini scale
    raw = dict(type='SegEarthOV', clip=dict(type='SegEarthCLIP'), upsampler=None, test_cfg={})
    assert SegEarthOV.mini_scale(raw, _overlay())['upsampler'] is None


def test_jitter_and_downsampler_follow_featup():
    tool = _tool()
    x = torch.randn(2, 3, 32, 32)
    same = dict(x=4, y=4, zoom=1.0, flip=False)                    # crop at the pad offset: identity
    assert torch.equal(tool.apply_jitter(x, 4, same), x)
    assert torch.equal(tool.apply_jitter(x, 4, dict(same, flip=True)), torch.flip(x, [3]))
    rng = np.random.default_rng(0)
    for _ in range(50):                                           # every sampled crop is inside
        p = tool.sample_jitter(rng, 4, 2.0, 32, 32)
        assert tool.apply_jitter(x, 4, p).shape == x.shape
    down = tool.AttentionDownsampler(6, kernel_size=8, final_size=4)
    const = torch.full((2, 6, 32, 32), 3.0)                       # attention weights sum to 1
    assert torch.allclose(down(const, None), torch.full((2, 6, 4, 4), 3.0), atol=1e-5)


def test_tool_saves_the_official_layout(tmp_path):
    tool = _tool()
    up = SimFeatUp(8, 'jbu_one')
    tool.save_checkpoint(up, tmp_path / 'x.ckpt')
    raw = torch.load(tmp_path / 'x.ckpt', map_location='cpu', weights_only=True)
    assert sorted(raw['state_dict']) == sorted(f'upsampler.{k}' for k in up.state_dict())
    again = SimFeatUp(8, 'jbu_one', checkpoint=str(tmp_path / 'x.ckpt'))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), up.state_dict().values()))

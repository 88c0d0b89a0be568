"""Outside weights through the weights-only loader: an open_clip ConvNeXt CLIP file and a released
SED checkpoint (xb534/SED ``model_final.pth`` layout), both as random-weight files."""
import copy
import re

import pytest
import torch
from mmseg.registry import MODELS

from aeroseg.config import REPO_ROOT, load_config
from aeroseg.utils.checkpoint import CheckpointError
from baselines.sed import load_official_sed
from baselines.sed.checkpoint import OFFICIAL_CLIP_PREFIX, OFFICIAL_HEAD_PREFIX

CFG = str(REPO_ROOT / 'configs' / 'sed' / 'sed_convnextb_oem.py')
MINI = REPO_ROOT / 'aeroseg' / 'assets' / 'mini'

# our SEDHead key -> upstream Aggregator key (the inverse of checkpoint._HEAD_RENAMES), written out
# independently so that a wrong forward map fails
_TO_OFFICIAL = (
    (r'^corr_embed\.conv\.', 'conv1.'), (r'^decoders\.(\d)\.', lambda m: f'decoder{int(m[1]) + 1}.'),
    (r'^aux_heads\.(\d)\.', r'head\1.'), (r'\.cnext\.conv_dw\.', '.cnext.dwconv.'),
    (r'\.cnext\.mlp\.fc(\d)\.', r'.cnext.pwconv\1.'), (r'\.attention\.mlp\.', '.attention.MLP.'))


def _official_layout(model):
    sd = {OFFICIAL_CLIP_PREFIX + k: v for k, v in model.clip.open_clip_state_dict().items()}
    for k, v in model.head.state_dict().items():
        for pat, rep in _TO_OFFICIAL:
            k = re.sub(pat, rep, k)
        sd[OFFICIAL_HEAD_PREFIX + k] = v
    return sd


@pytest.fixture(scope='module')
def cfg():
    c = load_config(CFG, scale='mini', data_root='/nonexistent').model
    c.clip.pretrained = None
    return c


def _build(cfg, seed):
    torch.manual_seed(seed)
    m = MODELS.build(copy.deepcopy(cfg))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return m


def test_open_clip_convnext_file(tmp_path):
    """A state dict as open_clip saves it (open_clip_pytorch_model.bin) loads into the backbone."""
    import open_clip
    from aeroseg.models.convnext_clip import ConvNeXtCLIPBackbone
    open_clip.add_model_config(str(MINI))
    torch.manual_seed(3)
    ref = open_clip.create_model('aeroseg-mini-convnext')
    sd = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in ref.state_dict().items()}
    path = tmp_path / 'open_clip_pytorch_model.bin'
    torch.save(sd, path)
    b = ConvNeXtCLIPBackbone('aeroseg-mini-convnext', pretrained=str(path), model_config_dir=str(MINI), image_size=64)
    got = b.open_clip_state_dict()
    assert set(got) == set(sd)
    assert all(torch.equal(got[k], sd[k]) for k in sd)
    sd.pop('visual.head.proj.weight')
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r'(?s)open_clip_pytorch_model.bin.*visual.head.proj.weight'):
        ConvNeXtCLIPBackbone('aeroseg-mini-convnext', pretrained=str(path), model_config_dir=str(MINI), image_size=64)


def test_official_sed_checkpoint(cfg, tmp_path):
    src = _build(cfg, 1)
    path = tmp_path / 'model_final.pth'
    torch.save({'model': _official_layout(src), 'iteration': 79999}, path)  # detectron2 checkpointer layout
    dst = _build(cfg, 2)
    load_official_sed(dst, str(path))
    a, b = src.state_dict(), dst.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    src.eval(), dst.eval()
    x = torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        assert torch.equal(src.predict_logits(x), dst.predict_logits(x))


def test_official_sed_checkpoint_errors(cfg, tmp_path):
    m = _build(cfg, 1)
    sd = _official_layout(m)
    path = tmp_path / 'bad.pth'
    torch.save({'model': dict(sd, **{'backbone.stem.weight': torch.zeros(1)})}, path)
    with pytest.raises(CheckpointError, match='backbone.stem.weight'):
        load_official_sed(m, str(path))
    sd.pop(OFFICIAL_HEAD_PREFIX + 'head0.weight')
    torch.save({'model': sd}, path)
    with pytest.raises(CheckpointError, match=r'(?s)bad.pth.*aux_heads.0.weight'):
        load_official_sed(m, str(path))

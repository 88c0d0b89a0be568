"""The per-method hooks (aeroseg.hooks) and the base segmentor's contract errors."""
import pytest
import torch
from mmseg.registry import MODELS

from aeroseg.config import REPO_ROOT, apply_mini_scale, load_config
from aeroseg.hooks import clear_outside_weights, model_class, outside_weights, set_outside_weight, weight_fields
from aeroseg.models import OpenVocabSegmentor

CATSEG = str(REPO_ROOT / 'configs/catseg/catseg_vitb16_isaid.py')
AEROSEG = str(REPO_ROOT / 'configs/aeroseg/aeroseg_vitb16_isaid.py')


def test_weight_fields_name_the_outside_weights_of_each_config():
    cat, aer = load_config(CATSEG).model, load_config(AEROSEG).model
    assert weight_fields(cat) == {'vl': 'clip.pretrained'}
    assert weight_fields(aer) == {'vl': 'clip.pretrained', 'guidance': 'guidance.checkpoint'}
    assert outside_weights(aer) == {'vl': 'openai', 'guidance': 'checkpoints/sam/sam_vit_l_0b3195.pth'}
    set_outside_weight(aer, 'vl', None)
    assert aer.clip.pretrained is None and aer.guidance.checkpoint is not None
    clear_outside_weights(aer)
    assert outside_weights(aer) == {'vl': None, 'guidance': None}
    with pytest.raises(KeyError, match="no outside weights of role 'guidance'"):
        set_outside_weight(cat, 'guidance', None)


def test_mini_scale_goes_through_the_model_type(tmp_path):
    cfg = load_config(AEROSEG, scale='mini', data_root=str(tmp_path))
    w = outside_weights(cfg.model)
    assert w['vl'].endswith('aeroseg/assets/mini/aeroseg-mini-ViT-8.pt') and w['vl'].startswith('/')
    assert w['guidance'].endswith('aeroseg/assets/mini/sam_vit_tiny_mini.pth')
    assert cfg.model.test_cfg == dict(mode='slide', resize=208, crop_size=128, stride=80, global_view=True)
    cat = load_config(CATSEG, scale='mini', data_root=str(tmp_path))
    assert cat.model.test_cfg == dict(mode='whole')  # a whole-image config gets no window
    assert cat.train_dataloader.dataset.data_root == str(tmp_path)


class _NoHooks(torch.nn.Module):
    pass


class _Bare(OpenVocabSegmentor):
    pass


@pytest.fixture
def registered():
    names = []
    for cls in (_NoHooks, _Bare):
        name = f'_TestHooks{cls.__name__}'
        MODELS.register_module(name=name, module=cls, force=True)
        names.append(name)
    yield names
    for n in names:
        MODELS._module_dict.pop(n, None)


def test_hook_errors_say_what_to_add(registered):
    with pytest.raises(KeyError, match="'NoSuchModel' is not registered"):
        model_class({'type': 'NoSuchModel'})
    with pytest.raises(TypeError, match='declares no weight_fields, mini_scale hook'):
        model_class({'type': registered[0]})
    cfg = load_config(CATSEG)
    cfg.model = dict(type=registered[1], vocabulary=dict(split='isaid'))
    assert weight_fields(cfg.model) == {}
    with pytest.raises(NotImplementedError, match='declares no mini-world version'):
        apply_mini_scale(cfg, data_root='unused')


def test_base_segmentor_checks_test_cfg_and_needs_forward_logits():
    with pytest.raises(ValueError, match="test_cfg.mode must be 'whole' or 'slide'"):
        _Bare(test_cfg=dict(mode='tiles'))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['crop'\]"):
        _Bare(test_cfg=dict(mode='slide', crop=3))
    with pytest.raises(ValueError, match="needs \\['stride'\\]"):
        _Bare(test_cfg=dict(mode='slide', crop_size=3))
    m = _Bare(test_cfg=dict(mode='whole', crop_size=64, stride=32))  # window keys ignored when whole
    assert m.test_cfg['mode'] == 'whole'
    with pytest.raises(NotImplementedError, match='must implement forward_logits'):
        m.predict_logits(torch.zeros(1, 3, 8, 8), ['ship'])
    with pytest.raises(NotImplementedError, match='not trainable'):
        m.loss(torch.zeros(1, 3, 8, 8), [])

"""OpenVocabCostSegmentor (CAT-Seg / OVRS / AerOSeg) at tiny widths: training semantics."""
import copy
import json

import pytest
import torch

open_clip = pytest.importorskip('open_clip')

from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

import aeroseg  # noqa: E402,F401
from aeroseg.datasets.splits import get_split  # noqa: E402

ARCH = 'aeroseg-test-seg-clip'
CLIP_CFG = {'embed_dim': 16,
            'vision_cfg': {'image_size': 64, 'layers': 3, 'width': 32, 'head_width': 16, 'patch_size': 8},
            'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 2}}


@pytest.fixture(scope='module', autouse=True)
def _arch(tmp_path_factory):
    d = tmp_path_factory.mktemp('clipcfg')
    (d / f'{ARCH}.json').write_text(json.dumps(CLIP_CFG))
    open_clip.add_model_config(d)


def tiny_cfg(method='aeroseg', split='isaid', **over):
    """A model config of the same classes as the full configs, at tiny widths."""
    cfg = dict(
        type='OpenVocabCostSegmentor',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=None, std=None, bgr_to_rgb=True,
                               pad_val=0, seg_pad_val=255, size=(64, 64)),
        clip=dict(type='CLIPDenseBackbone', model_name=ARCH, pretrained=None, image_size=64,
                  tap_indices=(0, 1), rotations=(0,), finetune='qv'),
        guidance=None,
        head=dict(type='CostAggregationHead', hidden_dim=16, num_heads=2, num_layers=2,
                  window_size=4, pooling_size=(2, 2), text_guidance_proj_dim=8,
                  appearance_guidance_proj_dim=8, decoder_type='catseg', decoder_dims=(16, 16),
                  decoder_guidance_dims=(8, 8), decoder_guidance_proj_dims=(4, 4)),
        back_projection=None, templates='generic',
        vocabulary=dict(split=split, train='seen', test='all'), test_mode='whole')
    if method in ('ovrs', 'aeroseg'):
        cfg['clip']['rotations'] = (0, 90, 180, 270)
        cfg['head']['decoder_type'] = 'ovrs'
    if method == 'aeroseg':
        cfg['templates'] = 'rs4'
        cfg['head'].pop('decoder_guidance_dims')
        cfg['guidance'] = dict(type='SAMGuidanceEncoder', variant='custom', embed_dim=16, depth=4,
                               num_heads=2, global_attn_indexes=(1, 3), img_size=64,
                               window_size=2, out_chans=16, inter_indices=(1, 2))
        cfg['back_projection'] = dict(type='SemanticBackProjection', target='sam', hidden_dim=32)
    for k, v in over.items():
        cfg[k] = v
    return cfg


def build(method='aeroseg', seed=0, **over):
    torch.manual_seed(seed)
    return MODELS.build(tiny_cfg(method, **over))


def batch(b=2, size=64, seed=0, split='isaid'):
    g = torch.Generator().manual_seed(seed)
    k = get_split(split).num_classes
    imgs = torch.rand(b, 3, size, size, generator=g) * 255
    samples = []
    for _ in range(b):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        lab = torch.randint(0, k, (1, size, size), generator=g)
        lab[:, : size // 4] = 255
        s.gt_sem_seg = PixelData(data=lab)
        samples.append(s)
    return imgs, samples


@pytest.mark.parametrize('method', ['catseg', 'ovrs', 'aeroseg'])
def test_train_step_changes_only_intended_parameters(method):
    model = build(method)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2,
                            weight_decay=1e-2)
    imgs, samples = batch()
    losses = model.loss(imgs, samples)
    assert set(losses) == ({'loss_bce', 'loss_backproj'} if method == 'aeroseg' else {'loss_bce'})
    sum(losses.values()).backward()
    if model.guidance is not None:
        assert all(p.grad is None for p in model.guidance.parameters())
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    clip_changed = {k for k in changed if k.startswith('clip.')}
    assert clip_changed, 'Q/V of CLIP must train'
    assert all(k.endswith(('q_proj_weight', 'v_proj_weight')) for k in clip_changed), clip_changed
    assert not any(k.startswith('guidance.') for k in changed)  # SAM frozen: bit-identical
    assert any(k.startswith('head.') for k in changed)
    if method == 'aeroseg':
        assert any(k.startswith('back_projection.') for k in changed)


def test_guidance_stays_in_eval_mode_and_back_projection_loss_falls():
    model = build('aeroseg')
    model.train()
    assert not model.guidance.encoder.training  # frozen encoder kept in eval mode
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3)
    imgs, samples = batch(seed=1)
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = model.loss(imgs, samples)['loss_backproj']
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_unseen_pixels_and_vocabulary_mapping():
    model = build('catseg')
    split = get_split('isaid')
    assert model.train_vocabulary == split.seen_classes
    assert model.test_vocabulary == split.classes
    lut = model._train_label_lut
    for pos, i in enumerate(split.seen):
        assert lut[i] == pos
    for i in split.unseen:
        assert lut[i] == 254  # unseen ids are hidden (left out of the loss), not unlabelled
    assert lut[254] == 254 and lut[255] == 255 and lut[split.num_classes] == 255


@pytest.mark.parametrize('method', ['catseg', 'aeroseg'])
def test_class_order_permutes_outputs_and_any_class_count(method):
    model = build(method).eval()
    imgs, _ = batch(b=1)
    names = ['ship', 'harbor', 'oil tank', 'water', 'runway']
    with torch.no_grad():
        a = model.predict_logits(imgs, names)
        perm = [3, 0, 4, 1, 2]
        b = model.predict_logits(imgs, [names[i] for i in perm])
        c = model.predict_logits(imgs, names[:2])  # a different number of classes than training
    assert a.shape == (1, 5, 64, 64) and c.shape == (1, 2, 64, 64)
    torch.testing.assert_close(b, a[:, perm], atol=1e-5, rtol=1e-4)


def test_predict_returns_class_maps_and_slide_mode():
    model = build('ovrs', test_mode='slide', slide_resize=96, slide_crop=64, slide_stride=32).eval()
    imgs, samples = batch(b=1, size=80)
    with torch.no_grad():
        out = model.predict(imgs, samples)
    seg = out[0].pred_sem_seg.data
    assert seg.shape == (1, 80, 80)
    assert int(seg.max()) < get_split('isaid').num_classes


def test_bad_vocabulary_and_config_errors():
    with pytest.raises(KeyError, match='unknown dataset'):
        build('catseg', vocabulary=dict(split='nope'))
    with pytest.raises(ValueError, match='duplicate class names'):
        build('catseg').set_vocabulary(['ship', 'ship'])
    with pytest.raises(ValueError, match="target='sam' needs a guidance"):
        build('catseg', back_projection=dict(type='SemanticBackProjection', target='sam'))

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
from aeroseg.models.base_segmentor import resize_to  # noqa: E402

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
        vocabulary=dict(split=split, train='seen', test='all'), test_cfg=dict(mode='whole'))
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
    model = build('ovrs', test_cfg=dict(mode='slide', resize=96, crop_size=64, stride=32, global_view=True)).eval()
    imgs, samples = batch(b=1, size=80)
    with torch.no_grad():
        out = model.predict(imgs, samples)
    seg = out[0].pred_sem_seg.data
    assert seg.shape == (1, 80, 80)
    assert int(seg.max()) < get_split('isaid').num_classes
    # no resize and an image smaller than the crop: one window of the image's size + the global view
    model.test_cfg = model._check_test_cfg(dict(mode='slide', crop_size=64, stride=32, global_view=True))
    with torch.no_grad():
        assert model.predict_logits(imgs[..., :48, :40], ['ship', 'harbor']).shape == (1, 2, 48, 40)


def test_bad_vocabulary_and_config_errors():
    with pytest.raises(KeyError, match='unknown dataset'):
        build('catseg', vocabulary=dict(split='nope'))
    with pytest.raises(ValueError, match='duplicate class names'):
        build('catseg').set_vocabulary(['ship', 'ship'])
    with pytest.raises(ValueError, match="target='sam' needs a guidance"):
        build('catseg', back_projection=dict(type='SemanticBackProjection', target='sam'))


# ----------------------------------------------------------------------------- pinned behaviours
def test_slide_merge_is_window_mean_plus_global_over_two(monkeypatch):
    """(mean of the covering windows' sigmoid + the global view's sigmoid) / 2 at every pixel.

    resize 100, crop 64, stride 32: window starts 0, 32 and the last flush one at 36, so rows and
    columns are covered by 1, 2 or 3 windows (uneven overlaps). The global view is OVRS's: the
    input (here 90 px, so it differs from the 100-px resized image) resized to the window size,
    its sigmoid resized to the slide size."""
    model = build('ovrs', test_cfg=dict(mode='slide', resize=100, crop_size=64, stride=32, global_view=True,
                                        window_batch=1)).eval()  # one window per call (pinned below)
    calls = []

    def fake(crop, names):  # per call: a known position-dependent map, one value per class
        k = len(calls)
        calls.append(tuple(crop.shape[-2:]))
        base = crop[:, :1] / 255.0 - 0.5  # depends on where the window lies in the image
        return {'logits': torch.cat([base * (c + 1) + 0.1 * k for c in range(len(names))], 1)}

    monkeypatch.setattr(model, 'forward_logits', fake)
    g = torch.Generator().manual_seed(3)
    inp = torch.rand(1, 3, 90, 90, generator=g) * 255
    names = ['ship', 'harbor']
    out = model.predict_logits(inp, names)
    img = resize_to(inp, (100, 100))
    starts = [0, 32, 36]
    assert calls == [(64, 64)] * 10  # 3 x 3 windows, then the global view, all window-sized

    def sig(k, patch):
        return torch.cat([(patch[:, :1] / 255.0 - 0.5) * (c + 1) + 0.1 * k for c in range(2)], 1).sigmoid()

    acc = torch.zeros(1, 2, 100, 100)
    cnt = torch.zeros(100, 100)
    k = 0
    for y in starts:
        for x in starts:
            acc[..., y:y + 64, x:x + 64] += sig(k, img[..., y:y + 64, x:x + 64])
            cnt[y:y + 64, x:x + 64] += 1
            k += 1
    assert set(cnt.unique().tolist()) == {1.0, 2.0, 3.0, 4.0, 6.0, 9.0}
    expected = resize_to((acc / cnt + resize_to(sig(9, resize_to(inp, (64, 64))), (100, 100))) / 2, (90, 90))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize('method', ['ovrs', 'aeroseg'])
def test_batched_windows_equal_one_window_per_forward(method):
    """window_batch groups the slide windows into batched forwards: the same scores to float
    rounding (batched kernels may round differently), any cap, several images at once."""
    model = build(method).eval()
    img = torch.rand(2, 3, 100, 100, generator=torch.Generator().manual_seed(5)) * 255
    outs, calls = {}, []
    fwd = model.forward_logits

    def counting(inputs, names):
        calls.append(inputs.shape[0])
        return fwd(inputs, names)

    model.forward_logits = counting
    for cap in (1, 4, 16):
        model.test_cfg = model._check_test_cfg(dict(mode='slide', resize=100, crop_size=64, stride=32,
                                                    global_view=True, window_batch=cap))
        calls.clear()
        with torch.no_grad():
            outs[cap] = model.predict_logits(img)
        # 9 windows + the global view of 2 images in ceil(10 / cap) forwards
        assert calls == [2 * min(cap, 10 - i) for i in range(0, 10, cap)], (cap, calls)
    for cap in (4, 16):
        torch.testing.assert_close(outs[cap], outs[1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='window_batch'):
        model._check_test_cfg(dict(mode='slide', crop_size=64, stride=32, window_batch=0))


def test_back_projection_target_gets_no_gradient():
    from aeroseg.models.back_projection import SemanticBackProjection
    bp = SemanticBackProjection(in_channels=4, num_classes=3, out_channels=5, hidden_dim=8)
    refined = torch.randn(2, 4, 3, 6, 6, requires_grad=True)
    target = torch.randn(2, 5, 6, 6, requires_grad=True)
    bp.loss(bp(refined), target * 2).backward()
    assert target.grad is None and refined.grad is not None


def test_clip_target_back_projection_gives_clip_the_detached_target_gradients():
    """target='clip' (Table 5): loss_backproj alone moves CLIP only through the reconstruction."""
    bp = dict(type='SemanticBackProjection', target='clip', hidden_dim=16)
    model = build('ovrs', back_projection=bp)
    model.train()
    imgs, samples = batch(b=1)
    clip_params = [(n, p) for n, p in model.clip.named_parameters() if p.requires_grad]
    model.zero_grad()
    model.loss(imgs, samples)['loss_backproj'].backward()
    got = {n: p.grad.clone() for n, p in clip_params if p.grad is not None}
    model.zero_grad()
    out = model.forward_logits(imgs, model.train_vocabulary)
    target = out['dense'][:, model.clip.rotations.index(0)].detach()
    model.back_projection.loss(model.back_projection(out['refined']), target).backward()
    want = {n: p.grad.clone() for n, p in clip_params if p.grad is not None}
    assert got.keys() == want.keys() and got
    for n in want:
        torch.testing.assert_close(got[n], want[n], atol=1e-7, rtol=1e-5, msg=n)


def test_unrotated_view_guides_spatial_refinement_whatever_the_rotation_order():
    """CLIP-guided OVRS / Table 3 Baseline: the head's appearance guidance is the 0-degree view."""
    model = build('ovrs').eval()
    imgs, _ = batch(b=1)
    names = list(model.test_vocabulary)
    seen = {}

    def grab(module, args):  # records the appearance guidance; returns None (args unchanged)
        seen.setdefault('spatial', args[1])

    handle = model.head.register_forward_pre_hook(grab)
    with torch.no_grad():
        dense = model.clip(imgs)['dense']
        ref = model.forward_logits(imgs, names)['logits']
    handle.remove()
    torch.testing.assert_close(seen['spatial'], dense[:, 0])  # rotations (0, 90, 180, 270)
    # the same weights with rotations (90, 0, 180, 270): permute the cost channels' conv inputs
    # (channel r * P + p, P = 1 template) to follow; the guidance must still be the 0-degree view
    cfg = tiny_cfg('ovrs')
    cfg['clip']['rotations'] = (90, 0, 180, 270)
    other = MODELS.build(cfg).eval()
    sd = copy.deepcopy(model.state_dict())
    w = sd['head.corr_embed.conv.weight']
    sd['head.corr_embed.conv.weight'] = w[:, [1, 0, 2, 3]]
    other.load_state_dict(sd)
    seen.clear()
    handle = other.head.register_forward_pre_hook(grab)
    with torch.no_grad():
        got = other.forward_logits(imgs, names)['logits']
    handle.remove()
    torch.testing.assert_close(seen['spatial'], dense[:, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)

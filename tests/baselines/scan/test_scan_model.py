"""SCANSegmentor behaviour at mini size: what trains, vocabulary protocol, the contextual-shift
ensemble, CS-CLIP files, the deformable-attention routing, and mmdet staying SCAN's own import."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from aeroseg.config import load_config
from aeroseg.utils.checkpoint import CheckpointError

CFG = 'configs/scan/scan_vitb16_isaid.py'
ROOT = os.path.join(os.path.dirname(__file__), '..', '..', '..')


@pytest.fixture(scope='module')
def mini_cfg():
    init_default_scope('mmseg')
    import baselines  # noqa: F401
    return load_config(os.path.join(ROOT, CFG), scale='mini').model


def _build(cfg, **over):
    cfg = cfg.copy()
    cfg.update(over)
    torch.manual_seed(0)
    m = MODELS.build(cfg)
    m.init_weights()
    return m


@pytest.fixture(scope='module')
def model(mini_cfg):
    return _build(mini_cfg).eval()


def _samples(n, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        lab = torch.randint(0, 15, (size // 16, size // 16), generator=g)
        s.gt_sem_seg = PixelData(data=lab.repeat_interleave(16, 0).repeat_interleave(16, 1)[None])
        out.append(s)
    return out


def test_mini_and_full_sizes(model, mini_cfg):
    assert model.cs_clip is None and not model.cs_clip_used  # the mini world has no CS-CLIP
    assert model.si.layers == (2, 3, 4) and model.replace_layers == (1, 2, 3)
    assert model.decode_head.num_classes == 9  # iSAID's seen classes
    assert model.decode_head.loss_cls.class_weight == [1.0] * 9 + [0.1]
    full = load_config(os.path.join(ROOT, CFG)).model
    assert full.cs_clip is None and full.clip.pretrained == 'datacomp_xl_s13b_b90k'
    assert full.decode_head.transformer_decoder.num_layers == 9 and full.decode_head.num_queries == 100


def test_gradients_reach_what_trains_and_not_the_clips(mini_cfg):
    m = _build(mini_cfg).train()
    x = torch.rand(2, 3, 64, 64) * 255
    losses = m.loss(x, _samples(2))
    assert {'decode.loss_cls', 'decode.loss_mask', 'decode.loss_dice', 'decode.d0.loss_cls'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None and not p.requires_grad for p in m.clip.parameters())
    for name in ('backbone', 'decode_head', 'si'):
        params = [p for p in getattr(m, name).parameters() if p.requires_grad]
        assert params and all(p.grad is not None for p in params[:3]), name
    assert m.si.learnable_weight.grad is not None and m.non_object_embedding.grad is not None
    assert any(p.grad.abs().sum() > 0 for p in m.si.LFM.parameters())


@torch.no_grad()
def test_class_order_invariance_and_class_count(model):
    x = torch.rand(1, 3, 64, 64) * 255
    names = ['ship', 'harbor', 'plane', 'bridge']
    perm = [2, 0, 3, 1]
    a = model.predict_logits(x, names)
    b = model.predict_logits(x, [names[i] for i in perm])
    assert a.shape == (1, 4, 64, 64)
    assert torch.allclose(a[:, perm], b, atol=1e-6)
    assert model.predict_logits(x, names[:2]).shape == (1, 2, 64, 64)


@torch.no_grad()
def test_ensemble_and_shift_change_scores(model):
    x = torch.rand(1, 3, 64, 64) * 255
    names = list(model.test_vocabulary)
    full = model.forward_logits(x, names)['logits']
    again = model.forward_logits(x, names)['logits']
    assert torch.equal(full, again)  # the shift is seeded: deterministic
    model.clip_ensemble_weight = 0.0
    try:
        in_vocab = model.forward_logits(x, names)['logits']
    finally:
        model.clip_ensemble_weight = 0.7
    assert (full - in_vocab).abs().max() > 1e-6
    model.mask_thr = 1.1  # no mask above the threshold: out-of-vocabulary factor 1
    try:
        none = model.forward_logits(x, names)['logits']
    finally:
        model.mask_thr = 0.4
    # upstream: queries without a crop keep out = 1, so class = in^(1 - w)
    logits, masks, _ = model.proposals(x, names)
    masks = torch.nn.functional.interpolate(masks[-1], size=(64, 64), mode='bilinear').sigmoid()
    expected = torch.einsum('bqc,bqhw->bchw', torch.softmax(logits[-1], -1)[..., :-1] ** 0.3, masks)
    assert torch.allclose(none, expected, atol=1e-6)


def test_cs_clip_official_layouts(mini_cfg, tmp_path):
    base = _build(mini_cfg)
    sd = {k: v + 0.01 for k, v in base.clip.open_clip_state_dict().items()}
    cs = tmp_path / 'CS_CLIP.pt'
    torch.save({'state_dict': {f'module.clip_model.{k}': v for k, v in sd.items()}}, cs)
    m = _build(mini_cfg, cs_clip=dict(pretrained=str(cs)))
    assert m.cs_clip_used and m.text_clip is m.cs_clip
    got = m.cs_clip.open_clip_state_dict()
    assert all(torch.equal(got[k], sd[k]) for k in sd)
    # the released SCAN.pth (detectron2 'model' dict), with the keys upstream never builds
    scan = tmp_path / 'SCAN.pth'
    torch.save({'model': {**{f'clip_adapter.clip_model.{k}': v for k, v in sd.items()},
                          'clip_adapter.clip_model.visual.cxt_decoder.w': torch.zeros(1),
                          'sem_seg_head.x': torch.zeros(1)}}, scan)
    assert _build(mini_cfg, cs_clip=dict(pretrained=str(scan))).cs_clip_used
    bad = tmp_path / 'bad.pt'
    torch.save({'state_dict': {'module.clip_model.visual.proj': torch.zeros(3, 3)}}, bad)
    with pytest.raises(CheckpointError, match='cs_clip'):
        _build(mini_cfg, cs_clip=dict(pretrained=str(bad)))


def test_bad_config_values(mini_cfg):
    with pytest.raises(ValueError, match='one sigma per layer'):
        _build(mini_cfg, si_sigmas=(1.0,))
    with pytest.raises(ValueError, match='outside 1..4'):
        _build(mini_cfg, replace_layers=(5,))
    with pytest.raises(ValueError, match='scan_dim'):
        _build(mini_cfg, scan_dim=64)


def test_deformable_attention_routing(model, monkeypatch):
    """Pure-torch kernel where the compiled CUDA op is absent: same output as mmcv's module on
    CPU, and for a CUDA value mmcv's CUDA flag is cleared for the call only."""
    from mmcv.ops import multi_scale_deform_attn as msda
    from baselines.scan import proposal
    mods = [m for m in model.modules() if isinstance(m, proposal.PortableMSDeformAttn)]
    assert len(mods) == 2  # the mini pixel decoder's 2 encoder layers
    stock = msda.MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=2,
                                               num_points=2, batch_first=True).eval()
    portable = msda.MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=2,
                                                  num_points=2, batch_first=True).eval()
    portable.load_state_dict(stock.state_dict())
    assert proposal.use_portable_msda(portable) == 1
    shapes = torch.tensor([[4, 4], [2, 2]])
    start = torch.tensor([0, 16])
    q = torch.randn(1, 20, 16)
    ref = torch.rand(1, 20, 2, 2)
    kw = dict(query=q, value=q, reference_points=ref, spatial_shapes=shapes, level_start_index=start)
    assert torch.equal(stock(**kw), portable(**kw))
    assert not proposal.msda_cuda_op_compiled()  # this suite's mmcv is CPU-only

    class FakeCuda(torch.Tensor):
        is_cuda = True

    seen = []
    monkeypatch.setattr(msda, 'IS_CUDA_AVAILABLE', True)
    monkeypatch.setattr(msda.MultiScaleDeformableAttention, 'forward',
                        lambda self, *a, **k: seen.append(msda.IS_CUDA_AVAILABLE))
    portable(q, value=q.as_subclass(FakeCuda))
    assert seen == [False] and msda.IS_CUDA_AVAILABLE is True


def test_mmdet_is_scan_only():
    """The suite (baselines included) imports without mmdet; only building SCAN needs it."""
    code = ("import sys; sys.modules['mmdet'] = None\n"
            "import aeroseg, baselines\n"
            "from baselines.scan import SCANSegmentor\n"
            "assert 'baselines.scan.proposal' not in sys.modules\n")
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': os.path.abspath(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]


@torch.no_grad()
def test_padding_is_zero_after_normalising(model, monkeypatch):
    """Test inputs are padded to a multiple of 32 with zeros in normalised space (upstream's
    ImageList), for the Swin and the CLIP alike."""
    seen = {}

    def spy(key, fn):
        def wrapped(x):
            seen[key] = x
            return fn(x)
        return wrapped

    monkeypatch.setattr(model, 'original_clip', spy('clip', model.original_clip))
    monkeypatch.setattr(model.backbone, 'forward', spy('swin', model.backbone.forward))
    out = model.forward_logits(torch.full((1, 3, 50, 40), 200.), list(model.test_vocabulary))
    assert out['logits'].shape == (1, 15, 50, 40)
    for k in ('clip', 'swin'):
        x = seen[k]
        assert x.shape[-2:] == (64, 64) and (x[..., 50:, :] == 0).all() and (x[..., :, 40:] == 0).all()
        assert (x[..., :50, :40] != 0).all()


def test_recipe_and_its_mini_schedule():
    """Official recipe (scan_vitB.yaml SOLVER) and, at mini scale, the warm-up keeping its share
    of the schedule (1.5k of 120k -> 2 of 200) instead of ending after the whole run."""
    full = load_config(os.path.join(ROOT, CFG))
    opt = full.optim_wrapper
    assert (opt.optimizer.lr, opt.optimizer.weight_decay, opt.clip_grad.max_norm) == (6e-5, 0.01, 0.01)
    assert full.train_cfg.max_iters == 120000 and full.train_dataloader.batch_size == 32
    warm, poly = full.param_scheduler
    assert (warm.start_factor, warm.end, poly.begin, poly.end) == (1e-6, 1500, 1500, 120000)
    mini = load_config(os.path.join(ROOT, CFG), scale='mini')
    warm, poly = mini.param_scheduler
    assert (warm.begin, warm.end, poly.begin, poly.end) == (0, 2, 2, mini.train_cfg.max_iters)

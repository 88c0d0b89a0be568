"""SAN behind the seam: recipe, vocabulary protocol, hidden pixels, the mmseg pitfalls, mini runs."""
import copy

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from aeroseg.config import REPO_ROOT, load_config
from aeroseg.datasets.splits import get_split
from aeroseg.datasets.transforms import HIDDEN_INDEX

CFG = str(REPO_ROOT / 'configs' / 'san' / 'san_vitb16_{}.py')


@pytest.fixture(scope='module')
def mini_cfg():
    return load_config(CFG.format('isaid'), scale='mini', data_root='/nonexistent')


def _model(cfg, **head):
    c = copy.deepcopy(cfg.model)
    c.decode_head.update(head)
    torch.manual_seed(0)
    m = MODELS.build(c)
    m.init_weights()
    return m


@pytest.fixture(scope='module')
def model(mini_cfg):
    return _model(mini_cfg)


def _batch(labels, size=128):
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(len(labels), 3, size, size, generator=g) * 255
    samples = []
    for lab in labels:
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=lab[None].long())
        samples.append(s)
    return imgs, samples


def _labels(seed=0, k=15, size=128):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, k, (size // 16, size // 16), generator=g)
    return lab.repeat_interleave(16, 0).repeat_interleave(16, 1)


def _loss(m, imgs, samples, seed=0):
    torch.manual_seed(seed)  # point sampling is random
    return {k: v.item() for k, v in m.loss(imgs, samples).items()}


# ------------------------------------------------------------------ recipe (full configs)
@pytest.mark.parametrize('ds', ['isaid', 'dlrsd', 'oem'])
def test_full_recipe(ds):
    cfg = load_config(CFG.format(ds))
    m = cfg.model
    assert m.type == 'SANSegmentor' and m.encoder_resolution == 0.5 and m.asymetric_input
    assert m.clip == dict(model_name='ViT-B-16', pretrained='openai')
    assert m.image_encoder.num_layers == 9 and m.image_encoder.out_indices == (2, 5, 8)
    assert m.decode_head.maskgen_cfg.num_layers == 3 and m.decode_head.san_cfg.num_queries == 100
    sc = m.decode_head.san_cfg
    assert (sc.embed_dims, sc.cfg_encoder.num_heads, sc.cfg_encoder.num_encode_layer) == (240, 6, 8)
    assert m.decode_head.train_cfg.num_points == 12544
    assert [l.loss_weight for l in m.decode_head.loss_decode] == [2.0, 5.0, 5.0]
    o = cfg.optim_wrapper
    assert o.type == 'OptimWrapper'  # AMP only through san_amp.py (GPU)
    assert (o.optimizer.type, o.optimizer.lr, o.optimizer.weight_decay) == ('AdamW', 1e-4, 1e-4)
    assert o.clip_grad.max_norm == 0.01
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.train_cfg.max_iters == 60000
    assert cfg.train_dataloader.batch_size == 32
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop'][0]
    assert crop.crop_size == (640, 640)
    assert 'HideUnseenClasses' in [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert m.test_cfg == dict(mode='whole')
    assert 'norm_cfg' not in m.decode_head  # no SyncBN anywhere


def test_schedule_choices():
    from mmengine.config import Config
    base = REPO_ROOT / 'configs' / '_base_' / 'schedules'
    for n in (5, 10, 15):  # AerOSeg's per-dataset iterations, a _base_ choice
        c = Config.fromfile(str(base / f'san_{n}k.py'))
        assert c.train_cfg.max_iters == n * 1000 and c.param_scheduler[0].end == n * 1000
    amp = Config.fromfile(str(base / 'san_amp.py'))
    assert amp.optim_wrapper.type == 'AmpOptimWrapper'


@pytest.mark.skipif(torch.cuda.is_available(), reason='the pitfall is CPU-only')
def test_amp_optim_wrapper_refuses_cpu():
    from mmengine.optim import build_optim_wrapper
    net = torch.nn.Linear(2, 2)
    with pytest.raises(AssertionError):
        build_optim_wrapper(net, dict(type='AmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)))
    build_optim_wrapper(net, load_config(CFG.format('isaid'), scale='mini').optim_wrapper)


# ------------------------------------------------------------------ vocabulary protocol
def test_vocabulary_swaps_between_train_and_test(model):
    split = get_split('isaid')
    seen = tuple(split.classes[i] for i in split.seen)
    assert model.train_vocabulary == seen and len(model.test_vocabulary) == 15
    assert model.decode_head.num_classes == len(seen)
    cls_ce = [l for l in model.decode_head.loss_decode if l.loss_name == 'loss_cls_ce'][0]
    assert cls_ce.class_weight == [1.0] * len(seen) + [0.1]  # SAN issue #46
    imgs, samples = _batch([_labels()])
    model.train()
    model.loss(imgs, samples)
    assert model.text_encoder.vocabulary == list(seen)
    model.eval()
    with torch.no_grad():
        assert model.predict_logits(imgs).shape == (1, 15, 128, 128)
        assert model.text_encoder.vocabulary == list(split.classes)
        assert model.predict_logits(imgs, names=['ship', 'tree']).shape == (1, 2, 128, 128)
        model.set_vocabulary(['harbor', 'plane', 'road'])
        assert model.predict_logits(imgs).shape == (1, 3, 128, 128)
    model.set_vocabulary(split.classes)


def test_class_order_equivariance(model):
    imgs, _ = _batch([_labels()])
    names = ['ship', 'plane', 'harbor', 'bridge']
    with torch.no_grad():
        a = model.eval().predict_logits(imgs, names)
        b = model.predict_logits(imgs, names[::-1])
    assert torch.allclose(a, b.flip(1), atol=1e-5)


def test_wrong_class_weight_is_refused(mini_cfg):
    with pytest.raises(ValueError, match='issue #46'):
        _model(mini_cfg, loss_decode=[dict(type='CrossEntropyLoss', loss_name='loss_cls_ce',
                                           loss_weight=2.0, class_weight=[1.0] * 16)])


def test_hidden_unseen_pixels_are_left_out(model):
    """254 (hidden unseen) gives the loss of 255 (unlabelled), not that of a seen class."""
    lab = _labels()
    hidden, unl, seen = lab.clone(), lab.clone(), lab.clone()
    unseen = torch.isin(lab, torch.tensor(get_split('isaid').unseen))
    hidden[unseen], unl[unseen], seen[unseen] = HIDDEN_INDEX, 255, 0
    model.train()
    a = _loss(model, *_batch([hidden]))
    assert a == _loss(model, *_batch([unl]))
    assert a != _loss(model, *_batch([seen]))
    # the unseen ids themselves (before HideUnseenClasses) are hidden by the label lookup too
    assert a == _loss(model, *_batch([lab]))


# ------------------------------------------------------------------ pitfalls
def test_mode_tensor_goes_through_the_seam(model):
    """mmseg's MultimodalEncoderDecoder._forward calls decode_head.forward without its
    deep_supervision_idxs (mmseg #3866); ours does not use it."""
    from mmseg.models.segmentors import MultimodalEncoderDecoder
    imgs, _ = _batch([_labels()])
    with torch.no_grad():
        with pytest.raises(TypeError, match='deep_supervision_idxs'):
            MultimodalEncoderDecoder._forward(model, imgs)
        out = model.eval()(imgs, mode='tensor')
    assert out.shape == (1, 15, 128, 128)


def test_syncbn_head_config_runs_on_one_cpu(mini_cfg):
    m = _model(mini_cfg, norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert not any(isinstance(x, torch.nn.SyncBatchNorm) for x in m.modules())
    m.train()
    loss = sum(m.loss(*_batch([_labels()])).values())
    assert torch.isfinite(loss)


def test_rec_head_init_needs_the_wrapper(model):
    """mmseg's RecWithAttnbias.init_weights without a Pretrained_Part file calls the missing
    nn.Module.init_weights; SANSegmentor.init_weights avoids it and keeps the CLIP weights."""
    with pytest.raises(AttributeError, match='init_weights'):
        copy.deepcopy(model.decode_head.rec_with_attnbias).init_weights(None)
    before = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(('image_encoder.', 'text_encoder.transformer', 'decode_head.rec'))}
    model.init_weights()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_trainable_parameters_are_sans(model):
    train = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'image_encoder.pos_embed' in train and 'text_encoder.bg_embed' in train
    assert all(n.startswith('decode_head.side_adapter_network.') for n in train
               - {'image_encoder.pos_embed', 'text_encoder.bg_embed'})
    assert not any(n.startswith(('text_encoder.transformer', 'decode_head.rec_with_attnbias',
                                 'image_encoder.layers')) for n in train)


def test_text_cache_follows_the_weights(model):
    model.eval()
    model.text_encoder.vocabulary = ['ship']
    with torch.no_grad():
        a = model.text_encoder().clone()
        sd = copy.deepcopy(model.state_dict())
        sd['text_encoder.text_projection'] = sd['text_encoder.text_projection'].flip(0)
        model.load_state_dict(sd)
        b = model.text_encoder()
        assert not torch.allclose(a, b)
        sd['text_encoder.text_projection'] = sd['text_encoder.text_projection'].flip(0)
        model.load_state_dict(sd)
        assert torch.allclose(model.text_encoder(), a)


# ------------------------------------------------------------------ mini world
def test_mini_scale(mini_cfg):
    m = mini_cfg.model
    assert m.clip.model_name == 'aeroseg-mini-ViT-8' and m.clip.pretrained.endswith('.pt')
    assert m.image_encoder.num_layers == 3 and m.decode_head.maskgen_cfg.num_layers == 1
    scales = [t for t in mini_cfg.train_dataloader.dataset.pipeline
              if t.type == 'RandomChoiceResize'][0].scales
    assert min(scales) == 64 and max(scales) == 192  # 320..960 for 640 crops -> 128 crops


def test_mini_training_steps_lower_the_loss(mini_cfg):
    m = _model(mini_cfg)
    m.train()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    imgs, samples = _batch([_labels(1), _labels(2)])
    losses = []
    for step in range(6):
        torch.manual_seed(step)
        loss = sum(m.loss(imgs, samples).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_mini_predict(model):
    imgs, samples = _batch([_labels()])
    model.eval()
    with torch.no_grad():
        out = model.predict(imgs, samples)
        odd = model.predict_logits(imgs[..., :100, :90])  # padded to 32 inside, cropped back
    assert out[0].pred_sem_seg.data.shape == (1, 128, 128)
    assert int(out[0].pred_sem_seg.data.max()) < 15
    assert odd.shape == (1, 15, 100, 90) and (odd >= 0).all()

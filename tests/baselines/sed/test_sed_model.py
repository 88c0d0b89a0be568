"""SED behind the seam: the recipe, the mini model, the loss on four outputs, detached aux heads and
guidance, the fine-tuning policy, category early rejection, and one CPU training step."""
import copy

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from aeroseg.config import REPO_ROOT, load_config
from baselines.sed.head import REJECTED_LOGIT

CFG = str(REPO_ROOT / 'configs' / 'sed' / 'sed_convnextb_{}.py')


@pytest.fixture(scope='module')
def mini_cfg():
    return load_config(CFG.format('isaid'), scale='mini', data_root='/nonexistent')


def _model(cfg, **head):
    c = copy.deepcopy(cfg.model)
    c.clip.pretrained = None  # random tiny CLIP: these tests check the wiring, not the weights
    c.head.update(head)
    torch.manual_seed(0)
    m = MODELS.build(c)
    m.init_weights()
    return m


@pytest.fixture(scope='module')
def model(mini_cfg):
    return _model(mini_cfg)


def _batch(n=2, size=128, k=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(n, 3, size, size, generator=g) * 255
    samples = []
    for _ in range(n):
        lab = torch.randint(0, k, (size // 16, size // 16), generator=g).repeat_interleave(16, 0).repeat_interleave(16, 1)
        lab[:8] = 255
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=lab[None].long())
        samples.append(s)
    return imgs, samples


@pytest.mark.parametrize('ds', ['isaid', 'dlrsd', 'oem'])
def test_full_recipe(ds):
    import open_clip
    cfg = load_config(CFG.format(ds), scale='full', data_root='/nonexistent')
    m = cfg.model
    assert m.type == 'SEDSegmentor' and m.vocabulary.split == ds
    assert (m.clip.model_name, m.clip.pretrained, m.clip.image_size, m.clip.finetune) == \
        ('convnext_base_w_320', 'laion_aesthetic_s13b_b82k', 768, 'visual')
    assert open_clip.get_pretrained_cfg('convnext_base_w_320', 'laion_aesthetic_s13b_b82k')  # a real tag
    h = m.head
    assert (h.hidden_dim, tuple(h.decoder_dims), tuple(h.decoder_guidance_proj_dims), h.num_heads,
            tuple(h.kernel_size), tuple(h.pooling_size), tuple(h.test_pooling_size)) == \
        (128, (64, 32, 16), (32, 16, 8), 4, (9, 9, 9), (2, 2), (1, 1))
    assert m.templates == 'imagenet80' and m.test_cfg.mode == 'whole'
    assert m.loss_decode.ignore_mode == 'zero_target'
    o = cfg.optim_wrapper
    assert (o.optimizer.type, o.optimizer.lr, o.optimizer.weight_decay, o.clip_grad.max_norm) == ('AdamW', 2e-4, 1e-4, 0.01)
    assert o.paramwise_cfg.custom_keys['clip.'].lr_mult == 0.01
    assert cfg.train_cfg.max_iters == 80000 and cfg.param_scheduler[0].type == 'CosineAnnealingLR'
    assert cfg.train_dataloader.batch_size == 4
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop'][0]
    assert tuple(crop.crop_size) == (768, 768)


def test_clip_drop_path(tmp_path):
    """open_clip 3.3.0's convnext_base_w_320.json sets timm_drop_path 0.1, SED's bundled 2.10.1 json
    none (timm's 0): the backbone switches stochastic depth off unless drop_path=None."""
    import json
    import open_clip
    from timm.layers import DropPath
    from aeroseg.models.convnext_clip import ConvNeXtCLIPBackbone
    assert open_clip.get_model_config('convnext_base_w_320')['vision_cfg']['timm_drop_path'] == 0.1
    cfg = json.loads((REPO_ROOT / 'aeroseg' / 'assets' / 'mini' / 'aeroseg-mini-convnext.json').read_text())
    cfg['vision_cfg']['timm_drop_path'] = 0.1
    (tmp_path / 'sed-test-droppath.json').write_text(json.dumps(cfg))

    def probs(**kw):
        b = ConvNeXtCLIPBackbone('sed-test-droppath', model_config_dir=str(tmp_path), image_size=64, **kw)
        return [m.drop_prob for m in b.modules() if isinstance(m, DropPath)]
    assert probs(drop_path=None) and max(probs(drop_path=None)) > 0
    assert probs() and set(probs()) == {0.0}


def test_mini_model(model):
    c = model.clip
    assert c.model_name == 'aeroseg-mini-convnext' and c.image_size == (256, 256) and c.grid == (8, 8)
    assert c.stage_channels == (32, 64, 128, 256) and c.finetune == 'visual'
    # SED's CLIP_FINETUNE "full": the image tower trains, the text tower does not
    named = dict(c.clip.named_parameters())
    assert all(p.requires_grad for n, p in named.items() if n.startswith('visual.'))
    assert not any(p.requires_grad for n, p in named.items() if not n.startswith('visual.'))
    assert model.head.num_templates == 80
    assert [p[0].in_channels for p in model.head.decoder_guidance_projection] == [128, 64, 32]  # res4, res3, res2


def test_loss_four_outputs_and_detached_paths(model):
    imgs, samples = _batch()
    model.train()
    losses = model.loss(imgs, samples)
    assert sorted(losses) == [f'loss_sem_seg_{i}' for i in range(4)]
    assert all(torch.isfinite(v) for v in losses.values())
    # an aux loss trains only its own head: the aux heads see detached features (SED conv_decoder)
    model.zero_grad(set_to_none=True)
    losses['loss_sem_seg_2'].backward(retain_graph=True)
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads == {'head.aux_heads.1.weight', 'head.aux_heads.1.bias'}
    # the main loss reaches the CLIP's dense path but not the stages feeding guidance only:
    # res2..res4 are detached (fusion_features ... .detach()); res5 feeds the dense features
    model.zero_grad(set_to_none=True)
    losses['loss_sem_seg_0'].backward()
    g = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert 'clip.clip.visual.head.proj.weight' in g and 'clip.clip.visual.trunk.stem.0.weight' in g
    assert 'head.corr_embed.conv.weight' in g and not any(n.startswith('head.aux_heads') for n in g)
    assert not any('.transformer.' in n or 'token_embedding' in n for n in g)  # text frozen
    model.zero_grad(set_to_none=True)


def test_fast_inference(mini_cfg):
    m = _model(mini_cfg).eval()
    imgs = torch.full((1, 3, 128, 128), 128.0)  # a flat image: few classes win any pixel
    imgs[..., :64, :] = 30.0
    with torch.no_grad():
        full = m.predict_logits(imgs)
        m.head.fast_inference, m.head.topk = True, len(m.test_vocabulary)  # nothing rejected
        same = m.predict_logits(imgs)
        m.head.topk = 1
        logits = m.forward_logits(imgs, m.test_vocabulary)['logits']
        fast = m.predict_logits(imgs)
    assert (same - full).abs().max() < 1e-5
    rejected = (logits == REJECTED_LOGIT).flatten(2).all(-1)[0]
    assert rejected.any() and not rejected.all()
    assert (fast[0, rejected] == 0).all() and (fast[0, ~rejected] > 0).all()


def test_train_step_cpu(mini_cfg):
    """One optimiser step with the config's optimiser wrapper (CLIP at x0.01, clipping) on CPU."""
    from mmengine.optim import build_optim_wrapper
    m = _model(mini_cfg)
    m.train()
    ow = build_optim_wrapper(m, copy.deepcopy(mini_cfg.optim_wrapper))
    lrs = {round(g['lr'] / mini_cfg.optim_wrapper.optimizer.lr, 4) for g in ow.optimizer.param_groups if g['params']
           and g['params'][0].requires_grad}
    assert lrs == {1.0, 0.01}
    imgs, samples = _batch(seed=1)
    before = m.clip.clip.visual.trunk.stem[0].weight.detach().clone()
    text_before = m.clip.clip.token_embedding.weight.detach().clone()
    ow.update_params(sum(m.loss(imgs, samples).values()))
    assert not torch.equal(before, m.clip.clip.visual.trunk.stem[0].weight)
    assert torch.equal(text_before, m.clip.clip.token_embedding.weight)

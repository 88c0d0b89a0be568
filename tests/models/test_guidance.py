"""SAM / SAM 2 guidance encoders: official file formats, equality with the official modules,
tap mapping, frozen-ness, and refusal of bad checkpoints.

Fast tests build the OFFICIAL classes small (segment_anything ``Sam`` with a tiny
``ImageEncoderViT``; sam2 ``build_sam2`` on the official Hiera-B+ yaml with hydra overrides that
shrink it), save their state dicts in the official file formats, and load them through our path.
Full-size builders run only in ``@pytest.mark.slow`` tests.
"""
from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

pytest.importorskip('segment_anything')

from aeroseg.models.guidance import SAM_VARIANTS, SAM2GuidanceEncoder, SAMGuidanceEncoder  # noqa: E402
from aeroseg.utils.checkpoint import CheckpointError  # noqa: E402
from _helpers import assert_close, rand_img  # noqa: E402


def _img(b=2, size=64, seed=0):
    return rand_img(b, size, seed)


_close = assert_close


def _perturb(model):
    with torch.no_grad():  # zero-initialised rel-pos / pos-embed / biases would hide key mix-ups
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


# ---------------------------------------------------------------- SAM
def _official_tiny_sam():
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)
    torch.manual_seed(0)
    enc = ImageEncoderViT(depth=4, embed_dim=32, img_size=64, mlp_ratio=4,
                          norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16,
                          qkv_bias=True, use_rel_pos=True, global_attn_indexes=(1, 3), window_size=2,
                          out_chans=32)
    sam = Sam(image_encoder=enc,
              prompt_encoder=PromptEncoder(embed_dim=32, image_embedding_size=(4, 4),
                                           input_image_size=(64, 64), mask_in_chans=4),
              mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                       transformer=TwoWayTransformer(depth=1, embedding_dim=32,
                                                                     mlp_dim=64, num_heads=2),
                                       transformer_dim=32, iou_head_depth=3, iou_head_hidden_dim=32))
    return _perturb(sam).eval()


@pytest.fixture(scope='module')
def tiny_sam(tmp_path_factory):
    sam = _official_tiny_sam()
    path = tmp_path_factory.mktemp('sam') / 'sam_tiny.pth'
    torch.save(sam.state_dict(), path)  # the official format: the whole Sam's flat state dict
    return sam, path


def test_sam_matches_official(tiny_sam):
    sam, path = tiny_sam
    ours = SAMGuidanceEncoder.tiny(checkpoint=str(path), inter_indices=(1, 2))
    img = _img()
    taps = []
    hooks = [sam.image_encoder.blocks[i].register_forward_hook(lambda m, i, o: taps.append(o))
             for i in (1, 2)]
    with torch.no_grad():
        ref = sam.image_encoder(sam.preprocess(img))  # Sam.preprocess: SAM's mean/std (+ pad)
    for h in hooks:
        h.remove()
    out = ours(img)
    _close(out['last'], ref, what='neck output vs official image_encoder')
    assert out['last'].shape == (2, 32, 4, 4)
    for o, t in zip(out['inter'], taps):
        _close(o, t.permute(0, 3, 1, 2), what='block taps')
    # 'block' mode: the last block's output; order of inter follows inter_indices
    blk = SAMGuidanceEncoder.tiny(checkpoint=str(path), last='block', inter_indices=(2, 1))(img)
    assert blk['last'].shape == (2, 32, 4, 4) and not torch.allclose(blk['last'], out['last'])
    _close(blk['inter'][0], out['inter'][1], what='inter order')
    # resizing: a 32 px input is resized to the encoder's 64
    assert ours(_img(1, 32))['last'].shape == (1, 32, 4, 4)


def test_sam_frozen_and_trainable(tiny_sam):
    _, path = tiny_sam
    enc = SAMGuidanceEncoder.tiny(checkpoint=str(path))
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert enc.training and not enc.encoder.training  # eval kept under model.train()
    img = _img(1).requires_grad_(True)
    out = enc(img)
    assert not out['last'].requires_grad and out['last'].grad_fn is None
    ft = SAMGuidanceEncoder.tiny(checkpoint=str(path), frozen=False).train()
    assert all(p.requires_grad for p in ft.parameters()) and ft.encoder.training
    out = ft(_img(1))
    out['last'].sum().backward()
    assert ft.encoder.patch_embed.proj.weight.grad is not None


def test_sam_refuses_foreign_keys_and_mismatch(tiny_sam, tmp_path):
    sam, _ = tiny_sam
    sd = dict(sam.state_dict())
    sd['backbone.extra'] = torch.zeros(1)
    p = tmp_path / 'foreign.pth'
    torch.save(sd, p)
    with pytest.raises(CheckpointError, match='backbone.extra'):
        SAMGuidanceEncoder.tiny(checkpoint=str(p))
    # a tiny file for a ViT-B encoder: shape mismatches named, with the file path
    p2 = tmp_path / 'tiny_for_vitb.pth'
    torch.save(sam.state_dict(), p2)
    with pytest.raises(CheckpointError) as e:
        SAMGuidanceEncoder.tiny(checkpoint=str(p2), embed_dim=48, num_heads=3)
    assert 'patch_embed.proj.weight' in str(e.value) and str(p2) in str(e.value)
    # missing block keys
    sd = {k: v for k, v in sam.state_dict().items() if not k.startswith('image_encoder.blocks.3.')}
    p3 = tmp_path / 'missing.pth'
    torch.save(sd, p3)
    with pytest.raises(CheckpointError, match=r'blocks\.3\.'):
        SAMGuidanceEncoder.tiny(checkpoint=str(p3))


class _Evil:
    def __reduce__(self):
        return (print, ('pickled code ran',))


def test_sam_unsafe_pickle_refused(tiny_sam, tmp_path):
    sam, _ = tiny_sam
    p = tmp_path / 'evil.pth'
    torch.save({**sam.state_dict(), 'image_encoder.x': _Evil()}, p)
    with pytest.raises(CheckpointError, match='weights_only'):
        SAMGuidanceEncoder.tiny(checkpoint=str(p))


def test_sam_variants_and_defaults(monkeypatch):
    # our dims == the arguments the official builders pass to _build_sam (build_sam.py)
    import importlib
    bs = importlib.import_module('segment_anything.build_sam')
    seen = {}
    monkeypatch.setattr(bs, '_build_sam', lambda **kw: kw)
    for name in ('vit_b', 'vit_l', 'vit_h'):
        seen[name] = bs.sam_model_registry[name]()
    for name, v in SAM_VARIANTS.items():
        kw = seen[name]
        assert (kw['encoder_embed_dim'], kw['encoder_depth'], kw['encoder_num_heads'],
                tuple(kw['encoder_global_attn_indexes'])) == (
            v['embed_dim'], v['depth'], v['num_heads'], tuple(v['global_attn_indexes'])), name
    # default taps: 8th and 16th of ViT-L's 24 blocks (paper Sec. 3.1), 0-based
    assert SAMGuidanceEncoder.tiny(depth=24, global_attn_indexes=(5, 11, 17, 23),
                                   inter_indices=None).inter_indices == (7, 15)
    with pytest.raises(KeyError):
        SAMGuidanceEncoder(variant='vit_x')
    with pytest.raises(ValueError):
        SAMGuidanceEncoder.tiny(inter_indices=(1, 9))


# ---------------------------------------------------------------- SAM 2
SAM21_CFG = 'configs/sam2.1/sam2.1_hiera_b+.yaml'
# shrink the official yaml's image encoder; the rest of SAM2Base follows its hidden dim
TINY_SAM2_OVERRIDES = [
    '++model.image_size=64',
    '++model.image_encoder.trunk.embed_dim=8', '++model.image_encoder.trunk.num_heads=1',
    '++model.image_encoder.trunk.stages=[1,1,2,1]', '++model.image_encoder.trunk.global_att_blocks=[3]',
    '++model.image_encoder.trunk.window_spec=[4,2,2,1]',
    '++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]',
    '++model.image_encoder.neck.d_model=16', '++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]',
    '++model.image_encoder.neck.position_encoding.num_pos_feats=16',
]


@pytest.fixture(scope='module')
def tiny_sam2(tmp_path_factory):
    pytest.importorskip('sam2')
    from sam2.build_sam import build_sam2
    torch.manual_seed(0)
    model = _perturb(build_sam2(SAM21_CFG, ckpt_path=None, device='cpu', mode='eval',
                                hydra_overrides_extra=TINY_SAM2_OVERRIDES))
    path = tmp_path_factory.mktemp('sam2') / 'sam2.1_tiny.pt'
    torch.save({'model': model.state_dict()}, path)  # the official file layout
    return model, path


def test_sam2_matches_official(tiny_sam2):
    model, path = tiny_sam2
    ours = SAM2GuidanceEncoder.tiny(checkpoint=str(path))
    img = _img()
    with torch.no_grad():
        ref = model.image_encoder((img / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                                  / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    out = ours(img)
    _close(out['last'], ref['vision_features'], atol=2e-5, what='last vs vision_features')
    fpn = ref['backbone_fpn']
    assert [f.shape[-1] for f in fpn] == [16, 8, 4]
    _close(out['inter'][0], fpn[1], atol=2e-5, what='inter[0] = stride 8')
    _close(out['inter'][1], fpn[0], atol=2e-5, what='inter[1] = stride 4')
    assert ours.out_channels == dict(last=16, inter=[16, 16])
    enc = ours.train()
    assert not enc.encoder.training and not any(p.requires_grad for p in enc.parameters())


def test_sam2_refuses_non_sam2_file(tiny_sam, tmp_path):
    sam, _ = tiny_sam
    p = tmp_path / 'sam1.pth'
    torch.save(sam.state_dict(), p)
    pytest.importorskip('sam2')
    with pytest.raises(CheckpointError, match='not an official SAM 2 checkpoint'):
        SAM2GuidanceEncoder.tiny(checkpoint=str(p))


def test_registry():
    from mmseg.registry import MODELS
    import aeroseg.models  # noqa: F401
    m = MODELS.build(dict(type='SAMGuidanceEncoder', variant='custom', embed_dim=32, depth=4,
                          num_heads=2, global_attn_indexes=(1, 3), img_size=64, window_size=2,
                          out_chans=32, inter_indices=(1, 2)))
    assert isinstance(m, SAMGuidanceEncoder)


# ---------------------------------------------------------------- full size (slow)
@pytest.mark.slow
def test_sam_vit_b_official_builder(tmp_path):
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from segment_anything import sam_model_registry
    sam = sam_model_registry['vit_b']()  # random weights, official builder
    p = tmp_path / 'sam_vit_b.pth'
    torch.save(sam.state_dict(), p)
    ours = SAMGuidanceEncoder('vit_b', checkpoint=str(p))
    img = _img(1, 1024)
    with torch.no_grad():
        ref = sam.image_encoder(sam.preprocess(img))
    out = ours(img)
    _close(out['last'], ref, atol=1e-4, what='vit_b neck')
    assert [t.shape[1] for t in out['inter']] == [768, 768]


@pytest.mark.slow
def test_sam_vit_l_h_shapes_match_official_builder():
    from segment_anything import sam_model_registry
    for v in ('vit_l', 'vit_h'):
        ref = {k[len('image_encoder.'):]: t.shape for k, t in sam_model_registry[v]().state_dict().items()
               if k.startswith('image_encoder.')}
        ours = {k: t.shape for k, t in SAMGuidanceEncoder(v).encoder.state_dict().items()}
        assert ours == ref, v


@pytest.mark.slow
@pytest.mark.parametrize('version,cfg', [('sam2', 'configs/sam2/sam2_hiera_b+.yaml'),
                                         ('sam2.1', SAM21_CFG)])
def test_sam2_hiera_b_plus_official(tmp_path, version, cfg):
    pytest.importorskip('sam2')
    from sam2.build_sam import build_sam2
    model = build_sam2(cfg, ckpt_path=None, device='cpu', mode='eval')
    p = tmp_path / f'{version}_hiera_base_plus.pt'
    torch.save({'model': model.state_dict()}, p)
    ours = SAM2GuidanceEncoder(version, checkpoint=str(p))
    img = _img(1, 1024)
    with torch.no_grad():
        ref = model.image_encoder(ours.preprocess(img))
    out = ours(img)
    _close(out['last'], ref['vision_features'], atol=1e-4, what='vision_features')
    assert out['last'].shape == (1, 256, 64, 64)
    assert [tuple(t.shape[-3:]) for t in out['inter']] == [(256, 128, 128), (256, 256, 256)]

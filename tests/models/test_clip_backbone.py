"""CLIPDenseBackbone and prompts: official open_clip file formats, CAT-Seg's dense path, rotations,
fine-tuning policies, text cache, and refusal of bad checkpoints.

Small custom open_clip architectures are registered from a temp dir (open_clip.add_model_config);
random weights are saved in open_clip's own state-dict format and loaded through our path.
The CAT-Seg golden file (tests/golden/catseg_clip_dense.pt) holds tiny visual weights, inputs and
the outputs of CAT-Seg's own VisualTransformer (cvlab-kaist/CAT-Seg @ 6d3a188,
cat_seg/third_party/model_vpt.py), recorded by running that file.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

open_clip = pytest.importorskip('open_clip')

from aeroseg.models.clip_backbone import CLIPDenseBackbone, SplitQKVAttention  # noqa: E402
from aeroseg.models.prompts import (IMAGENET80_TEMPLATES, expand_class_names, format_prompts,  # noqa: E402
                                    get_templates, prompt_average, reduce_synonyms)
from aeroseg.utils.checkpoint import CheckpointError  # noqa: E402
from _helpers import assert_close, rand_img  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / 'golden' / 'catseg_clip_dense.pt'
TINY = 'aeroseg-test-tiny-vit'
GOLDEN_ARCH = 'aeroseg-test-catseg-golden'
TINY_CFG = {
    'embed_dim': 16,
    'vision_cfg': {'image_size': 32, 'layers': 3, 'width': 32, 'head_width': 16, 'patch_size': 8},
    'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 2},
}


@pytest.fixture(scope='module')
def cfg_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('open_clip_cfg')
    (d / f'{TINY}.json').write_text(json.dumps(TINY_CFG))
    golden = torch.load(GOLDEN, map_location='cpu', weights_only=True)
    (d / f'{GOLDEN_ARCH}.json').write_text(json.dumps(golden['open_clip_config']))
    open_clip.add_model_config(d)
    return d


@pytest.fixture(scope='module')
def official(cfg_dir, tmp_path_factory):
    """A random official open_clip model and its state dict saved in open_clip's file format."""
    torch.manual_seed(0)
    model = open_clip.create_model(TINY, pretrained=None).eval()
    with torch.no_grad():  # non-trivial biases / norms so every parameter matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp('ckpt') / 'tiny_open_clip.bin'
    torch.save(model.state_dict(), path)
    return model, path


def _ours(path, **kw):
    args = dict(model_name=TINY, pretrained=str(path), image_size=32, tap_indices=(0, 1),
                rotations=(0,), finetune='frozen')
    args.update(kw)
    return CLIPDenseBackbone(**args).eval()


def _img(b=2, size=32, seed=1):
    return rand_img(b, size, seed)


_close = assert_close


# ---------------------------------------------------------------- prompts
def test_template_sets():
    assert get_templates('rs4') == ('A satellite image of a {}', 'A land use image of a {}',
                                    'A remote sensing image of a {}', 'An aerial image of a {}')
    assert get_templates('generic') == ('A photo of a {} in the scene',)
    assert len(IMAGENET80_TEMPLATES) == 80 == len(set(IMAGENET80_TEMPLATES))
    assert IMAGENET80_TEMPLATES[0] == 'a bad photo of a {}.' and IMAGENET80_TEMPLATES[-1] == 'a tattoo of the {}.'
    with pytest.raises(KeyError, match='rs4'):
        get_templates('nope')
    with pytest.raises(ValueError, match='exactly one'):
        get_templates(['no placeholder'])
    assert format_prompts(['ship', 'plane'], 'rs4')[4] == 'A satellite image of a plane'


def test_synonym_expansion_and_max_reduction():
    queries, idx = expand_class_names(['plane', 'ship', 'car'], {0: ('airplane',), 2: ('vehicle', 'auto')})
    assert queries == ['plane', 'airplane', 'ship', 'car', 'vehicle', 'auto']
    assert idx == [0, 0, 1, 2, 2, 2]
    scores = torch.tensor([[1., 5., 2., 0., 3., -1.]]).view(1, 6, 1, 1)
    red = reduce_synonyms(scores, idx, dim=1)
    assert red.flatten().tolist() == [5., 2., 3.]
    with pytest.raises(KeyError):
        expand_class_names(['a'], {3: ('x',)})
    e = torch.randn(3, 4, 8)
    avg = prompt_average(e)
    assert torch.allclose(avg.norm(dim=-1), torch.ones(3))
    assert torch.allclose(avg, torch.nn.functional.normalize(
        torch.nn.functional.normalize(e, dim=-1).mean(1), dim=-1))


# ---------------------------------------------------------------- official checkpoint format
def test_matches_official_open_clip(official):
    model, path = official
    ours = _ours(path)
    img = _img()
    out = ours(img, with_cls=True)
    x = (img - ours.pixel_mean) / ours.pixel_std
    with torch.no_grad():
        ref_cls = model.encode_image(x)
        ref = model.visual.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    _close(out['cls'][:, 0], ref_cls, what='pooled embedding vs open_clip encode_image')
    for ours_t, ref_t in zip(out['taps'], ref['image_intermediates']):
        _close(ours_t, ref_t, what='taps vs open_clip forward_intermediates')
    assert out['dense'].shape == (2, 1, 16, 4, 4)
    # text: the official tokenizer + encode_text, per template
    names, tpl = ['ship', 'storage tank', 'plane'], 'rs4'
    with torch.no_grad():
        ref_t = model.encode_text(open_clip.get_tokenizer(TINY)(format_prompts(names, tpl)), normalize=True)
    emb = ours.encode_text(names, tpl)
    assert emb.shape == (3, 4, 16)
    _close(emb.reshape(12, 16), ref_t, what='text vs open_clip encode_text')
    # the packed export loads back into open_clip and reproduces its weights
    fresh = open_clip.create_model(TINY, pretrained=None)
    fresh.load_state_dict(ours.open_clip_state_dict(), strict=True)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k


def test_dense_matches_catseg_golden(cfg_dir):
    g = torch.load(GOLDEN, map_location='cpu', weights_only=True)
    ours = CLIPDenseBackbone(GOLDEN_ARCH, pretrained=None, image_size=48,
                             tap_indices=g['tap_indices'], finetune='frozen').eval()
    ours.clip.visual.load_state_dict(g['visual'], strict=True)  # packed keys -> split attention
    with torch.no_grad():
        out = ours.encode_dense(g['x48'])
    b, n, d = g['dense48'].shape
    ref_dense = g['dense48'][:, 1:].reshape(b, 6, 6, d).permute(0, 3, 1, 2)
    _close(out['dense'], ref_dense, what='dense value path vs CAT-Seg (pos-embed 4x4 -> 6x6)')
    for t, ref in zip(out['taps'], g['taps48']):
        _close(t, ref[:, 1:].reshape(b, 6, 6, -1).permute(0, 3, 1, 2), what='taps vs CAT-Seg hooks')
    ours32 = CLIPDenseBackbone(GOLDEN_ARCH, image_size=32, tap_indices=(), finetune='frozen').eval()
    ours32.clip.visual.load_state_dict(g['visual'])
    with torch.no_grad():
        _close(ours32.encode_dense(g['x32'], with_cls=True)['cls'], g['pooled32'],
               what='pooled embedding vs CAT-Seg VisualTransformer(dense=False)')


def test_resize_input_to_image_size(official):
    _, path = official
    ours = _ours(path, image_size=48)
    out = ours(_img(1, 64))
    assert out['dense'].shape == (1, 1, 16, 6, 6) and out['taps'][0].shape == (1, 32, 6, 6)


# ---------------------------------------------------------------- rotations
def test_rotations_batch_and_equivariance(official):
    _, path = official
    ours = _ours(path, rotations=(0, 90, 180, 270))
    single = _ours(path, rotations=(0,))
    img = _img()
    with torch.no_grad():
        out = ours(img)
        out_rot = ours(torch.rot90(img, 1, dims=(2, 3)))
        ref0 = single(img)
    assert out['dense'].shape == (2, 4, 16, 4, 4)
    # one-batch result == separate passes, each rotated back (OVRS correlation())
    for r, a in enumerate((0, 90, 180, 270)):
        sep = single(torch.rot90(img, a // 90, dims=(2, 3)))['dense'][:, 0]
        _close(out['dense'][:, r], torch.rot90(sep, -(a // 90), dims=(2, 3)), what=f'rotation {a}')
    # rotating the input by 90 permutes the per-rotation maps (rotated by 90)
    for r in range(4):
        _close(out_rot['dense'][:, r], torch.rot90(out['dense'][:, (r + 1) % 4], 1, dims=(2, 3)),
               what=f'equivariance r={r}')
    # taps from the unrotated pass only
    for t, t0 in zip(out['taps'], ref0['taps']):
        _close(t, t0, what='taps of the unrotated pass')
    assert not torch.allclose(out['dense'][:, 0], out['dense'][:, 1])


def test_rotation_arguments(official):
    _, path = official
    with pytest.raises(ValueError, match='angles'):
        _ours(path, rotations=(0, 45))
    with pytest.raises(ValueError, match='unrotated'):
        _ours(path, rotations=(90, 180))


# ---------------------------------------------------------------- fine-tuning policies
def test_qv_policy_adamw_keeps_k_and_others_bit_identical(official):
    _, path = official
    ours = _ours(path, finetune='qv', rotations=(0, 90)).train()
    assert all(isinstance(m.attn, SplitQKVAttention) for m in ours.clip.modules() if hasattr(m, 'ln_1'))
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    n_blocks = 3 + 2  # visual + text blocks
    assert len(trainable) == 2 * n_blocks
    assert all(n.endswith(('.attn.q_proj_weight', '.attn.v_proj_weight')) for n in trainable)
    assert any(n.startswith('clip.visual.') for n in trainable) and any(
        n.startswith('clip.transformer.') for n in trainable)
    before = {n: p.detach().clone() for n, p in ours.named_parameters()}
    # as mmengine does, frozen parameters are handed to the optimizer too
    opt = torch.optim.AdamW(ours.parameters(), lr=1e-2, weight_decay=0.1)
    out = ours(_img(), with_cls=True)  # cls: the last visual block's Q gets a gradient too
    text = ours.encode_text(['ship', 'plane'], 'rs4')
    loss = out['dense'].square().mean() + out['cls'].square().mean() + text.sum()
    loss.backward()
    opt.step()
    for n, p in ours.named_parameters():
        if n in trainable:
            assert p.grad is not None, n
            assert not torch.equal(p, before[n]), f'{n} did not change'
        else:
            assert torch.equal(p, before[n]), f'{n} changed although frozen'
    ks = [n for n in before if n.endswith('k_proj_weight')]
    assert len(ks) == n_blocks


def test_qv_bias_and_other_policies(official):
    _, path = official
    qvb = _ours(path, finetune='qv', qv_bias=True)
    names = {n.rsplit('.', 1)[-1] for n, p in qvb.named_parameters() if p.requires_grad}
    assert names == {'q_proj_weight', 'v_proj_weight', 'q_proj_bias', 'v_proj_bias'}
    assert not any(p.requires_grad for p in _ours(path, finetune='frozen').parameters())
    assert all(p.requires_grad for p in _ours(path, finetune='full').parameters())
    with pytest.raises(ValueError, match='finetune'):
        _ours(path, finetune='attention')


def test_text_cache(official):
    _, path = official
    frozen = _ours(path).train()
    a = frozen.encode_text(['ship'], 'generic')
    assert frozen.encode_text(['ship'], 'generic') is a  # cached while frozen
    qv = _ours(path, finetune='qv').train()
    t = qv.encode_text(['ship'], 'generic')
    assert t.requires_grad and qv.encode_text(['ship'], 'generic') is not t  # trainable: recomputed
    qv.eval()
    e = qv.encode_text(['ship'], 'generic')
    assert qv.encode_text(['ship'], 'generic') is e  # eval: cached
    with torch.no_grad():
        qv.clip.transformer.resblocks[0].attn.v_proj_weight.add_(1.0)
    qv.load_state_dict(qv.state_dict())  # loading weights clears the cache
    assert not torch.allclose(qv.encode_text(['ship'], 'generic'), e)
    qv.train()
    assert qv._text_cache == {}


# ---------------------------------------------------------------- bad checkpoints
class _Evil:
    def __reduce__(self):
        return (print, ('pickled code ran',))


def test_unsafe_pickle_refused(official, tmp_path):
    model, _ = official
    bad = tmp_path / 'evil.bin'
    with open(bad, 'wb') as f:
        torch.save({'state_dict': model.state_dict(), 'extra': _Evil()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match='weights_only'):
        _ours(bad)


def test_key_and_shape_mismatch_named(official, tmp_path):
    model, _ = official
    sd = dict(model.state_dict())
    sd.pop('visual.ln_post.weight')
    sd['visual.bogus'] = torch.zeros(1)
    sd['text_projection'] = torch.zeros(3, 3)
    path = tmp_path / 'mismatch.bin'
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        _ours(path)
    msg = str(e.value)
    for needle in ('visual.ln_post.weight', 'visual.bogus', 'text_projection', str(path)):
        assert needle in msg, needle
    with pytest.raises(CheckpointError, match='neither an open_clip tag'):
        _ours(tmp_path / 'missing.bin')


def test_mmseg_registry(official):
    from mmseg.registry import MODELS
    import aeroseg.models  # noqa: F401  (registers)
    _, path = official
    m = MODELS.build(dict(type='CLIPDenseBackbone', model_name=TINY, pretrained=str(path),
                          image_size=32, tap_indices=(1,), finetune='frozen'))
    assert isinstance(m, CLIPDenseBackbone)


def test_safetensors_and_torchscript_files(official, tmp_path):
    model, _ = official
    from safetensors.torch import save_file
    st = tmp_path / 'open_clip_model.safetensors'
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(st))
    ours = _ours(st)
    img = _img(1)
    with torch.no_grad():
        ref = model.encode_image((img - ours.pixel_mean) / ours.pixel_std)
    _close(ours(img, with_cls=True)['cls'][:, 0], ref, what='safetensors route')
    js = tmp_path / 'ViT-B-16.pt'
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(js))
    with pytest.raises(CheckpointError, match='TorchScript'):
        _ours(js)


@pytest.mark.slow
def test_vit_b16_openai_tag_route(tmp_path, monkeypatch):
    """'openai' -> QuickGELU forced, file fetched by open_clip's downloader, read by our loader;
    dense output 24 x 24 at 384 (CAT-Seg)."""
    torch.manual_seed(0)
    ref = open_clip.create_model('ViT-B-16-quickgelu', pretrained=None).eval()
    path = tmp_path / 'open_clip_pytorch_model.bin'
    torch.save(ref.state_dict(), path)
    calls = []
    monkeypatch.setattr(open_clip, 'download_pretrained',
                        lambda cfg, cache_dir=None: calls.append(cfg) or str(path))
    ours = CLIPDenseBackbone('ViT-B-16', pretrained='openai', image_size=224, tap_indices=(3, 7),
                             finetune='frozen').eval()
    assert calls and calls[0].get('quick_gelu') is True
    assert type(ours.clip.visual.transformer.resblocks[0].mlp.gelu).__name__ == 'QuickGELU'
    img = _img(1, 224)
    with torch.no_grad():
        r = ref.encode_image((img - ours.pixel_mean) / ours.pixel_std)
        out = ours(img, with_cls=True)
    _close(out['cls'][:, 0], r, atol=1e-4, what='ViT-B/16 pooled')
    ours384 = CLIPDenseBackbone('ViT-B-16', pretrained=str(path), quick_gelu=True, image_size=384,
                                rotations=(0, 90, 180, 270), finetune='qv').eval()
    with torch.no_grad():
        out = ours384(_img(1, 384))
    assert out['dense'].shape == (1, 4, 512, 24, 24)
    assert [tuple(t.shape) for t in out['taps']] == [(1, 768, 24, 24)] * 2

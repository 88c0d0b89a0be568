"""Numerical equivalence with the official SegEarth-OV code (likyoo/SegEarth-OV, commit in
tests/golden/segearthov/README.md) on shared random weights, max |ours - official| <= 1e-5.

The golden files were recorded by tests/golden/segearthov/record_goldens.py, which runs the
official modules (float32, CPU); none of the official code is in this repository.
"""
from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch

from segearthov_helpers import GOLDEN, build_model, fixed_text, lightning_file, load_golden

from aeroseg.models.prompts import IMAGENET80_TEMPLATES
from aeroseg.utils.checkpoint import CheckpointError
from baselines.segearthov import JBULearnedRange, SimFeatUp, segearth_attention

ATOL = 1e-5


def _close(ours, ref, what):
    assert ours.shape == ref.shape, f'{what}: shape {tuple(ours.shape)} vs official {tuple(ref.shape)}'
    diff = (ours.float() - ref.float()).abs().max().item()
    assert diff <= ATOL, f'{what}: max |ours - official| = {diff:.3g} > {ATOL}'
    print(f'{what}: max |ours - official| = {diff:.2e}')  # shown with pytest -s
    return diff


# ---------------------------------------------------------------- the CLIP image path
def test_last_block_attention_matches_official(golden_arch):
    g = load_golden('clip')
    model = build_model(golden_arch, upsampler=False)
    attn = model.clip.clip.visual.transformer.resblocks[-1].attn
    x = g['attn']['x']  # (L, N, D), the official sequence-first layout
    with torch.no_grad():
        out = segearth_attention(attn, x.transpose(0, 1)).transpose(0, 1)
    _close(out, g['attn']['output'], "custom_attn(model_type='SegEarth')")


@pytest.mark.parametrize('key', ['64', '48x64'])
def test_encode_image_matches_official(golden_arch, key):
    """Whole image path: embedding, pos-embed (+0.1 resize at 48 x 64), SegEarth last block, CLS."""
    e = load_golden('clip')['encode_image'][key]
    clip = build_model(golden_arch, upsampler=False).clip
    with torch.no_grad():
        out = clip(e['raw'].float())
    _close(out['cls'], e['cls'], f'{key}: CLS token')
    _close(out['dense'].flatten(2).transpose(1, 2), e['tokens'], f'{key}: dense tokens')


# ---------------------------------------------------------------- SimFeatUp / FeatUp
def test_jbu_learned_range_matches_official():
    g = load_golden('jbu_one')
    up = JBULearnedRange(radius=5).eval()
    up.load_state_dict({k[3:]: v.float() for k, v in g['state_dict'].items() if k.startswith('up.')})
    with torch.no_grad():
        out = up(g['range']['source'], g['range']['guidance'])
    _close(out, g['range']['output'], 'JBULearnedRange (radius 5, non-square)')


def test_jbu_one_x16_matches_official(jbu_one_ckpt):
    """Also: a random-weight file in the official jbu_one key layout loads into our jbu_one."""
    g = load_golden('jbu_one')
    up = SimFeatUp(8, 'jbu_one', checkpoint=str(jbu_one_ckpt)).eval()
    assert sorted(up.state_dict()) == sorted(g['state_dict'])
    with torch.no_grad():
        out = up(g['x16']['source'].float(), g['x16']['guidance'].float())
    _close(out, g['x16']['output'], 'jbu_one x16 (3x3 -> 48x48)')


def test_jbu_stack_x16_matches_official(tmp_path):
    g = load_golden('jbu_stack')
    up = SimFeatUp(8, 'jbu_stack', checkpoint=str(lightning_file(tmp_path / 's.ckpt', g['state_dict']))).eval()
    with torch.no_grad():
        out = up(g['x16']['source'].float(), g['x16']['guidance'].float())
    _close(out, g['x16']['output'], 'jbu_stack x16 (2x3 -> 32x48)')


def _fixture():
    return json.loads((GOLDEN / 'clip_jbu_stack_cocostuff_keys.json').read_text())


def test_real_jbu_stack_checkpoint_layout(tmp_path):
    """The official clip_jbu_stack_cocostuff.ckpt (keys and shapes recorded in the fixture) fits our
    jbu_stack at ViT-B/16's 512 channels with no missing or unexpected key; a file with exactly those
    keys, in the same Lightning wrapper, loads through the weights-only loader."""
    fx = _fixture()
    ours = SimFeatUp(512, 'jbu_stack')
    expected = {k[len('upsampler.'):]: tuple(v['shape']) for k, v in fx['state_dict'].items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == expected
    sd = {k: torch.randn(s) if s else torch.randn(()) for k, s in expected.items()}
    path = lightning_file(tmp_path / 'fake_cocostuff.ckpt', sd)
    loaded = SimFeatUp(512, 'jbu_stack', checkpoint=str(path))
    assert torch.equal(loaded.up3.fixup_proj[0].weight, sd['up3.fixup_proj.0.weight'])
    with pytest.raises(CheckpointError, match='fake_cocostuff.ckpt'):
        SimFeatUp(512, 'jbu_one', checkpoint=str(path))


@pytest.mark.skipif(not os.environ.get('SEGEARTHOV_JBU_STACK_CKPT'),
                    reason='set SEGEARTHOV_JBU_STACK_CKPT to the official clip_jbu_stack_cocostuff.ckpt')
def test_real_jbu_stack_checkpoint_file():
    path = os.environ['SEGEARTHOV_JBU_STACK_CKPT']
    with open(path, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == _fixture()['sha256']
    up = SimFeatUp(512, 'jbu_stack', checkpoint=path).eval()
    with torch.no_grad():
        out = up(torch.randn(1, 512, 3, 3), torch.randn(1, 3, 48, 48))
    assert out.shape == (1, 512, 48, 48) and torch.isfinite(out).all()


# ---------------------------------------------------------------- the segmentor
@pytest.mark.parametrize('upsampler', [True, False])
def test_bias_alleviated_crop_logits_match_official(golden_arch, jbu_one_ckpt, monkeypatch, upsampler):
    g = load_golden('forward_feature')
    model = build_model(golden_arch, jbu_one_ckpt, upsampler=upsampler, cls_token_lambda=-0.3)
    fixed_text(model, monkeypatch, g)
    q = model._queries(('background', 'ship', 'harbor'), {1: ('boat',)})
    assert q.queries == ('background', 'ship', 'boat', 'harbor')   # the official query order here
    with torch.no_grad():
        out = model.crop_logits(model.clip.normalize_only(g['raw'].float()), model.text_embeddings(q.queries))
    _close(out, g['output_jbu_one' if upsampler else 'output_no_upsampler'],
           f'forward_feature ({"jbu_one" if upsampler else "no upsampler"})')


def _slide_model(golden_arch, jbu_one_ckpt, monkeypatch, g, **test_cfg):
    cfg = dict(mode='slide', resize_long=None, crop_size=64, stride=32, prob_thd=g['prob_thd'],
               bg_idx=None, background_queries=('background',))
    cfg.update(test_cfg)
    model = build_model(golden_arch, jbu_one_ckpt, vocabulary=dict(test=['ship,boat', 'harbor']),
                        test_cfg=cfg)
    fixed_text(model, monkeypatch, g)
    return model


def _reorder(t, g, q, dim):
    """Official query columns -> ours (ours put the background query last)."""
    return t.index_select(dim, torch.tensor([g['queries'].index(n) for n in q.queries]))


def test_slide_merge_matches_official(golden_arch, jbu_one_ckpt, monkeypatch):
    g = load_golden('slide')
    model = _slide_model(golden_arch, jbu_one_ckpt, monkeypatch, g)
    q = model._queries_for(None)
    with torch.no_grad():
        merged = model.cosine_logits(g['raw'].float(), q)
    _close(merged, _reorder(g['merged_logits'], g, q, 1), 'forward_slide merged logits')


def test_predict_matches_official(golden_arch, jbu_one_ckpt, monkeypatch):
    """predict: slide, resize to ori_shape, softmax x50, synonym max, background query + threshold."""
    from mmseg.structures import SegDataSample
    g = load_golden('slide')
    model = _slide_model(golden_arch, jbu_one_ckpt, monkeypatch, g)
    sample = SegDataSample(metainfo=dict(ori_shape=g['ori_shape'], img_shape=tuple(g['raw'].shape[-2:])))
    out = model.predict(g['raw'].float(), [sample])[0]
    ref_probs, ref = g['predict_probs'], g['predict_labels'].long()   # official: [background, ship, harbor]
    _close(out.seg_logits.data, ref_probs[1:], 'predict class probabilities')
    expected = torch.where(ref == g['bg_idx'], torch.full_like(ref, 255), ref - 1)
    assert torch.equal(out.pred_sem_seg.data, expected), \
        f'{int((out.pred_sem_seg.data != expected).sum())} labels differ from the official predict'
    assert set(expected.unique().tolist()) == {0, 1, 255}


@pytest.mark.parametrize('case', ['with_background', 'class_bg_idx'])
def test_postprocess_matches_official(golden_arch, case):
    """Official postprocess_result: (a) a 'background' line, bg_idx 0 -> ours: a background query,
    bg_idx None (255); (b) no background line, bg_idx = class 1 ('harbor') -> ours the same."""
    g = load_golden('postprocess')
    c = g['cases'][case]
    bg = case == 'with_background'
    model = build_model(golden_arch, upsampler=False, vocabulary=dict(test=['ship,boat', 'harbor']),
                        test_cfg=dict(prob_thd=c['prob_thd'], bg_idx=None if bg else 1,
                                      background_queries=('background',) if bg else ()))
    q = model._queries_for(None)
    official_queries = [g['queries'][i] for i in c['columns']]
    logits = g['logits'].index_select(1, torch.tensor([g['queries'].index(n) for n in q.queries]))
    assert sorted(q.queries) == sorted(official_queries)
    probs = model.class_probs(logits, q)[0]
    labels = model.labels(probs, q)
    ref_probs, ref = c['probs'], c['labels'].long()
    if bg:  # official class 0 = background -> ours: the extra column, label 255
        _close(probs, torch.cat([ref_probs[1:], ref_probs[:1]]), 'postprocess probabilities')
        ref = torch.where(ref == 0, torch.full_like(ref, 255), ref - 1)
    else:
        _close(probs, ref_probs, 'postprocess probabilities')
    assert torch.equal(labels, ref), f'{int((labels != ref).sum())} labels differ from official postprocess_result'


def test_imagenet_templates_are_the_official_ones():
    g = load_golden('postprocess')
    assert len(IMAGENET80_TEMPLATES) == g['imagenet_templates_count'] == 80
    assert hashlib.sha256('\n'.join(IMAGENET80_TEMPLATES).encode()).hexdigest() == g['imagenet_templates_sha256']

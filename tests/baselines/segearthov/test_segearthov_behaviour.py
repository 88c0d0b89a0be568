"""SegEarth-OV behaviour: class-order equivariance, the background threshold, vocabularies and
synonyms, bad input, checkpoints of the wrong format, the suite hooks, the registry."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch

from segearthov_helpers import build_model, lightning_file, load_golden

from aeroseg.datasets.splits import get_split
from aeroseg.utils.checkpoint import CheckpointError
from baselines.segearthov import (SegEarthOV, SimFeatUp, differences, load_class_file, official_background,
                                  official_entries, official_test_cfg, parse_class_entries)


def _img(b=1, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 255


def _tiny(golden_arch, jbu_one_ckpt=None, **test_cfg):
    cfg = dict(resize_long=96, crop_size=64, stride=32)
    cfg.update(test_cfg)
    return build_model(golden_arch, jbu_one_ckpt, upsampler=jbu_one_ckpt is not None, test_cfg=cfg)


# ---------------------------------------------------------------- equivariance, threshold
def test_class_order_permutation_equivariance(golden_arch, jbu_one_ckpt):
    model = _tiny(golden_arch, jbu_one_ckpt)
    names = ['ship', 'storage tank', 'plane', 'harbor', 'bridge']   # plane has the synonym airplane
    perm = [3, 0, 4, 2, 1]
    img = _img()
    p = model.predict_logits(img, names)
    p_perm = model.predict_logits(img, [names[i] for i in perm])
    assert p.shape == (1, 5, 64, 96)
    torch.testing.assert_close(p_perm, p[:, perm], atol=1e-5, rtol=0)
    # the softmax runs over all queries (airplane included), then the max per class: sum <= 1
    assert bool((p.sum(1) <= 1 + 1e-5).all()) and bool((p.sum(1) < 1 - 1e-6).any())
    plain = model.predict_logits(img, ['ship', 'harbor', 'bridge'])   # no synonyms: a distribution
    assert torch.allclose(plain.sum(1), torch.ones(1, 64, 96), atol=1e-5)


def test_threshold_sends_low_confidence_pixels_to_background(golden_arch):
    img = _img(seed=1)
    model = _tiny(golden_arch)
    probs = model.predict_logits(img)                     # the 15 iSAID classes
    top, arg = probs.max(1)
    thd = float(top.median())
    for bg_idx, bg_label in ((None, 255), (3, 3), ('bridge', 6)):
        model = _tiny(golden_arch, prob_thd=thd, bg_idx=bg_idx)
        pred = model.predict(img)[0].pred_sem_seg.data[0]
        low = top[0] < thd
        assert 0 < int(low.sum()) < low.numel()
        assert bool((pred[low] == bg_label).all()), f'bg_idx={bg_idx!r}: low-confidence pixels not sent to {bg_label}'
        assert torch.equal(pred[~low], arg[0][~low])
    assert bool((_tiny(golden_arch, prob_thd=1.0).predict(img)[0].pred_sem_seg.data == 255).all())
    assert torch.equal(_tiny(golden_arch, prob_thd=0.0).predict(img)[0].pred_sem_seg.data[0], arg[0])


def test_background_queries_compete_and_map_to_background(golden_arch, jbu_one_ckpt, monkeypatch):
    """On the golden slide setup (queries background / ship, boat / harbor), threshold off: exactly
    the pixels a background query wins go to bg_idx (None -> 255, or a class position)."""
    from segearthov_helpers import fixed_text
    g = load_golden('slide')
    for bg_idx, label in ((None, 255), (1, 1)):
        model = build_model(golden_arch, jbu_one_ckpt, vocabulary=dict(test=['ship,boat', 'harbor']),
                            test_cfg=dict(resize_long=None, crop_size=64, stride=32, prob_thd=0.0,
                                          bg_idx=bg_idx, background_queries=('background',)))
        fixed_text(model, monkeypatch, g)
        img = g['raw'].float()
        probs = model.predict_logits(img)
        assert probs.shape[1] == 2 and bool((probs.sum(1) < 1 - 1e-4).any())  # background takes a share
        q = model._queries_for(None)
        full = model.class_probs(model.cosine_logits(img, q), q)[0]            # 2 classes + background
        bg_wins = full.argmax(0) == 2
        pred = model.predict(img)[0].pred_sem_seg.data[0]
        assert 0 < int(bg_wins.sum()) < bg_wins.numel()
        assert bool((pred[bg_wins] == label).all())
        assert torch.equal(pred[~bg_wins], full.argmax(0)[~bg_wins])


def test_predict_resizes_logits_to_ori_shape(golden_arch):
    from mmseg.structures import SegDataSample
    model = _tiny(golden_arch)
    model.set_vocabulary(['ship', 'harbor', 'bridge'])   # no synonyms: probabilities sum to 1
    img = _img(h=64, w=96)
    s = SegDataSample(metainfo=dict(ori_shape=(50, 70), img_shape=(64, 96)))
    out = model.predict(img, [s])[0]
    assert out.seg_logits.data.shape == (3, 50, 70) and out.pred_sem_seg.data.shape == (1, 50, 70)
    assert torch.allclose(out.seg_logits.data.sum(0), torch.ones(50, 70), atol=1e-5)


def test_training_free_and_eval_only(golden_arch, jbu_one_ckpt):
    model = _tiny(golden_arch, jbu_one_ckpt)
    with pytest.raises(RuntimeError, match='training-free'):
        model.loss(_img(), [])
    img = _img(seed=3)
    ref = model.predict_logits(img)
    model.train()   # dropout in the upsampler must stay off
    assert not model.upsampler.training and not model.clip.training
    assert torch.equal(model.predict_logits(img), ref)


def test_whole_mode_and_single_class(golden_arch):
    model = _tiny(golden_arch, mode='whole', resize_long=None)
    assert model.predict_logits(_img(h=40, w=72), ['ship', 'harbor']).shape == (1, 2, 40, 72)
    out = model.predict_logits(_img(), ['ship'])
    assert torch.allclose(out, torch.ones_like(out))   # one query: softmax over one class
    model.set_vocabulary(['ship'])
    pred = model.predict(_img())[0]
    assert pred.seg_logits.data.shape == (1, 64, 96) and bool((pred.pred_sem_seg.data == 0).all())


# ---------------------------------------------------------------- vocabularies, synonyms
def test_vocabulary_from_split_with_synonyms(golden_arch):
    model = _tiny(golden_arch)
    split = get_split('isaid')
    assert model.test_vocabulary == split.classes
    q = model._queries_for(None)
    assert q.queries[q.queries.index('plane') + 1] == 'airplane'    # splits.py synonyms
    model.set_vocabulary(['building,roof,house', 'plane'])
    assert model.test_vocabulary == ('building', 'plane')
    assert model._queries_for(None).queries == ('building', 'roof', 'house', 'plane', 'airplane')


def test_class_file_vocabulary(golden_arch, tmp_path):
    f = tmp_path / 'cls_mine.txt'
    f.write_text('tree,forest\nwater\n')
    assert load_class_file(str(f)) == ['tree,forest', 'water']
    model = build_model(golden_arch, upsampler=False, vocabulary=dict(test=str(f)))
    assert model.test_vocabulary == ('tree', 'water') and model.test_synonyms == {0: ('forest',)}
    with pytest.raises(ValueError, match='nor an existing class-name file'):
        build_model(golden_arch, upsampler=False, vocabulary=dict(test=str(tmp_path / 'missing.txt')))
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        load_class_file(str(tmp_path / 'missing.txt'))
    (tmp_path / 'blank.txt').write_text('tree\n\nwater')
    with pytest.raises(ValueError, match='blank line'):
        load_class_file(str(tmp_path / 'blank.txt'))


def test_bad_vocabulary_and_test_cfg(golden_arch):
    with pytest.raises(KeyError, match='not a class of the vocabulary'):
        _tiny(golden_arch, bg_idx='clutter')                    # an unknown class name
    model = _tiny(golden_arch, bg_idx='harbor')
    with pytest.raises(KeyError, match="'harbor' is not a class"):
        model.set_vocabulary(['ship', 'plane'])
    assert model.test_vocabulary == get_split('isaid').classes  # unchanged after the refusal
    with pytest.raises(ValueError, match='outside 0..14'):
        _tiny(golden_arch, bg_idx=15)
    for thd in (-0.1, 1.5, 'high'):
        with pytest.raises(ValueError, match=r'prob_thd must be a probability in \[0, 1\]'):
            _tiny(golden_arch, prob_thd=thd)
    with pytest.raises(ValueError, match='unknown test_cfg keys'):
        _tiny(golden_arch, slide_crop=224)
    with pytest.raises(ValueError, match="'slide' or 'whole'"):
        _tiny(golden_arch, mode='sliding')
    with pytest.raises(ValueError, match='duplicate'):
        parse_class_entries(['ship', 'ship,boat'])
    with pytest.raises(ValueError, match='empty name'):
        parse_class_entries(['ship,'])
    with pytest.raises(TypeError, match='list of strings'):
        model.predict_logits(_img(), 'ship')
    with pytest.raises(KeyError, match='unknown dataset'):
        build_model(golden_arch, upsampler=False, vocabulary=dict(split='nope', test='all'))


# ---------------------------------------------------------------- checkpoints
def test_wrong_checkpoint_format_names_file_and_keys(tmp_path):
    stack = {k: v for k, v in SimFeatUp(8, 'jbu_stack').state_dict().items()}
    path = lightning_file(tmp_path / 'stack_layout.ckpt', stack)
    with pytest.raises(CheckpointError) as e:
        SimFeatUp(8, 'jbu_one', checkpoint=str(path))
    msg = str(e.value)
    assert 'stack_layout.ckpt' in msg and 'up.range_temp' in msg and 'up1.range_temp' in msg
    assert 'upsampler.up.*' in msg                     # says which layout was expected
    sd = load_golden('jbu_one')['state_dict']
    path = lightning_file(tmp_path / 'dim8.ckpt', sd)
    with pytest.raises(CheckpointError, match=r'dim8.ckpt(.|\n)*fixup_proj.1.weight: file \(8, 8, 1, 1\) vs model \(16, 16, 1, 1\)'):
        SimFeatUp(16, 'jbu_one', checkpoint=str(path))
    bare = tmp_path / 'bare.pt'
    torch.save({k: v.float() for k, v in sd.items()}, bare)   # a bare state dict of the module also loads
    assert torch.equal(SimFeatUp(8, 'jbu_one', checkpoint=str(bare)).up.range_temp, sd['up.range_temp'].float())
    with pytest.raises(CheckpointError, match='file not found'):
        SimFeatUp(8, checkpoint=str(tmp_path / 'none.ckpt'))

    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    evil = tmp_path / 'evil.ckpt'
    with open(evil, 'wb') as f:
        pickle.dump({'state_dict': Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError, match='evil.ckpt'):
        SimFeatUp(8, checkpoint=str(evil))
    with pytest.raises(ValueError, match='unknown upsampler'):
        SimFeatUp(8, 'carafe')


# ---------------------------------------------------------------- names, hooks, registry
def test_official_class_names_recorded_beside_ours():
    """Where the official cls_*.txt differ from splits.py (class id -> (ours, official))."""
    assert differences('isaid') == {
        1: (('storage tank',), ('store tank',)),
        5: (('ground track field', 'running track'), ('ground track field',)),
        12: (('soccer ball field', 'soccer field', 'football field'), ('soccer ball field',)),
        13: (('plane', 'airplane'), ('plane',))}
    assert sorted(differences('oem')) == [0, 1, 2, 4, 5, 6, 7]     # all but 'road'
    assert differences('oem')[4] == (('tree',), ('tree', 'forest'))
    assert differences('loveda') == {1: (('building',), ('building', 'roof', 'house')),
                                     5: (('forest', 'tree'), ('forest',)),
                                     6: (('agricultural', 'farmland'), ('agricultural',))}
    assert differences('potsdam') == {0: (('impervious surface', 'road'), ('road', 'parking lot')),
                                      2: (('low vegetation', 'grass'), ('low vegetation',)),
                                      5: (('clutter',), ('clutter', 'background'))}
    assert differences('vaihingen') == {0: (('impervious surface', 'road'), ('impervious surface',)),
                                        2: (('low vegetation', 'grass'), ('low vegetation',))}
    assert official_background('isaid') == ('background',) and official_background('loveda') == ()
    assert len(official_entries('isaid')) == 15
    with pytest.raises(KeyError, match='no class file for DLRSD'):
        differences('dlrsd')


def test_official_thresholds_per_dataset(golden_arch):
    """configs/cfg_*.py thresholds on our label sets; DLRSD (no official config) our choice: none."""
    expected = {'isaid': (0.4, None, 255), 'oem': (0.1, None, 255), 'loveda': (0.3, 0, 0),
                'potsdam': (0.1, 5, 5), 'vaihingen': (0.1, 5, 5), 'dlrsd': (0.0, None, 255)}
    for name, (thd, bg, label) in expected.items():
        cfg = official_test_cfg(name)
        assert (cfg['prob_thd'], cfg['bg_idx']) == (thd, bg), name
        assert cfg['background_queries'] == (('background',) if name in ('isaid', 'oem') else ())
        model = build_model(golden_arch, upsampler=False, vocabulary=dict(split=name, test='all'), test_cfg=cfg)
        assert model._check_bg(model._queries_for(None)) == label, name


def test_weight_fields_and_mini_scale():
    from mmengine.config import Config
    from aeroseg.config import MINI_OVERLAY
    cfg = dict(type='SegEarthOV', clip=dict(type='SegEarthCLIP', pretrained='openai'),
               upsampler=dict(type='SimFeatUp', checkpoint='x.ckpt'), test_cfg=dict(prob_thd=0.4))
    assert SegEarthOV.weight_fields(cfg) == {'vl': 'clip.pretrained', 'upsampler': 'upsampler.checkpoint'}
    overlay = Config.fromfile(str(MINI_OVERLAY))
    mini = SegEarthOV.mini_scale(copy.deepcopy(cfg), overlay)
    assert mini['clip']['model_name'] == overlay.clip.model_name and mini['clip']['quick_gelu'] is None
    assert mini['test_cfg'] == dict(prob_thd=0.4, crop_size=128, resize_long=256, stride=64)
    assert mini['upsampler']['checkpoint'].endswith('simfeatup_jbu_one_mini.ckpt') and mini['feature_up'] is False
    assert SegEarthOV.weight_fields(mini) == {'vl': 'clip.pretrained'}   # off: its file is not needed
    model = SegEarthOV(**{k: v for k, v in mini.items() if k != 'type'}).eval()   # the real tiny CLIP
    assert model.upsampler is None
    assert model.clip.image_size == (128, 128) and model.clip.patch_size == (8, 8)
    out = model.predict(torch.rand(1, 3, 128, 128) * 255)[0]
    assert out.pred_sem_seg.data.shape == (1, 128, 128)


def test_registry_and_quick_gelu(golden_arch):
    import baselines  # noqa: F401
    from mmseg.registry import MODELS
    for name in ('SegEarthOV', 'SegEarthCLIP', 'SimFeatUp'):
        assert MODELS.get(name) is not None, name
    import open_clip
    model = build_model(golden_arch, upsampler=False)
    act = model.clip.clip.visual.transformer.resblocks[0].mlp.gelu
    assert isinstance(act, open_clip.transformer.QuickGELU)     # forced by default (OpenAI CLIP)

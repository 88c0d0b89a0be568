"""CLIP -> mmseg SAN layout (clip_to_san) and official SAN checkpoints (official_san_to_mmseg).

The converted SAN CLIP must give open_clip's image and text embeddings (random tiny weights,
QuickGELU as OpenAI's, and the GELU mini CLIP); an official-layout random state dict (the key
layout the official code produced when the goldens were recorded) must load every key.
"""
import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F

from aeroseg.config import MINI_OVERLAY, REPO_ROOT
from aeroseg.utils.checkpoint import CheckpointError
from baselines.san import SANSegmentor, clip_to_san, official_san_to_mmseg

from test_san_golden import GOLDEN, _tiny_cfg, official_state_dict

TINY = dict(embed_dim=32, quick_gelu=True,
            vision_cfg=dict(image_size=32, layers=4, width=32, head_width=8, patch_size=8),
            text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=4, layers=2))


def _open_clip(tmp_path, cfg=TINY, name='san-conv-tiny'):
    import open_clip
    with open(tmp_path / f'{name}.json', 'w') as f:
        json.dump(cfg, f)
    open_clip.add_model_config(str(tmp_path))
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None, force_quick_gelu=cfg.get('quick_gelu', False))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p += 0.05 * torch.randn(p.shape, generator=g)
    path = tmp_path / f'{name}.pt'
    torch.save(model.state_dict(), path)
    return model.eval(), str(path)


def _san_for(name, cfg_dir, path, cfg=TINY, split=3):
    c = dict(clip_width=cfg['vision_cfg']['width'], clip_layers=cfg['vision_cfg']['layers'],
             clip_heads=cfg['vision_cfg']['width'] // cfg['vision_cfg']['head_width'],
             patch=cfg['vision_cfg']['patch_size'], clip_image=cfg['vision_cfg']['image_size'],
             split=split, text_width=cfg['text_cfg']['width'], text_layers=cfg['text_cfg']['layers'],
             text_heads=cfg['text_cfg']['heads'], context=cfg['text_cfg']['context_length'],
             embed=cfg['embed_dim'], side_width=24, side_heads=2, side_depth=4, side_patch=16,
             queries=5, deep_supervision=[3, 4], dec_channels=16, dec_layers=3,
             bias_heads=cfg['vision_cfg']['width'] // cfg['vision_cfg']['head_width'],
             vocabulary=['ship', 'plane'], templates=['a photo of a {}.'])
    mcfg = _tiny_cfg(c, cfg_dir)
    mcfg['clip'] = dict(model_name=name, model_config_dir=cfg_dir, pretrained=path)
    mcfg['image_encoder']['out_indices'] = tuple(range(split))
    return SANSegmentor(**mcfg).eval()


def san_image_embedding(model, x):
    """The SAN-layout CLIP run as plain CLIP: encoder blocks, then the recognition blocks without
    sos tokens or bias, ln_post, proj (what clip2mmseg's split must preserve)."""
    feat, cls = model.image_encoder(x)[-1]
    rec = model.decode_head.rec_with_attnbias
    t = torch.cat([cls[None], feat.flatten(2).permute(2, 0, 1)])  # (1 + L, B, C)
    for layer in rec.layers:
        t = layer(t)
    return F.normalize(rec.proj(rec.ln_post(t[0])), dim=-1)


def test_converted_clip_gives_open_clip_embeddings(tmp_path):
    clip, path = _open_clip(tmp_path)
    model = _san_for('san-conv-tiny', str(tmp_path), path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = F.normalize(clip.encode_image(x), dim=-1)
        err = (san_image_embedding(model, x) - ref).abs().max().item()
    assert err < 1e-5, err
    names = ['ship', 'storage tank']
    import open_clip
    tok = open_clip.get_tokenizer('san-conv-tiny')
    with torch.no_grad():
        ref = F.normalize(clip.encode_text(tok([f'a photo of a {n}.' for n in names])), dim=-1)
        model.text_encoder.vocabulary = names
        ours = model.text_encoder()[:-1] / model.text_encoder.logit_scale.exp()
        ours = ours / ours.norm(dim=-1, keepdim=True)  # cat_bg renormalises each row: no change
    assert (ours - ref).abs().max().item() < 1e-5
    # the converter is what makes this pass: a wrong split breaks it
    sd = torch.load(path, weights_only=True)
    with pytest.raises(CheckpointError, match='does not fit'):
        model.load_clip({k: v for k, v in sd.items() if 'resblocks.3.' not in k})
    assert any(k.startswith('decode_head.rec_with_attnbias.layers.0.') for k in clip_to_san(sd, 3))
    assert not any(k.startswith('image_encoder.layers.3.') for k in clip_to_san(sd, 3))


def test_quick_gelu_follows_the_clip(tmp_path):
    """OpenAI weights need QuickGELU (open_clip 3.3.0 only warns): with GELU the embeddings differ;
    a config stating the wrong activation is refused."""
    clip, path = _open_clip(tmp_path)
    cfg = dict(TINY, quick_gelu=False)
    with open(tmp_path / 'san-conv-gelu.json', 'w') as f:
        json.dump(cfg, f)
    gelu = _san_for('san-conv-gelu', str(tmp_path), path, cfg=cfg)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = F.normalize(clip.encode_image(x), dim=-1)
        assert (san_image_embedding(gelu, x) - ref).abs().max() > 1e-3
    mcfg = _tiny_cfg(dict(clip_width=32, clip_layers=4, clip_heads=4, patch=8, clip_image=32,
                          split=3, text_width=32, text_layers=2, text_heads=4, context=16,
                          embed=32, side_width=24, side_heads=2, side_depth=4, side_patch=16,
                          queries=5, deep_supervision=[3, 4], dec_channels=16, dec_layers=3,
                          bias_heads=4, vocabulary=['a'], templates=['{}']), str(tmp_path))
    mcfg['clip'] = dict(model_name='san-conv-tiny', model_config_dir=str(tmp_path), pretrained=path)
    mcfg['image_encoder']['act_cfg'] = dict(type='GELU')
    with pytest.raises(ValueError, match='QuickGELU'):
        SANSegmentor(**mcfg)


def test_mini_clip_converts(tmp_path):
    """The pretrained tiny CLIP of the mini world (GELU, context 32) in SAN's layout."""
    import open_clip
    from mmengine.config import Config
    m = Config.fromfile(str(MINI_OVERLAY)).clip
    cfg_dir, ckpt = str(REPO_ROOT / m.model_config_dir), str(REPO_ROOT / m.pretrained)
    open_clip.add_model_config(cfg_dir)
    clip = open_clip.create_model(m.model_name, pretrained=None)
    clip.load_state_dict(torch.load(ckpt, weights_only=True))
    clip.eval()
    with open(os.path.join(cfg_dir, f'{m.model_name}.json')) as f:
        cfg = json.load(f)
    model = _san_for(m.model_name, cfg_dir, ckpt, cfg=cfg, split=3)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        ref = F.normalize(clip.encode_image(x), dim=-1)
        assert (san_image_embedding(model, x) - ref).abs().max().item() < 1e-5
        tok = open_clip.get_tokenizer(m.model_name)
        ref = F.normalize(clip.encode_text(tok(['a photo of a harbor.'])), dim=-1)
        model.text_encoder.vocabulary = ['harbor']
        ours = model.text_encoder()[:1]
        assert (F.normalize(ours, dim=-1) - ref).abs().max().item() < 1e-5


def test_official_layout_state_dict_loads(tmp_path):
    """Random tensors in the official SAN checkpoint layout (keys and shapes as the official code
    produced them, tests/golden/san) load into SANSegmentor through official_san_to_mmseg."""
    g = torch.load(GOLDEN, weights_only=True)
    sd = official_state_dict(g)
    sd['criterion.empty_weight'] = torch.ones(4)  # released checkpoints carry the criterion buffer
    gen = torch.Generator().manual_seed(3)
    rand = {k: torch.randn(v.shape, generator=gen) for k, v in sd.items()}
    mapped = official_san_to_mmseg(rand)
    assert not any(k.startswith('criterion') for k in mapped)
    assert len(mapped) == len(sd) - 2  # criterion and the attn_mask buffer dropped, nothing merged
    assert torch.equal(mapped['decode_head.rec_with_attnbias.proj.weight'],
                       rand['clip_rec_head.proj'].t())
    assert torch.equal(mapped['decode_head.side_adapter_network.conv_clips.2.1.conv.weight'],
                       rand['side_adapter_network.fusion_layers.layer_2.input_proj.1.weight'])
    with open(tmp_path / 'san-golden-tiny.json', 'w') as f:
        json.dump(g['clip_cfg'], f)
    model = SANSegmentor(**_tiny_cfg(g['config'], str(tmp_path)))
    model.load_state_dict(mapped, strict=True)  # every key of the model, nothing left over
    assert torch.equal(model.text_encoder.bg_embed, rand['ov_classifier.bg_embed'])
    with pytest.raises(KeyError, match='unexpected SAN key'):
        official_san_to_mmseg({'pixel_decoder.weight': torch.zeros(1)})


def test_clip_to_san_refuses_other_layouts():
    with pytest.raises(KeyError, match='not an OpenAI / open_clip ViT'):
        clip_to_san({'vision_model.embeddings.patch_embedding.weight': torch.zeros(1)}, 9)

"""mmseg's SAN modules inside SANSegmentor vs the official MendelXu/SAN code, on shared weights.

``tests/golden/san/san_goldens.pt`` was recorded by ``tests/golden/san/record_goldens.py`` from
the official modules (commit in the file). The official state dict is mapped by
``official_san_to_mmseg`` and loaded strictly into a SANSegmentor of the same tiny widths, so a
wrong key map fails here too. Tolerance 1e-5 (float32, CPU).
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from baselines.san import SANSegmentor, official_san_to_mmseg

GOLDEN = os.path.join(os.path.dirname(__file__), '..', '..', 'golden', 'san', 'san_goldens.pt')
TOL = 1e-5


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, weights_only=True)


def _tiny_cfg(c, config_dir):
    """A SANSegmentor config with the golden's widths (record_goldens.py CFG)."""
    return dict(
        clip=dict(model_name='san-golden-tiny', model_config_dir=config_dir, pretrained=None),
        image_encoder=dict(
            type='VisionTransformer', img_size=(c['clip_image'],) * 2, patch_size=c['patch'],
            patch_pad=0, in_channels=3, embed_dims=c['clip_width'], num_layers=c['split'],
            num_heads=c['clip_heads'], mlp_ratio=4, out_origin=True,
            out_indices=tuple(range(c['split'])), qkv_bias=True, with_cls_token=True,
            output_cls_token=True, patch_bias=False, pre_norm=True,
            norm_cfg=dict(type='LN', eps=1e-5), interpolate_mode='bicubic',
            frozen_exclude=['pos_embed']),
        text_encoder=dict(type='SANTextEncoder', templates=c['templates'],
                          embed_dims=c['text_width'], num_layers=c['text_layers'],
                          num_heads=c['text_heads'], output_dims=c['embed'],
                          context_length=c['context'], norm_cfg=dict(type='LN', eps=1e-5)),
        decode_head=dict(
            type='SideAdapterCLIPHead', num_classes=None,
            deep_supervision_idxs=[c['deep_supervision'][0]],
            san_cfg=dict(in_channels=3, clip_channels=c['clip_width'], embed_dims=c['side_width'],
                         patch_size=c['side_patch'], patch_bias=True, num_queries=c['queries'],
                         cfg_encoder=dict(num_encode_layer=c['side_depth'],
                                          num_heads=c['side_heads'], mlp_ratio=4),
                         fusion_index=[0, 1, 2, 3],
                         cfg_decoder=dict(num_heads=c['bias_heads'], num_layers=1,
                                          embed_channels=c['dec_channels'],
                                          mlp_channels=c['dec_channels'],
                                          num_mlp=c['dec_layers'], rescale=True),
                         norm_cfg=dict(type='LN', eps=1e-6)),
            maskgen_cfg=dict(sos_token_format='cls_token', sos_token_num=c['queries'],
                             cross_attn=False, num_layers=c['clip_layers'] - c['split'],
                             embed_dims=c['clip_width'], num_heads=c['clip_heads'], mlp_ratio=4,
                             qkv_bias=True, out_dims=c['embed'], final_norm=True,
                             norm_cfg=dict(type='LN', eps=1e-5), frozen_exclude=[]),
            align_corners=False,
            train_cfg=dict(num_points=64, oversample_ratio=3.0, importance_sample_ratio=0.75,
                           assigner=dict(type='HungarianAssigner', match_costs=[
                               dict(type='ClassificationCost', weight=2.0),
                               dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                               dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)])),
            loss_decode=[dict(type='CrossEntropyLoss', loss_name='loss_cls_ce', loss_weight=2.0,
                              class_weight=None),
                         dict(type='CrossEntropyLoss', use_sigmoid=True,
                              loss_name='loss_mask_ce', loss_weight=5.0),
                         dict(type='DiceLoss', ignore_index=None, naive_dice=True, eps=1,
                              loss_name='loss_mask_dice', loss_weight=5.0)]),
        vocabulary=dict(train=list(c['vocabulary']), test=list(c['vocabulary'])),
        encoder_resolution=0.5)


def official_state_dict(g):
    sd = dict(g['state_dict'])
    t = g['token_embedding']  # not stored: regenerated as record_goldens.token_embedding
    sd['ov_classifier.token_embedding.weight'] = torch.randn(
        t['shape'], generator=torch.Generator().manual_seed(t['seed'])) * t['std']
    return sd


@pytest.fixture(scope='module')
def model(golden, tmp_path_factory):
    d = tmp_path_factory.mktemp('clipcfg')
    with open(d / 'san-golden-tiny.json', 'w') as f:
        json.dump(golden['clip_cfg'], f)
    m = SANSegmentor(**_tiny_cfg(golden['config'], str(d)))
    mapped = official_san_to_mmseg(official_state_dict(golden))
    own = m.state_dict()
    assert sorted(mapped) == sorted(own), (set(own) ^ set(mapped))  # every key, both ways
    m.load_state_dict(mapped, strict=True)
    return m.eval()


def _close(a, b, what):
    assert a.shape == b.shape, f'{what}: shape {tuple(a.shape)} vs official {tuple(b.shape)}'
    err = (a - b).abs().max().item()
    assert err <= TOL, f'{what}: max |mmseg - official| = {err:.3g}'
    return err


def test_golden_is_from_the_official_code(golden):
    assert golden['upstream'].startswith('MendelXu/SAN@') and len(golden['upstream']) == 13 + 40


def test_text_classifier_matches(model, golden):
    model.text_encoder.vocabulary = list(golden['config']['vocabulary'])
    with torch.no_grad():
        _close(model.text_encoder(), golden['text_classifier'], 'text classifier (names + bg)')


def test_clip_features_match(model, golden):
    x = golden['inputs']['image']
    with torch.no_grad():
        feats = model.image_encoder(F.interpolate(x, scale_factor=0.5, mode='bilinear'))
    for i, f in enumerate(feats):
        _close(f[0], golden['clip_features'][i], f'CLIP feature {i}')
    _close(feats[-1][1], golden['clip_cls'], 'CLIP cls token at the split')


def test_side_adapter_network_matches(model, golden):
    x = golden['inputs']['image']
    with torch.no_grad():
        feats = model.image_encoder(F.interpolate(x, scale_factor=0.5, mode='bilinear'))
        san = model.decode_head.side_adapter_network
        preds, biases = san(x, feats, model.decode_head.deep_supervision_idxs)  # training outputs
        _close(torch.stack(preds), golden['side_mask_preds_train'], 'side masks (deep supervision)')
        _close(torch.stack([b[0] for b in biases]), golden['side_attn_bias_train'], 'attn bias (ds)')
        preds, biases = san(x, feats, [])  # inference: the last block only
        _close(preds[-1], golden['side_mask_preds'], 'side masks')
        _close(biases[-1][0], golden['side_attn_bias'], 'attention bias')


def test_mlp_mask_decoder_matches(model, golden):
    dec = model.decode_head.side_adapter_network.mask_decoder
    with torch.no_grad():
        masks, bias = dec(golden['inputs']['decoder_query'], golden['inputs']['decoder_x'])
    _close(masks, golden['decoder_masks'], 'MLPMaskDecoder masks')
    _close(bias[0], golden['decoder_bias'], 'MLPMaskDecoder attention bias')


def test_rec_with_attnbias_matches(model, golden):
    rec = model.decode_head.rec_with_attnbias
    x = golden['inputs']['image']
    bias = [golden['side_attn_bias']]
    with torch.no_grad():
        feats = model.image_encoder(F.interpolate(x, scale_factor=0.5, mode='bilinear'))
        h, w = feats[-1][0].shape[-2:]
        mask = rec._build_attn_biases(bias, target_shape=(h, w))[0]
        _close(mask, golden['rec_attn_mask'], 'RecWithAttnbias attention mask')
        # the mask's structure (SAN): sos tokens see themselves and the patches only
        q = golden['config']['queries']
        assert (mask[:, :q, :q].diagonal(dim1=-2, dim2=-1) == 0).all()
        assert (mask[:, :, :q][:, ~torch.eye(mask.shape[1], q, dtype=torch.bool)] == -100).all()
        assert (mask[:, :q, q] == -100).all()
        _close(rec(bias, feats[-1]), golden['mask_embeds'], 'RecWithAttnbias mask embeddings')


def test_semantic_inference_through_the_wrapper(model, golden):
    """The whole inference path of the wrapper (RGB 0..255 in) vs the official SAN.forward path."""
    x = golden['inputs']['image']
    rgb = x * model.pixel_std + model.pixel_mean  # the wrapper normalises RGB 0..255 itself
    with torch.no_grad():
        out = model.forward_logits(rgb, golden['config']['vocabulary'])
        scores = model.predict_logits(rgb)
    _close(out['mask_logits'], golden['mask_logits'], 'class logits of the masks')
    err = _close(out['logits'], golden['semseg'], 'semantic_inference')
    n_queries = model.decode_head.side_adapter_network.query_embed.shape[1]
    _close(scores * n_queries, golden['semseg'], 'predict_logits (scores x queries)')
    assert 0 <= float(scores.min()) and float(scores.max()) <= 1
    assert err <= TOL

"""Behaviour of the shared cost-aggregation blocks: cost volume, refinement, decoders, head, loss."""
import pytest
import torch
import torch.nn.functional as F

from aeroseg.models.cost_volume import CorrelationEmbedding, cosine_cost_volume, derotate_dense_features
from aeroseg.models.decoders import AttentionUpsampleBlock, UpsampleBlock
from aeroseg.models.head import CostAggregationHead
from baselines.catseg import convert_official_aggregator_state_dict
from aeroseg.models.losses import OpenVocabBCELoss
from aeroseg.models.refinement import ClassRefinement, GuidedSwinBlock, SpatialRefinement

torch.set_num_threads(1)
H = W = 8            # cost map; window 4 / shift 2 -> 4 windows and the shift mask are exercised
D, P, CIN = 12, 2, 10


def tiny_head(guidance=True, decoder_type='catseg', rotations=1, **kw):
    cfg = dict(num_templates=P, num_rotations=rotations, hidden_dim=16, num_heads=2, num_layers=2,
               window_size=4, pooling_size=(2, 2), test_pooling_size=(1, 1), pad_len=8,
               decoder_type=decoder_type, decoder_dims=(16, 16))
    if guidance:
        cfg.update(text_guidance_dim=D, text_guidance_proj_dim=8, appearance_guidance_dim=D,
                   appearance_guidance_proj_dim=8, decoder_guidance_mode='transpose',
                   decoder_guidance_in_dims=(CIN, CIN), decoder_guidance_dims=(8, 8),
                   decoder_guidance_proj_dims=(4, 4))
    else:
        cfg.update(text_guidance_dim=0, appearance_guidance_dim=0, decoder_guidance_dims=None)
    cfg.update(kw)
    return CostAggregationHead(**cfg)


def tiny_inputs(n_cls, B=2, seed=0, rotations=1):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(B, rotations, D, H, W, generator=g)
    text = torch.randn(n_cls, P, D, generator=g)
    app = torch.randn(B, D, H, W, generator=g)
    dec = [torch.randn(B, CIN, H, W, generator=g), torch.randn(B, CIN, H, W, generator=g)]
    return img, text, app, dec


def run(head, img, text, app, dec, guidance=True):
    corr = cosine_cost_volume(img, text)
    if guidance:
        return head(corr, app, text, dec)
    return head(corr)


# ----------------------------------------------------------------------------- cost volume
def test_cost_volume_is_cosine_with_rotation_major_channels():
    img = torch.randn(1, 3, D, 4, 5)
    text = torch.randn(2, P, D)
    corr = cosine_cost_volume(img, text)
    assert corr.shape == (1, 3 * P, 2, 4, 5)
    for r in range(3):
        for p in range(P):
            ref = F.cosine_similarity(img[0, r][None], text[1, p][None, :, None, None], dim=1)[0]
            assert torch.allclose(corr[0, r * P + p, 1], ref, atol=1e-6)
    # batch-specific text gives the same as shared text
    assert torch.allclose(cosine_cost_volume(img, text[None]), corr)


def test_derotate_undoes_rot90_so_rotation_copies_agree():
    base = torch.randn(2, D, 6, 6)
    rotated = [torch.rot90(base, k, dims=(2, 3)) for k in range(4)]   # an exactly equivariant encoder
    back = derotate_dense_features(rotated)
    assert back.shape == (2, 4, D, 6, 6)
    for r in range(4):
        assert torch.equal(back[:, r], base)
    corr = cosine_cost_volume(back, torch.randn(3, P, D))
    assert torch.allclose(corr[:, :P], corr[:, P:2 * P]) and torch.allclose(corr[:, :P], corr[:, 3 * P:])


def test_cost_volume_rejects_mismatched_dims():
    with pytest.raises(ValueError, match='text_feats'):
        cosine_cost_volume(torch.randn(1, 1, D, 4, 4), torch.randn(3, P, D + 1))


def test_correlation_embedding_is_per_class():
    emb = CorrelationEmbedding(P, hidden_dim=8, kernel_size=7)
    assert emb.conv.kernel_size == (7, 7) and emb.conv.padding == (3, 3)
    corr = torch.randn(2, P, 3, 6, 6)
    out = emb(corr)
    assert out.shape == (2, 8, 3, 6, 6)
    assert torch.allclose(out[:, :, 1], emb.conv(corr[:, :, 1]), atol=1e-6)
    with pytest.raises(ValueError, match='rotations x templates'):
        emb(torch.randn(2, P + 1, 3, 6, 6))


# ----------------------------------------------------------------------------- refinement
def test_swin_window_shrinks_and_bad_sizes_fail_clearly():
    blk = GuidedSwinBlock(16, 0, 2, window_size=12, shift_size=6)
    x = torch.randn(2, 8, 8, 16)
    assert blk(x).shape == x.shape                     # window 12 > map 8: one window, no shift
    blk = GuidedSwinBlock(16, 0, 2, window_size=4, shift_size=2)
    with pytest.raises(ValueError, match='multiple of window_size'):
        blk(torch.randn(1, 10, 10, 16))


def test_spatial_refinement_uses_guidance_in_queries_only():
    torch.manual_seed(0)
    blk = SpatialRefinement(16, 8, 2, window_size=4).eval()
    x, g = torch.randn(1, 16, 2, 8, 8), torch.randn(1, 8, 8, 8)
    assert not torch.allclose(blk(x, g), blk(x, g * 2))   # guidance changes the attention
    assert blk.block_1.attn.v.in_features == 16           # values see the cost only
    assert blk.block_1.attn.q.in_features == 24
    with pytest.raises(ValueError, match='guidance_dim=8'):
        blk(x, None)


def test_class_refinement_pools_in_training_only():
    torch.manual_seed(0)
    blk = ClassRefinement(16, 0, 2, pooling_size=(2, 2), test_pooling_size=(1, 1), pad_len=0)
    x = torch.randn(1, 16, 3, 8, 8)
    train_out = blk.train()(x)
    eval_out = blk.eval()(x)
    assert not torch.allclose(train_out, eval_out)
    same = ClassRefinement(16, 0, 2, pooling_size=(2, 2), test_pooling_size=None, pad_len=0)
    same.load_state_dict(blk.state_dict())
    assert torch.allclose(same.train()(x), same.eval()(x))


# ----------------------------------------------------------------------------- decoders
def test_decoder_blocks_shapes_and_attention_params():
    x, g = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 4, 8, 8)
    for cls in (UpsampleBlock, AttentionUpsampleBlock):
        out = cls(16, 16, 4)(x, g)
        assert out.shape == (2, 16, 3, 8, 8)
    att = AttentionUpsampleBlock(16, 16, 4)
    assert att.cconv.in_channels == 12 and att.cconv.out_channels == 4 and att.sconv.in_channels == 1
    with torch.no_grad():   # zero attention convs: g' = g, the block equals the plain one
        for m in (att.cconv, att.sconv):
            m.weight.zero_()
            m.bias.zero_()
    plain = UpsampleBlock(16, 16, 4)
    plain.load_state_dict({k: v for k, v in att.state_dict().items() if not k.startswith(('cconv', 'sconv'))})
    assert torch.allclose(att(x, g), plain(x, g), atol=1e-6)
    with pytest.raises(ValueError, match='guidance'):
        UpsampleBlock(16, 16, 4)(x, torch.randn(2, 4, 4, 4))


# ----------------------------------------------------------------------------- head
@pytest.mark.parametrize('guidance,decoder_type', [(True, 'catseg'), (True, 'ovrs'), (False, 'catseg')])
def test_head_is_equivariant_to_class_order(guidance, decoder_type):
    torch.manual_seed(0)
    head = tiny_head(guidance, decoder_type).eval()
    img, text, app, dec = tiny_inputs(5)
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        out = run(head, img, text, app, dec, guidance)
        outp = run(head, img, text[perm], app, dec, guidance)
    assert out['logits'].shape == (2, 5, 4 * H, 4 * W)
    assert out['refined'].shape == (2, 16, 5, H, W)
    assert torch.allclose(outp['logits'], out['logits'][:, perm], atol=1e-5)
    assert torch.allclose(outp['refined'], out['refined'][:, :, perm], atol=1e-5)
    # and the classes do interact (class attention): dropping one changes the others
    with torch.no_grad():
        fewer = run(head, img, text[:4], app, dec, guidance)
    assert not torch.allclose(fewer['logits'], out['logits'][:, :4], atol=1e-4)


def test_head_trains_on_one_vocabulary_and_tests_on_another():
    torch.manual_seed(0)
    head = tiny_head(True, 'ovrs', rotations=4)
    opt = torch.optim.SGD(head.parameters(), lr=1e-2)
    img, text, app, dec = tiny_inputs(3, rotations=4)
    out = run(head.train(), img, text, app, dec)
    labels = torch.randint(0, 3, (2, 4 * H, 4 * W))
    OpenVocabBCELoss()(out['logits'], labels).backward()
    opt.step()
    head.eval()
    for n in (1, 7, 12):      # 12 > pad_len = 8: the 8 best-scoring classes are kept
        img, text, app, dec = tiny_inputs(n, seed=n, rotations=4)
        with torch.no_grad():
            out = run(head, img, text, app, dec)
        assert out['logits'].shape == (2, n, 4 * H, 4 * W)
        assert torch.isfinite(out['logits']).all()
        dropped = (out['logits'] == -100).flatten(2).all(-1)
        assert int(dropped.sum(1).max()) == max(0, n - 8)


def test_gradients_reach_the_expected_parameters():
    torch.manual_seed(0)
    head = tiny_head(True, 'ovrs').train()
    img, text, app, dec = tiny_inputs(3)
    img.requires_grad_(True)
    out = run(head, img, text, app, dec)
    out['logits'].square().mean().backward()
    no_grad = [n for n, p in head.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == [], f'parameters without gradient: {no_grad}'
    assert img.grad is not None and img.grad.abs().sum() > 0   # reaches the CLIP features

    head.zero_grad(set_to_none=True)
    out = run(head, img, text, app, dec)
    out['refined'].square().mean().backward()     # e.g. AerOSeg's back-projection loss alone
    got = {n.split('.')[0] for n, p in head.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {'corr_embed', 'layers', 'guidance_projection', 'text_guidance_projection'} <= got
    assert not got & {'decoders', 'head', 'decoder_guidance_upsample', 'decoder_guidance_projection'}


def test_resize_mode_takes_guidance_at_any_resolution():
    torch.manual_seed(0)
    head = tiny_head(True, 'ovrs', decoder_guidance_mode='resize', decoder_guidance_dims=(6, 6)).eval()
    img, text, app, _ = tiny_inputs(3)
    sam_like = [torch.randn(2, 6, 64, 64), torch.randn(2, 6, 64, 64)]
    with torch.no_grad():
        out = run(head, img, text, app, sam_like)
    assert out['logits'].shape == (2, 3, 4 * H, 4 * W)
    assert head.decoder_guidance_upsample is None
    t_head = tiny_head(True, 'catseg')
    with pytest.raises(ValueError, match="decoder_guidance_mode='resize'"):
        run(t_head, img, text, app, [torch.randn(2, CIN, 16, 16)] * 2)


def test_head_guidance_errors_are_clear():
    head = tiny_head(True)
    img, text, app, dec = tiny_inputs(3)
    corr = cosine_cost_volume(img, text)
    with pytest.raises(ValueError, match='appearance_guidance is None'):
        head(corr, None, text, dec)
    with pytest.raises(ValueError, match='cost resolution'):
        head(corr, torch.randn(2, D, 2 * H, 2 * W), text, dec)
    with pytest.raises(ValueError, match='text_guidance is None'):
        head(corr, app, None, dec)


def test_registered_and_official_keys_convert():
    from mmseg.registry import MODELS
    head = MODELS.build(dict(type='CostAggregationHead', hidden_dim=16, num_heads=2, num_layers=1,
                             window_size=4, text_guidance_dim=0, appearance_guidance_dim=0,
                             decoder_guidance_dims=None, decoder_dims=(16, 16), pad_len=4))
    assert isinstance(head, CostAggregationHead)
    assert isinstance(MODELS.build(dict(type='OpenVocabBCELoss')), OpenVocabBCELoss)
    # a detectron2-style checkpoint: CLIP keys dropped, upstream names renamed
    sd = {'sem_seg_head.predictor.clip_model.visual.proj': torch.zeros(1),
          'sem_seg_head.predictor.transformer.conv1.weight': torch.zeros(1),
          'sem_seg_head.predictor.transformer.layers.0.attention.MLP.0.weight': torch.zeros(1),
          'sem_seg_head.predictor.transformer.layers.0.swin_block.block_2.attn_mask': torch.zeros(1),
          'sem_seg_head.predictor.transformer.decoder2.up.weight': torch.zeros(1),
          'upsample1.weight': torch.zeros(1), 'pixel_mean': torch.zeros(1)}
    assert sorted(convert_official_aggregator_state_dict(sd)) == sorted([
        'corr_embed.conv.weight', 'layers.0.attention.mlp.0.weight', 'decoders.1.up.weight',
        'decoder_guidance_upsample.0.weight'])


# ----------------------------------------------------------------------------- loss
def _loss_inputs():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    labels = torch.randint(0, 3, (2, 6, 6))
    labels[:, :2] = 255
    return logits, labels


def test_loss_zero_target_counts_ignored_pixels_as_negatives():
    logits, labels = _loss_inputs()
    valid = labels != 255
    target = F.one_hot(labels.clamp(max=2), 3).permute(0, 3, 1, 2).float() * valid[:, None]
    ref = F.binary_cross_entropy_with_logits(logits, target)
    loss = OpenVocabBCELoss(ignore_mode='zero_target')(logits, labels)
    assert torch.allclose(loss, ref)
    loss.backward()
    ign_grad = logits.grad.permute(0, 2, 3, 1)[~valid]
    assert torch.allclose(ign_grad, torch.sigmoid(logits.detach()).permute(0, 2, 3, 1)[~valid] / logits.numel())


def test_loss_exclude_ignores_ignored_pixels():
    logits, labels = _loss_inputs()
    valid = labels != 255
    lv = logits.permute(0, 2, 3, 1)[valid]
    ref = F.binary_cross_entropy_with_logits(lv, F.one_hot(labels[valid], 3).float())
    loss = OpenVocabBCELoss(ignore_mode='exclude')(logits, labels)
    assert torch.allclose(loss, ref)
    assert not torch.allclose(loss, OpenVocabBCELoss()(logits, labels))
    loss.backward()
    assert (logits.grad.permute(0, 2, 3, 1)[~valid] == 0).all()
    changed = logits.detach().clone()
    changed[:, :, :2] = 50.0                     # only ignored rows change
    assert torch.allclose(OpenVocabBCELoss(ignore_mode='exclude')(changed, labels), loss)
    assert not torch.allclose(OpenVocabBCELoss()(changed, labels), OpenVocabBCELoss()(logits, labels))


def test_loss_hidden_pixels_left_out_by_default_and_zero_target_on_request():
    logits, labels = _loss_inputs()
    labels[:, 2] = 254                                   # hidden (unseen) row; rows 0-1 unlabelled
    known = (labels != 255) & (labels != 254)
    unlabelled = labels == 255
    lg = logits.permute(0, 2, 3, 1)
    target = F.one_hot(labels.clamp(max=2) * known, 3).float() * known[..., None]
    keep = known | unlabelled                            # upstream's rule for 255, 254 left out
    ref = F.binary_cross_entropy_with_logits(lg[keep], target[keep])
    loss = OpenVocabBCELoss()(logits, labels)
    assert torch.allclose(loss, ref)
    loss.backward()
    g = logits.grad.permute(0, 2, 3, 1)
    assert (g[labels == 254] == 0).all() and (g[unlabelled] != 0).all()
    # 'zero_target' for hidden pixels = the old behaviour: 254 counts like 255 (all-zero targets)
    as_unlabelled = labels.masked_fill(labels == 254, 255)
    assert torch.allclose(OpenVocabBCELoss(hidden_mode='zero_target')(logits, labels),
                          OpenVocabBCELoss()(logits, as_unlabelled))
    assert not torch.allclose(loss, OpenVocabBCELoss()(logits, as_unlabelled))
    # both excluded: only the labelled pixels count
    both = OpenVocabBCELoss(ignore_mode='exclude')(logits, labels)
    assert torch.allclose(both, F.binary_cross_entropy_with_logits(lg[known], target[known]))
    with pytest.raises(ValueError, match='hidden_mode'):
        OpenVocabBCELoss(hidden_mode='drop')
    with pytest.raises(ValueError, match='both 255'):
        OpenVocabBCELoss(hidden_index=255)


def test_loss_weight_name_resize_and_errors():
    logits, labels = _loss_inputs()
    loss = OpenVocabBCELoss(loss_weight=2.0)
    assert loss.loss_name == 'loss_bce'
    assert torch.allclose(loss(logits, labels), 2 * OpenVocabBCELoss()(logits, labels))
    big = labels.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.allclose(OpenVocabBCELoss()(logits, big),
                          OpenVocabBCELoss()(F.interpolate(logits, size=(12, 12), mode='bilinear'), big))
    with pytest.raises(ValueError, match='training'):
        OpenVocabBCELoss()(logits, torch.full((2, 6, 6), 5))
    all_ignored = torch.full((2, 6, 6), 255)
    z = OpenVocabBCELoss(ignore_mode='exclude')(logits, all_ignored)
    assert z.item() == 0.0
    z.backward()


@pytest.mark.slow
@pytest.mark.parametrize('kwargs', [dict(), dict(num_rotations=4, decoder_type='ovrs')])
def test_full_size_head_at_384_input(kwargs):
    """Official sizes (ViT-B/16 at 384: 24 x 24 cost map, CLIP dim 512, width 768), 15 classes."""
    torch.manual_seed(0)
    head = CostAggregationHead(**kwargs).eval()
    R = kwargs.get('num_rotations', 1)
    img, text = torch.randn(1, R, 512, 24, 24), torch.randn(15, 1, 512)
    dec = [torch.randn(1, 768, 24, 24), torch.randn(1, 768, 24, 24)]
    perm = torch.randperm(15)
    with torch.no_grad():
        out = head(cosine_cost_volume(img, text), img[:, 0], text, dec)
        outp = head(cosine_cost_volume(img, text[perm]), img[:, 0], text[perm], dec)
    assert out['logits'].shape == (1, 15, 96, 96) and out['refined'].shape == (1, 128, 15, 24, 24)
    assert torch.allclose(outp['logits'], out['logits'][:, perm], atol=1e-4)

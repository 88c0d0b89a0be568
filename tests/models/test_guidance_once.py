"""Guidance shared by the classes (pixels) projected once per image equals upstream's per-copy
concatenation (aeroseg/models/shared_guidance.py), in output and gradients, and costs fewer FLOPs."""
import pytest
import torch

from aeroseg.models.decoders import AttentionUpsampleBlock, UpsampleBlock
from aeroseg.models.refinement import ClassRefinement, SpatialRefinement
from aeroseg.models.shared_guidance import add_per_image
from _helpers import assert_same_runs, fwd_bwd_switched, switch


def _both(cls, block, x, g):
    return fwd_bwd_switched(cls, 'guidance_once', block, x, g)


def _assert_same(res, atol=1e-5):
    assert_same_runs(res, atol=atol)
    assert res[True].flops < res[False].flops  # the point of it: fewer FLOPs


def test_add_per_image_is_the_repeated_sum():
    p, g = torch.randn(2 * 3 * 4, 5), torch.randn(2 * 4, 5)   # 2 images, 3 repeats, 4 windows
    ref = p.view(2, 3, 4, 5) + g.view(2, 1, 4, 5)
    torch.testing.assert_close(add_per_image(p, g, 2), ref.view(-1, 5), atol=0, rtol=0)
    with pytest.raises(ValueError, match='do not split'):
        add_per_image(p, torch.randn(5, 5), 2)


@pytest.mark.parametrize('cls', [UpsampleBlock, AttentionUpsampleBlock])
def test_decoder_block(cls):
    torch.manual_seed(0)
    block = cls(48, 32, guidance_channels=16)
    res = _both(UpsampleBlock, block, torch.randn(2, 48, 5, 6, 6), torch.randn(2, 16, 12, 12))
    _assert_same(res)


def test_spatial_refinement_shifted_and_unshifted_windows():
    torch.manual_seed(1)
    # 16 x 16 map, window 8: block_1 unshifted, block_2 shifted by 4 (masked), 3 classes, 2 images
    block = SpatialRefinement(dim=32, guidance_dim=16, num_heads=4, window_size=8)
    res = _both(SpatialRefinement, block, torch.randn(2, 32, 3, 16, 16), torch.randn(2, 16, 16, 16))
    _assert_same(res)


@pytest.mark.parametrize('training', [False, True])   # pooled 2 x 2 in training, not at test
@pytest.mark.parametrize('pad_len,dedup', [(0, True), (40, True), (40, False)])
def test_class_refinement(training, pad_len, dedup):
    torch.manual_seed(2)
    block = ClassRefinement(hidden_dim=32, guidance_dim=16, num_heads=4, pad_len=pad_len).train(training)
    if pad_len:
        with torch.no_grad():
            block.padding_tokens.normal_()
            block.padding_guidance.normal_()
    with switch(ClassRefinement, 'dedup_padding', dedup):
        res = _both(ClassRefinement, block, torch.randn(2, 32, 7, 8, 8), torch.randn(2, 7, 16))
    _assert_same(res)
    # the text guidance takes part: the same features with other guidance give another output
    torch.manual_seed(2)
    x, g = torch.randn(2, 32, 7, 8, 8), torch.randn(2, 7, 16)
    with torch.no_grad():
        assert (block(x, g) - block(x, torch.randn(2, 7, 16))).abs().max() > 1e-3

"""The fused window attention (F.scaled_dot_product_attention) equals upstream's explicit form."""
import pytest
import torch

from aeroseg.models.refinement import GuidedWindowAttention, SpatialRefinement
from _helpers import assert_same_runs, fwd_bwd_switched, of_largest, switch


def test_fused_window_attention_matches_explicit_forward_and_backward():
    torch.manual_seed(0)
    # 16 x 16 map, window 8: block_1 unshifted (no mask), block_2 shifted by 4 (masked), 3 classes
    block = SpatialRefinement(dim=32, guidance_dim=16, num_heads=4, window_size=8)
    x, g = torch.randn(2, 32, 3, 16, 16), torch.randn(2, 16, 16, 16)
    assert GuidedWindowAttention.fused
    assert_same_runs(fwd_bwd_switched(GuidedWindowAttention, 'fused', block, x, g),
                     param_tol=lambda v: dict(atol=1e-4, rtol=1e-4))
    # the mask matters: dropping it changes the shifted block (so the test can tell)
    att = block.block_2.attn
    t = torch.randn(8, 64, 48)
    from aeroseg.models.refinement import shifted_window_mask
    m = shifted_window_mask(16, 16, 8, 4)
    assert (att(t, m) - att(t, None)).abs().max() > 1e-3


def test_fused_attention_with_mask_matches_explicit():
    torch.manual_seed(1)
    from aeroseg.models.refinement import shifted_window_mask
    att = GuidedWindowAttention(dim=32, guidance_dim=8, num_heads=2)
    t = torch.randn(3 * 4, 64, 40)
    m = shifted_window_mask(16, 16, 8, 4)
    with switch(GuidedWindowAttention, 'fused', False):
        ref = att(t, m)
    with switch(GuidedWindowAttention, 'fused', True):
        torch.testing.assert_close(att(t, m), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('training', [False, True])
def test_deduplicated_padding_matches_padded_class_refinement(training):
    """One weighted padding token instead of pad_len - T copies: same output and gradients."""
    from aeroseg.models.refinement import ClassRefinement
    torch.manual_seed(2)
    block = ClassRefinement(hidden_dim=32, guidance_dim=16, num_heads=4, pad_len=40).train(training)
    with torch.no_grad():  # upstream inits them to zero; random ones make the test sharper
        block.padding_tokens.normal_()
        block.padding_guidance.normal_()
    x, g = torch.randn(2, 32, 7, 8, 8), torch.randn(2, 7, 16)
    res = fwd_bwd_switched(ClassRefinement, 'dedup_padding', block, x, g)
    assert_same_runs(res, param_tol=of_largest(floor=0))  # sums of up to 8*8*2 tokens
    # the padding takes part: another pad_len changes the output
    block.pad_len = 20
    assert (block(x, g) - res[True].out).abs().max() > 1e-4

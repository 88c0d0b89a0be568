"""SAM's attention as one fused kernel equals segment_anything's explicit forward (and its gradients)."""
import pytest
import torch

from aeroseg.models.guidance import SAMGuidanceEncoder
from aeroseg.models.sam_attention import FusedSAMAttention


@pytest.fixture
def restore_switch():
    yield
    FusedSAMAttention.fused = True


def _encoder():
    torch.manual_seed(0)
    # windowed blocks (window 3 on a 8 x 8 grid: padded to 9 x 9, as SAM pads) and global blocks
    enc = SAMGuidanceEncoder(variant='custom', embed_dim=32, depth=4, num_heads=4, global_attn_indexes=(1, 3),
                             img_size=128, window_size=3, out_chans=16, inter_indices=(0, 2), frozen=False)
    with torch.no_grad():  # official SAM inits rel_pos to zero; random values make the bias count
        for n, p in enc.named_parameters():
            if 'rel_pos' in n:
                p.normal_(0, 0.5)
    return enc


def _run(enc, img):
    enc.zero_grad(set_to_none=True)
    out = enc(img)
    loss = sum((t * torch.linspace(-1, 1, t.numel()).view_as(t)).sum() for t in [out['last'], *out['inter']])
    loss.backward()
    return [out['last'].detach(), *[t.detach() for t in out['inter']]], \
        {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}


def test_fused_sam_attention_matches_the_explicit_forward_and_backward(restore_switch):
    enc = _encoder()
    n_attn = sum(isinstance(m, FusedSAMAttention) for m in enc.modules())
    assert n_attn == 4  # every block's attention was turned, the state dict keys are SAM's
    assert all(k.startswith(('patch_embed', 'pos_embed', 'blocks', 'neck')) for k in enc.encoder.state_dict())
    img = torch.rand(2, 3, 128, 128) * 255
    assert FusedSAMAttention.fused
    y1, g1 = _run(enc, img)
    FusedSAMAttention.fused = False
    y0, g0 = _run(enc, img)
    for a, b in zip(y1, y0):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert set(g1) == set(g0) and any('rel_pos' in n for n in g0)
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], atol=1e-3, rtol=1e-3, msg=n)


def test_the_relative_position_bias_reaches_the_fused_attention():
    enc = _encoder()
    img = torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        y = enc(img)['last']
        for n, p in enc.named_parameters():
            if 'rel_pos' in n:
                p.zero_()
        assert (enc(img)['last'] - y).abs().max() > 1e-3


def test_the_mini_sam_checkpoint_loads_into_the_fused_encoder_and_gives_the_explicit_features(restore_switch):
    """The official-format file (tiny SAM of the mini world) loads unchanged; every block is fused."""
    from aeroseg.config import REPO_ROOT
    from mmengine.config import Config
    sam = dict(Config.fromfile(str(REPO_ROOT / 'configs/_base_/scale/mini.py')).sam)
    sam.pop('type')
    sam['checkpoint'] = str(REPO_ROOT / sam['checkpoint'])
    enc = SAMGuidanceEncoder(**sam)
    assert sum(isinstance(m, FusedSAMAttention) for m in enc.modules()) == sam['depth']
    img = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(3)) * 255
    y1 = enc(img)
    FusedSAMAttention.fused = False
    y0 = enc(img)
    for a, b in zip([y1['last'], *y1['inter']], [y0['last'], *y0['inter']]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

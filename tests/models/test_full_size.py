"""AerOSeg at FULL size (CLIP ViT-B/16 at 384 + SAM ViT-L at 1024), one training step on CPU.

Slow (a minute or more on 2 cores, ~3-4 GB of RAM): deselected by default, run with
``pytest -m slow tests/models/test_full_size.py``. Random weights of the official architectures
(no downloads): the point is that the full graph runs, gives finite losses and sends gradients
only where the paper trains (CLIP Q/V, head, back-projection), never into the frozen SAM or
CLIP's K projections.
"""
import math

import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('open_clip')
pytest.importorskip('segment_anything')

from benchmarks import model_cost  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def stepped_aeroseg():
    model_cost._setup_imports()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model, cfg = model_cost.build_full_model(model_cost.resolve_config('aeroseg'))
    imgs, samples = model_cost.make_batch(model_cost.num_classes_of(cfg), batch=1, size=384)
    losses = model_cost.train_step(model, imgs, samples)
    return model, cfg, losses


def test_full_config_is_the_paper_architecture(stepped_aeroseg):
    model, cfg, _ = stepped_aeroseg
    assert cfg.model.clip.model_name == 'ViT-B-16' and model.clip.image_size == (384, 384)
    assert model.clip.rotations == (0, 90, 180, 270)
    assert cfg.model.guidance.variant == 'vit_l' and cfg.model.guidance.img_size == 1024
    sam_blocks = [m for n, m in model.guidance.named_modules() if n.endswith('blocks')]
    assert sam_blocks and len(sam_blocks[0]) == 24  # SAM ViT-L: 24 blocks
    n_sam = sum(p.numel() for p in model.guidance.parameters())
    assert 300e6 < n_sam < 310e6, n_sam  # SAM ViT-L image encoder: ~303M parameters


def test_full_size_step_losses_finite(stepped_aeroseg):
    _, _, losses = stepped_aeroseg
    assert set(losses) == {'loss_bce', 'loss_backproj'}
    assert all(math.isfinite(v) for v in losses.values()), losses


def test_full_size_step_gradients_only_where_trained(stepped_aeroseg):
    model, _, _ = stepped_aeroseg
    assert all(p.grad is None and not p.requires_grad for p in model.guidance.parameters())
    k_params = [(n, p) for n, p in model.clip.named_parameters()
                if n.endswith(('k_proj_weight', 'k_proj_bias'))]
    assert len(k_params) >= 24  # 12 visual + 12 text blocks
    assert all(p.grad is None for _, p in k_params), [n for n, p in k_params if p.grad is not None]
    qv = {n: p for n, p in model.clip.named_parameters() if n.endswith(('q_proj_weight', 'v_proj_weight'))}
    assert len(qv) == 48 and all(p.requires_grad for p in qv.values())  # 2 x 12 blocks per tower
    # The dense last visual block goes through the value path only (CAT-Seg), so its Q gets no
    # gradient; every other Q / V does.
    last_q = 'clip.visual.transformer.resblocks.11.attn.q_proj_weight'
    no_grad = {n for n, p in qv.items() if p.grad is None}
    assert no_grad <= {last_q}, sorted(no_grad)
    assert all(torch.isfinite(p.grad).all() for n, p in qv.items() if n not in no_grad)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.back_projection.parameters())
    assert all(p.grad is not None for p in model.head.parameters() if p.requires_grad)

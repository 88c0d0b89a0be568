"""Small helpers shared by the model tests."""
import torch


def rand_img(b=2, size=64, seed=0):
    """A seeded batch of RGB images in 0..255 (what the encoders take)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 255


def assert_close(a, b, atol=1e-5, what=''):
    """Same shape and max abs difference <= atol, with a message naming ``what``."""
    assert a.shape == b.shape, f'{what}: {tuple(a.shape)} vs {tuple(b.shape)}'
    d = (a - b).abs().max().item()
    assert d <= atol, f'{what}: max diff {d:.3g} > {atol}'

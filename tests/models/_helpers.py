"""Small helpers shared by the model tests."""
import collections
import contextlib

import torch
from torch.utils.flop_counter import FlopCounterMode


def rand_img(b=2, size=64, seed=0):
    """A seeded batch of RGB images in 0..255 (what the encoders take)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 255


def assert_close(a, b, atol=1e-5, what=''):
    """Same shape and max abs difference <= atol, with a message naming ``what``."""
    assert a.shape == b.shape, f'{what}: {tuple(a.shape)} vs {tuple(b.shape)}'
    d = (a - b).abs().max().item()
    assert d <= atol, f'{what}: max diff {d:.3g} > {atol}'


@contextlib.contextmanager
def switch(cls, name, value):
    """Set the class switch ``cls.name`` to ``value`` for the block, then restore it."""
    old = getattr(cls, name)
    setattr(cls, name, value)
    try:
        yield
    finally:
        setattr(cls, name, old)


Run = collections.namedtuple('Run', 'out x_grad param_grads flops')


def fwd_bwd(block, x, g):
    """Forward ``block(x, g)`` and backward a fixed ramp-weighted sum: output, input gradient,
    parameter gradients and the FLOPs of both passes (what the fast-path tests compare)."""
    x = x.clone().requires_grad_(True)
    block.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fc:
        y = block(x, g)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    grads = {}
    for n, p in block.named_parameters():
        assert p.grad is not None, f'{n} received no gradient'
        grads[n] = p.grad.clone()
    return Run(y.detach(), x.grad, grads, fc.get_total_flops())


def fwd_bwd_switched(cls, name, block, x, g):
    """``fwd_bwd`` with the switch ``cls.name`` off and on: {False: Run, True: Run}."""
    res = {}
    for value in (False, True):
        with switch(cls, name, value):
            res[value] = fwd_bwd(block, x, g)
    return res


def of_largest(rel=2e-5, floor=1.0):
    """A parameter-gradient tolerance for :func:`assert_same_runs`: ``rel`` x the gradient's
    largest |entry| (at least ``rel`` x ``floor`` absolute: a gradient that is zero in exact
    maths, such as a key bias under softmax, is float noise), no relative term. Gradients are
    sums over many rows, so their rounding scales with the largest."""
    return lambda v: dict(atol=rel * max(float(v.abs().max()), floor), rtol=0)


def assert_same_runs(res, atol=1e-5, param_tol=of_largest()):
    """The switched-on run equals the switched-off one: output and input gradient within
    ``atol`` (rtol 1e-5); each parameter gradient within ``param_tol(reference gradient)``
    (keyword arguments of ``torch.testing.assert_close``)."""
    on, off = res[True], res[False]
    torch.testing.assert_close(on.out, off.out, atol=atol, rtol=1e-5)
    torch.testing.assert_close(on.x_grad, off.x_grad, atol=atol, rtol=1e-5)
    assert on.param_grads.keys() == off.param_grads.keys()
    for n, v in off.param_grads.items():
        torch.testing.assert_close(on.param_grads[n], v, msg=n, **param_tol(v))

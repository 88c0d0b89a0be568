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
    grads = {n: p.grad.clone() for n, p in block.named_parameters() if p.grad is not None}
    return Run(y.detach(), x.grad, grads, fc.get_total_flops())


def fwd_bwd_switched(cls, name, block, x, g):
    """``fwd_bwd`` with the switch ``cls.name`` off and on: {False: Run, True: Run}."""
    res = {}
    for value in (False, True):
        with switch(cls, name, value):
            res[value] = fwd_bwd(block, x, g)
    return res


def assert_same_runs(res, atol=1e-5, param_rel=2e-5):
    """The switched-on run equals the switched-off one: output and input gradient within
    ``atol``; parameter gradients (sums over many rows) within ``param_rel`` of their largest
    entry (at least ``param_rel`` absolute: a gradient that is zero in exact maths, such as a
    key bias under softmax, is float noise)."""
    on, off = res[True], res[False]
    torch.testing.assert_close(on.out, off.out, atol=atol, rtol=1e-5)
    torch.testing.assert_close(on.x_grad, off.x_grad, atol=atol, rtol=1e-5)
    assert on.param_grads.keys() == off.param_grads.keys()
    for n, v in off.param_grads.items():
        torch.testing.assert_close(on.param_grads[n], v, rtol=0, msg=n,
                                   atol=param_rel * max(float(v.abs().max()), 1.0))

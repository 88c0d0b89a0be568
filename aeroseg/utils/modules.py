"""Swap the class of sub-modules in place (an upstream module run by our subclass, same parameters)."""
from __future__ import annotations

from torch import nn

__all__ = ['swap_module_class']


def swap_module_class(module: nn.Module, old: type, new: type) -> int:
    """Make every sub-module of ``module`` whose type is exactly ``old`` an instance of ``new``
    (a subclass of ``old`` that adds no state: parameters, buffers and state-dict keys stay);
    returns how many were swapped."""
    if not issubclass(new, old):
        raise TypeError(f'swap_module_class: {new.__name__} is not a subclass of {old.__name__}')
    n = 0
    for m in module.modules():
        if type(m) is old:
            m.__class__ = new
            n += 1
    return n

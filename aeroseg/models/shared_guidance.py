"""Guidance shared by every class, projected once per image instead of once per class.

The cost-aggregation heads (CAT-Seg, OVRS, AerOSeg) concatenate guidance that is the same for
all T classes (the appearance map) or for all pixels (the text guidance) to each class's features
and feed the result to a linear map: the q / k projections of the spatial and class attention,
the decoder's first 3x3 convolution. A linear map of ``[y, g]`` is ``W_y y + W_g g``, so the
``W_g g`` part is computed on the B images' guidance and added to every copy, instead of on B*T
(or B*H*W) copies. The same maths; the sums run in another order, so results agree to float
rounding (``tests/models/test_guidance_once.py``). Each module keeps upstream's concatenation
behind its ``guidance_once`` class switch (``python -m benchmarks.speed`` measures both).
"""
import torch
import torch.nn.functional as F

__all__ = ['add_per_image', 'split_linear']


def add_per_image(p: torch.Tensor, g: torch.Tensor, images: int) -> torch.Tensor:
    """``p`` with rows ordered (image b, repeat r, m) plus ``g`` with rows (b, m): every repeat r
    of image b gets ``g[b, m]`` (r = class or pixel, m = window, or a single m)."""
    per_image = g.shape[0] // images
    if g.shape[0] % images or p.shape[0] % g.shape[0] or p.shape[1:] != g.shape[1:]:
        raise ValueError(f'add_per_image: shapes {tuple(p.shape)} and {tuple(g.shape)} do not '
                         f'split into {images} images')
    repeats = p.shape[0] // g.shape[0]
    out = p.view(images, repeats, per_image, *p.shape[1:]) + g.view(images, 1, per_image, *g.shape[1:])
    return out.view(p.shape)


def split_linear(x: torch.Tensor, lin: torch.nn.Linear, width: int, bias: bool = True) -> torch.Tensor:
    """``lin`` restricted to its first ``width`` input columns (``bias``: with its bias), or to
    the columns after them (``width`` < 0: the last ``-width``), applied to ``x``."""
    w = lin.weight[:, :width] if width > 0 else lin.weight[:, width:]
    return F.linear(x, w, lin.bias if bias else None)

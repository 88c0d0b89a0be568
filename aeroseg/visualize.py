"""Colours for class maps and the colour overlay with a legend (matplotlib, no pyplot state).

:func:`class_colours` takes a class's colour from the dataset palettes of
:mod:`aeroseg.datasets.splits` when its name (or one of its synonyms) is a class or synonym of a
registered dataset, so "ship" looks the same as in the iSAID figures; other names, and names whose
dataset colour another class already took, get the next colour of a fixed palette (matplotlib's
tab20, then tab20b / tab20c), so the colours depend only on the class list.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .datasets.splits import available_splits, get_split

__all__ = ['class_colours', 'colourise', 'legend_handles', 'save_overlay', 'FIXED_PALETTE']

RGB = Tuple[int, int, int]


def _fixed_palette() -> Tuple[RGB, ...]:
    from matplotlib import colormaps
    out = []
    for name in ('tab20', 'tab20b', 'tab20c'):
        cmap = colormaps[name]
        out += [tuple(int(round(255 * c)) for c in cmap(i)[:3]) for i in range(cmap.N)]
    return tuple(dict.fromkeys(out))


FIXED_PALETTE: Tuple[RGB, ...] = _fixed_palette()


def _dataset_colours() -> Dict[str, RGB]:
    """Lower-cased class name or synonym -> its colour in the first registered split holding it."""
    out: Dict[str, RGB] = {}
    for key in available_splits():
        sp = get_split(key)
        for i, name in enumerate(sp.classes):
            for n in (name, *sp.synonyms.get(i, ())):
                out.setdefault(n.lower(), tuple(sp.palette[i]))
    return out


def class_colours(class_names: Sequence[str],
                  synonyms: Optional[Sequence[Sequence[str]]] = None) -> List[RGB]:
    """One distinct RGB colour per class (module docstring)."""
    known = _dataset_colours()
    used, out, pending = set(), [None] * len(class_names), []
    for i, name in enumerate(class_names):
        cands = [name, *(synonyms[i] if synonyms else ())]
        colour = next((known[c.lower()] for c in cands if c.lower() in known
                       and known[c.lower()] not in used), None)
        if colour is None:
            pending.append(i)
        else:
            out[i] = colour
            used.add(colour)
    fixed = iter(c for c in FIXED_PALETTE if c not in used)
    for i in pending:
        out[i] = next(fixed)
    return out


def colourise(labels: np.ndarray, colours: Sequence[RGB], ignore: int = 255,
              ignore_colour: RGB = (0, 0, 0)) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ``ignore`` (and ids beyond the list) get ``ignore_colour``."""
    lut = np.tile(np.asarray(ignore_colour, np.uint8), (256, 1))
    lut[:len(colours)] = np.asarray(colours, np.uint8).reshape(-1, 3)
    if ignore < len(colours):
        lut[ignore] = ignore_colour
    return lut[labels]


def legend_handles(names: Sequence[str], colours: Sequence[RGB]):
    from matplotlib.patches import Patch
    return [Patch(facecolor=np.asarray(c) / 255.0, edgecolor='black', linewidth=0.5, label=n)
            for n, c in zip(names, colours)]


def save_overlay(path: str, rgb: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                 colours: Sequence[RGB], title: str = '', alpha: float = 0.45,
                 legend_labels: Optional[Sequence[str]] = None) -> None:
    """PNG of the image (H, W, 3 uint8) with the class map blended over it and a legend.

    Legend entries give each class's share of the labelled pixels; nodata (255) stays the image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    h, w = labels.shape
    rgba = np.zeros((h, w, 4), np.float32)
    rgba[..., :3] = colourise(labels, colours) / 255.0
    rgba[..., 3] = np.where(labels < len(class_names), alpha, 0.0)
    labelled = max(int((labels < len(class_names)).sum()), 1)
    counts = np.bincount(labels.ravel(), minlength=256)
    texts = [f'{n}  {100.0 * counts[i] / labelled:.1f}%'
             for i, n in enumerate(legend_labels or class_names)]
    side = 6.0
    fig = Figure(figsize=(side * w / max(h, w) + 3.2, side * h / max(h, w) + 0.6), dpi=150)
    FigureCanvasAgg(fig)
    ax_w = (side * w / max(h, w)) / fig.get_figwidth()
    ax = fig.add_axes([0.01, 0.04, ax_w, 0.88])
    ax.imshow(rgb, interpolation='nearest')
    ax.imshow(rgba, interpolation='nearest')
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.legend(handles=legend_handles(texts, colours), loc='center left',
               bbox_to_anchor=(0.02 + ax_w, 0.5), fontsize=8,
               frameon=False, title='class (share of labelled pixels)', title_fontsize=8)
    fig.savefig(path, format='png')

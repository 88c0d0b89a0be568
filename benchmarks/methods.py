"""The one list of methods the benchmarks know: tables, runner estimates, model_cost, ov_transfer.

A method is its config folder (``configs/<key>/``), its label as the paper prints it, a config
template per dataset (``{ds}`` = ``isaid`` / ``dlrsd`` / ``oem``), the backbone, whether it
trains, and an ASSUMED full-scale cost for the dry-run estimate. Adding a method = its own
package and configs + one :func:`register_method` call (here for the suite's methods; a test or a
user's spec module may register its own, see ``benchmarks/run.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

__all__ = ['Method', 'register_method', 'get_method', 'methods']


@dataclass(frozen=True)
class Method:
    """One method (see the module docstring).

    ``assumed_full``: (train s/iter, test s/image) on one A100-80GB at the method's own batch
    size (paper Sec. 4.2: one A100, batch 4). These are ASSUMED order-of-magnitude guesses, NOT
    measurements; the runner replaces them by measured values as soon as a job of the same method
    (same scale) has finished in its work dir. ``variants``: further config sets of the method,
    (backbone, template) pairs (e.g. CAT-Seg ViT-L/14).
    """
    key: str                                   # config folder, e.g. 'catseg'
    label: str                                 # as the paper prints it, e.g. 'CAT-Seg'
    config: str                                # template, e.g. 'configs/catseg/catseg_vitb16_{ds}.py'
    backbone: str                              # e.g. 'CLIP ViT-B/16'
    train: bool = True                         # False = training-free (tested only)
    assumed_full: Tuple[float, float] = (1.0, 0.3)
    variants: Tuple[Tuple[str, str], ...] = ()

    def config_for(self, ds: str) -> str:
        return self.config.format(ds=ds)

    def templates(self) -> List[str]:
        return [self.config] + [t for _, t in self.variants]


_METHODS: Dict[str, Method] = {}


def register_method(method: Method, replace: bool = False) -> Method:
    """Add ``method`` to the list (tables, estimates, model_cost, ov_transfer read it).

    Registering an equal method again is a no-op (a spec module imported twice); a different
    method under a key already taken is an error unless ``replace``.
    """
    old = _METHODS.get(method.key)
    if old is not None and old != method and not replace:
        raise ValueError(f'method key {method.key!r} is already registered ({old.label}, '
                         f'{old.config}); choose another key or pass replace=True')
    _METHODS[method.key] = method
    return method


def get_method(key: str) -> Method:
    try:
        return _METHODS[key]
    except KeyError:
        raise KeyError(f'unknown method {key!r}; registered: {", ".join(_METHODS)} '
                       f'(benchmarks/methods.py, or register_method in your spec module)') from None


def methods() -> List[Method]:
    """Every registered method, in registration order (the paper's Table 2 order first)."""
    return list(_METHODS.values())


# The suite's methods, in the paper's Table 2 order, then the training-free SegEarth-OV (Table 8).
for _m in (
    Method('san', 'SAN', 'configs/san/san_vitb16_{ds}.py', 'CLIP ViT-B/16',
           assumed_full=(0.35, 0.05)),    # ViT-B/16 side adapter, 640 crops
    Method('scan', 'SCAN', 'configs/scan/scan_vitb16_{ds}.py', 'CLIP ViT-B/16',
           assumed_full=(0.90, 0.10)),    # Mask2Former + CLIP, batch 32
    Method('sed', 'SED', 'configs/sed/sed_convnextb_{ds}.py', 'CLIP ConvNeXt-B',
           assumed_full=(0.60, 0.10)),    # ConvNeXt-B at 768
    Method('catseg', 'CAT-Seg', 'configs/catseg/catseg_vitb16_{ds}.py', 'CLIP ViT-B/16',
           assumed_full=(0.45, 0.15),     # ViT-B/16 at 384, sliding-window test
           variants=(('CLIP ViT-L/14', 'configs/catseg/catseg_vitl14_{ds}.py'),)),
    Method('ovrs', 'OVRS', 'configs/ovrs/ovrs_vitb16_{ds}.py', 'CLIP ViT-B/16',
           assumed_full=(1.20, 0.50)),    # CAT-Seg x 4 rotations
    Method('aeroseg', 'AerOSeg', 'configs/aeroseg/aeroseg_vitb16_{ds}.py',
           'CLIP ViT-B/16 + SAM ViT-L',
           assumed_full=(1.40, 0.60)),    # 4 rotations + frozen SAM ViT-L at 1024
    Method('segearthov', 'SegEarth-OV', 'configs/segearthov/segearthov_vitb16_{ds}.py',
           'CLIP ViT-B/16', train=False,
           assumed_full=(0.0, 0.15)),     # training-free
):
    register_method(_m)
del _m

"""Inference on your own imagery with your own class names.

    from aeroseg.apis import init_model, segment
    model = init_model('configs/aeroseg/aeroseg_vitb16_isaid.py', 'work_dirs/.../iter_10000.pth')
    class_map = segment(model, 'tile.png', ['ship', 'harbor', 'oil tank', 'water'])

``segment`` returns an (H, W) uint8 array of indices into the given class list. An entry may list
synonyms separated by ``|`` (``'oil tank|storage tank'``): each is a query and the class scores the
max over its queries (SegEarth-OV's rule, :func:`aeroseg.models.prompts.reduce_synonyms`). Scenes
larger than one pass, GeoTIFFs and the command line: :mod:`aeroseg.infer`. The checkpoint
holds every weight (CLIP, guidance encoder, head), so the CLIP / SAM files named in the config
are not needed for inference; the checkpoint is loaded with ``weights_only=True``.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .config import ScaleError, choose_scale, load_config  # noqa: F401 (ScaleError: callers)
from .datasets.splits import check_name_list, resolve_class_names
from .hooks import clear_outside_weights
from .models.prompts import expand_class_names, reduce_synonyms
from .utils.checkpoint import load_trained_weights, read_checkpoint_meta

__all__ = ['init_model', 'segment', 'segment_scores', 'class_queries', 'score_batch']


def init_model(config: str, checkpoint: Optional[str] = None, device: str = 'cpu',
               scale: Optional[str] = None, cfg_options: Optional[dict] = None):
    """Build the model of ``config`` and load a trained ``checkpoint`` (our or a plain state dict).

    ``scale`` None: the scale the checkpoint records (``final_weights.pth``), else full
    (:data:`aeroseg.config.SCALE_RULE`); one contradicting the checkpoint's is a
    :class:`~aeroseg.config.ScaleError`."""
    import aeroseg  # noqa: F401  (registers everything)
    from mmseg.registry import MODELS
    from mmengine.registry import init_default_scope
    if not os.path.isfile(config):
        raise FileNotFoundError(f'{config}: no such config file; pass one under configs/, e.g. '
                                f'configs/catseg/catseg_vitb16_isaid.py')
    recorded = read_checkpoint_meta(checkpoint).get('scale') if checkpoint is not None else None
    scale = choose_scale(scale, recorded, checkpoint=str(checkpoint), flag="scale='{}'")
    cfg = load_config(config, scale=scale, data_root=os.devnull if scale == 'mini' else None,
                      cfg_options=cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model
    if checkpoint is not None:  # all weights come from the checkpoint
        clear_outside_weights(model_cfg)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_trained_weights(model, checkpoint, config)
    model.cfg = cfg
    return model.to(device).eval()


def _load_image(image: Union[str, np.ndarray]) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image
        if os.path.isdir(image):
            raise IsADirectoryError(f'{image!r} is a folder, not an image: pass one image file '
                                    f'(python -m aeroseg.infer --images takes folders)')
        if not os.path.isfile(image):
            raise FileNotFoundError(f'image not found: {image!r}')
        return np.asarray(Image.open(image).convert('RGB'))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f'expected an RGB image (H, W, 3), got shape {arr.shape}')
    return arr


def class_queries(class_names: Sequence[str]) -> Tuple[Tuple[str, ...], List[str], List[int]]:
    """Entries ``'name'`` or ``'name|synonym|...'`` -> (class names, queries, query -> class).

    The class is called by its first name; every name of every class must be unique.
    """
    groups = [[p.strip() for p in str(e).split('|')] for e in _checked(class_names)]
    if any(not all(g) for g in groups):
        raise ValueError(f'empty name in the class list {list(class_names)} (check for a stray '
                         f'"," or "|")')
    names = resolve_class_names([g[0] for g in groups])
    queries, index = expand_class_names(names, {i: g[1:] for i, g in enumerate(groups) if len(g) > 1})
    dup = sorted({q for q in queries if queries.count(q) > 1})
    if dup:
        raise ValueError(f'duplicate class names: {dup}')
    return names, queries, index


def _checked(class_names) -> list:
    check_name_list(class_names)
    return list(class_names)


@torch.no_grad()
def score_batch(model, inputs: torch.Tensor, queries: Sequence[str],
                query_to_class: Sequence[int]) -> torch.Tensor:
    """(B, K, H, W) class scores for RGB ``inputs`` (B, 3, H, W) 0..255: the max over each class's queries."""
    return reduce_synonyms(model.predict_logits(inputs, queries), query_to_class, dim=1)


def segment_scores(model, image: Union[str, np.ndarray], class_names: Sequence[str]) -> np.ndarray:
    """Per-class scores (N, H, W) in [0, 1] for ``class_names`` on an RGB image."""
    _, queries, index = class_queries(class_names)
    rgb = _load_image(image)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float()
    x = x.to(next(model.parameters()).device)
    return score_batch(model, x, queries, index)[0].cpu().numpy()


def segment(model, image: Union[str, np.ndarray], class_names: Sequence[str]) -> np.ndarray:
    """(H, W) uint8 class map: index i means ``class_names[i]``."""
    scores = segment_scores(model, image, class_names)
    if scores.shape[0] > 255:
        raise ValueError('at most 255 class names fit a uint8 class map')
    return scores.argmax(0).astype(np.uint8)

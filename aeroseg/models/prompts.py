"""Prompt template sets and the class-name x template expansion used by every CLIP text path.

Template sets (``get_templates(name)``):

* ``'rs4'`` -- AerOSeg's four remote-sensing templates (paper Sec. 3.1, "as suggested by Li et al.
  [RS-CLIP]"). The paper prints them as ``A satellite image of a [CLS]`` etc. with no final full
  stop; we keep that literal form (no period). RS-CLIP's own prompts read "This is a satellite
  image of a {CLASS}." -- a different, longer form the paper did not adopt. Users who want the
  full stop pass their own list.
* ``'generic'`` -- ``'A photo of a {} in the scene'``: CAT-Seg's single prompt
  (cvlab-kaist/CAT-Seg ``cat_seg/modeling/transformer/cat_seg_predictor.py``,
  ``prompt_ensemble_type == "single"``), kept by OVRS; no final period there either.
* ``'imagenet80'`` -- OpenAI's 80 ImageNet templates (CLIP notebook
  ``Prompt_Engineering_for_ImageNet.ipynb``), in the order of SegEarth-OV's
  ``prompts/imagenet_template.py::openai_imagenet_template`` (= CAT-Seg's ``IMAGENET_TEMPLATES``).

Synonyms (``Split.synonyms``: extra names per class id) are expanded into extra *queries*; a
class's score is the max over its queries (SegEarth-OV's rule, ``segearth_segmentor.py``), see
:func:`expand_class_names` and :func:`reduce_synonyms`.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

__all__ = ['TEMPLATE_SETS', 'get_templates', 'format_prompts', 'expand_class_names',
           'reduce_synonyms', 'prompt_average']

RS4_TEMPLATES: Tuple[str, ...] = (
    'A satellite image of a {}',
    'A land use image of a {}',
    'A remote sensing image of a {}',
    'An aerial image of a {}',
)

GENERIC_TEMPLATES: Tuple[str, ...] = ('A photo of a {} in the scene',)

# OpenAI CLIP's 80 ImageNet prompt templates (data, in the notebook's order).
IMAGENET80_TEMPLATES: Tuple[str, ...] = (
    'a bad photo of a {}.', 'a photo of many {}.', 'a sculpture of a {}.',
    'a photo of the hard to see {}.', 'a low resolution photo of the {}.', 'a rendering of a {}.',
    'graffiti of a {}.', 'a bad photo of the {}.', 'a cropped photo of the {}.', 'a tattoo of a {}.',
    'the embroidered {}.', 'a photo of a hard to see {}.', 'a bright photo of a {}.',
    'a photo of a clean {}.', 'a photo of a dirty {}.', 'a dark photo of the {}.',
    'a drawing of a {}.', 'a photo of my {}.', 'the plastic {}.', 'a photo of the cool {}.',
    'a close-up photo of a {}.', 'a black and white photo of the {}.', 'a painting of the {}.',
    'a painting of a {}.', 'a pixelated photo of the {}.', 'a sculpture of the {}.',
    'a bright photo of the {}.', 'a cropped photo of a {}.', 'a plastic {}.',
    'a photo of the dirty {}.', 'a jpeg corrupted photo of a {}.', 'a blurry photo of the {}.',
    'a photo of the {}.', 'a good photo of the {}.', 'a rendering of the {}.',
    'a {} in a video game.', 'a photo of one {}.', 'a doodle of a {}.',
    'a close-up photo of the {}.', 'a photo of a {}.', 'the origami {}.',
    'the {} in a video game.', 'a sketch of a {}.', 'a doodle of the {}.', 'a origami {}.',
    'a low resolution photo of a {}.', 'the toy {}.', 'a rendition of the {}.',
    'a photo of the clean {}.', 'a photo of a large {}.', 'a rendition of a {}.',
    'a photo of a nice {}.', 'a photo of a weird {}.', 'a blurry photo of a {}.', 'a cartoon {}.',
    'art of a {}.', 'a sketch of the {}.', 'a embroidered {}.', 'a pixelated photo of a {}.',
    'itap of the {}.', 'a jpeg corrupted photo of the {}.', 'a good photo of a {}.',
    'a plushie {}.', 'a photo of the nice {}.', 'a photo of the small {}.',
    'a photo of the weird {}.', 'the cartoon {}.', 'art of the {}.', 'a drawing of the {}.',
    'a photo of the large {}.', 'a black and white photo of a {}.', 'the plushie {}.',
    'a dark photo of a {}.', 'itap of a {}.', 'graffiti of the {}.', 'a toy {}.',
    'itap of my {}.', 'a photo of a cool {}.', 'a photo of a small {}.', 'a tattoo of the {}.',
)

TEMPLATE_SETS: Dict[str, Tuple[str, ...]] = {
    'rs4': RS4_TEMPLATES,
    'generic': GENERIC_TEMPLATES,
    'imagenet80': IMAGENET80_TEMPLATES,
}

TemplatesArg = Union[str, Sequence[str]]


def get_templates(templates: TemplatesArg) -> Tuple[str, ...]:
    """A template set by name (``'rs4'``, ``'generic'``, ``'imagenet80'``) or a checked list.

    Every template must hold exactly one ``{}`` where the class name goes.
    """
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise KeyError(f'unknown template set {templates!r}; known: {sorted(TEMPLATE_SETS)} '
                           f'(or pass a list of strings with one "{{}}" each)')
        return TEMPLATE_SETS[templates]
    out = tuple(templates)
    if not out:
        raise ValueError('empty template list')
    for t in out:
        if not isinstance(t, str) or t.count('{}') != 1:
            raise ValueError(f'template {t!r} must be a string with exactly one "{{}}"')
    return out


def format_prompts(names: Sequence[str], templates: TemplatesArg) -> List[str]:
    """All prompts, name-major: ``[t.format(n) for n in names for t in templates]``."""
    tpl = get_templates(templates)
    return [t.format(n) for n in names for t in tpl]


def expand_class_names(class_names: Sequence[str],
                       synonyms: Optional[Mapping[int, Sequence[str]]] = None
                       ) -> Tuple[List[str], List[int]]:
    """Queries = each class name followed by its synonyms; returns (queries, query -> class id).

    Without synonyms the queries are the class names and the index is ``range(K)``.
    """
    synonyms = synonyms or {}
    bad = [k for k in synonyms if not 0 <= int(k) < len(class_names)]
    if bad:
        raise KeyError(f'synonyms given for class ids {bad} outside 0..{len(class_names) - 1}')
    queries, index = [], []
    for i, name in enumerate(class_names):
        for q in (name, *synonyms.get(i, ())):
            queries.append(q)
            index.append(i)
    return queries, index


def reduce_synonyms(scores: torch.Tensor, query_to_class: Sequence[int], dim: int = 1) -> torch.Tensor:
    """Max over the queries of each class along ``dim`` (queries -> classes, SegEarth-OV rule)."""
    idx = torch.as_tensor(list(query_to_class), device=scores.device)
    if idx.numel() != scores.shape[dim]:
        raise ValueError(f'{idx.numel()} query ids for {scores.shape[dim]} queries along dim {dim}')
    num_classes = int(idx.max()) + 1
    if idx.numel() == num_classes and bool((idx == torch.arange(num_classes, device=idx.device)).all()):
        return scores
    outs = [scores.index_select(dim, (idx == c).nonzero().flatten()).amax(dim) for c in range(num_classes)]
    return torch.stack(outs, dim)


def prompt_average(text_embeds: torch.Tensor, normalize_first: bool = True) -> torch.Tensor:
    """(..., P, D) per-template embeddings -> (..., D): L2-normalise, mean over P, L2-normalise.

    The usual CLIP prompt ensemble (OpenAI notebook; SegEarth-OV ``segearth_segmentor.py``;
    CAT-Seg's ``Aggregator`` text guidance). ``normalize_first=False`` skips the first step for
    embeddings that are normalised already (CAT-Seg's order of operations, bit for bit).
    """
    e = torch.nn.functional.normalize(text_embeds, dim=-1) if normalize_first else text_embeds
    e = e.mean(dim=-2)
    return torch.nn.functional.normalize(e, dim=-1)

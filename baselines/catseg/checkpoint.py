"""Official CAT-Seg / OVRS checkpoints onto the suite's :class:`CostAggregationHead` keys."""
import re
from typing import Dict, Mapping, Optional

import torch

__all__ = ['convert_official_aggregator_state_dict']

_RENAMES = (
    (re.compile(r'^conv1\.'), 'corr_embed.conv.'),
    (re.compile(r'^upsample([12])\.'), lambda m: f'decoder_guidance_upsample.{int(m.group(1)) - 1}.'),
    (re.compile(r'^decoder([12])\.'), lambda m: f'decoders.{int(m.group(1)) - 1}.'),
    (re.compile(r'(^|\.)attention\.MLP\.'), r'\1attention.mlp.'),
)


def convert_official_aggregator_state_dict(state_dict: Mapping[str, torch.Tensor],
                                           prefix: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Map an official CAT-Seg / OVRS state dict onto :class:`CostAggregationHead` keys.

    Accepts a whole detectron2 checkpoint's model dict (``sem_seg_head.predictor.transformer.*``
    plus the meta-architecture's ``upsample1.*`` / ``upsample2.*``; CLIP keys are dropped) or a
    bare ``Aggregator`` state dict. Renames: ``conv1`` -> ``corr_embed.conv``, ``upsample{1,2}`` ->
    ``decoder_guidance_upsample.{0,1}``, ``decoder{1,2}`` -> ``decoders.{0,1}``,
    ``.attention.MLP.`` -> ``.attention.mlp.``; the constant Swin ``attn_mask`` buffers are dropped
    (ours are computed per input size). Everything else keeps its upstream name.
    """
    if prefix is None:
        prefix = next((p for p in ('sem_seg_head.predictor.transformer.', 'predictor.transformer.',
                                   'transformer.') if any(k.startswith(p) for k in state_dict)), '')
    out = {}
    for k, v in state_dict.items():
        if k.startswith(prefix):
            k = k[len(prefix):]
        elif not re.match(r'^upsample[12]\.', k):
            continue
        if k.endswith('attn_mask'):
            continue
        for pat, rep in _RENAMES:
            k = pat.sub(rep, k)
        out[k] = v
    if not out:
        raise KeyError('convert_official_aggregator_state_dict: no CAT-Seg aggregator keys found '
                       f'(looked under prefix {prefix!r}); is this a CAT-Seg / OVRS checkpoint?')
    return out

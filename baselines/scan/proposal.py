"""SCAN's proposal network from MMSegmentation / MMDetection parts (imports mmdet: only SCAN does).

* :class:`SCANMask2FormerHead`: mmseg's ``Mask2FormerHead`` (itself mmdet's, with
  ``MSDeformAttnPixelDecoder`` and ``Mask2FormerTransformerDecoder``) whose class head is SCAN's
  embedding MLP ``hidden -> 1024 -> 512`` (``open_vocab_mask2former_predictor.py``: ``class_embed
  = MLP(hidden_dim, EMBED_HIDDEN_DIM 1024, EMBEDDING_DIM 512, EMBED_LAYERS 2)``, ReLU between, as
  mmdet's ``MLP``). Its per-layer outputs are query embeddings, scored against the text by
  ``SCANSegmentor``; mmdet's matcher and set criterion then run on those logits.
* :class:`PortableMSDeformAttn`: mmcv's ``MultiScaleDeformableAttention`` sends CUDA tensors to
  its compiled kernel whenever mmcv reports CUDA (``ops/multi_scale_deform_attn.py``:
  ``IS_CUDA_AVAILABLE and value.is_cuda``). This suite builds mmcv without CUDA ops
  (``FORCE_CUDA=0``), so on a GPU that call fails; where the compiled CUDA op is absent the
  pure-torch ``multi_scale_deformable_attn_pytorch`` is used instead (same function mmcv uses on
  CPU). :func:`use_portable_msda` swaps it into a built module.
"""
from __future__ import annotations

import functools
import threading

import mmdet.models  # noqa: F401  (registers mmdet.MSDeformAttnPixelDecoder, HungarianAssigner, ...)
from mmcv.ops import multi_scale_deform_attn as _msda
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
from mmdet.models.layers.transformer.utils import MLP
from mmseg.models.decode_heads.mask2former_head import Mask2FormerHead
from mmseg.registry import MODELS
from torch import nn

from aeroseg.utils.modules import swap_module_class

__all__ = ['SCANMask2FormerHead', 'PortableMSDeformAttn', 'use_portable_msda',
           'msda_cuda_op_compiled']

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def msda_cuda_op_compiled() -> bool:
    """Whether mmcv's compiled ops were built with CUDA (``get_compiling_cuda_version`` says
    'not available' for a CPU-only build such as the one ``tools/bootstrap.sh`` makes)."""
    try:
        from mmcv.ops import get_compiling_cuda_version
        return get_compiling_cuda_version() not in ('not available', '', None)
    except Exception:  # no compiled ops at all
        return False


def compiled_kernel_usable(value) -> bool:
    """mmcv's own routing condition, made true only when a CUDA kernel really exists."""
    return bool(getattr(value, 'is_cuda', False)) and _msda.IS_CUDA_AVAILABLE and \
        msda_cuda_op_compiled()


class PortableMSDeformAttn(MultiScaleDeformableAttention):
    """mmcv's ``MultiScaleDeformableAttention`` that takes the pure-torch kernel whenever the
    compiled CUDA one is absent (weights, arguments and output unchanged)."""

    def forward(self, query, key=None, value=None, *args, **kwargs):
        v = query if value is None else value
        if compiled_kernel_usable(v) or not getattr(v, 'is_cuda', False):
            # CPU tensors already take the torch path in mmcv; a usable CUDA kernel is kept
            return super().forward(query, key, value, *args, **kwargs)
        with _LOCK:  # mmcv decides on its module-level flag: clear it for this call only
            saved, _msda.IS_CUDA_AVAILABLE = _msda.IS_CUDA_AVAILABLE, False
            try:
                return super().forward(query, key, value, *args, **kwargs)
            finally:
                _msda.IS_CUDA_AVAILABLE = saved


def use_portable_msda(module: nn.Module) -> int:
    """Turn every mmcv ``MultiScaleDeformableAttention`` inside ``module`` into
    :class:`PortableMSDeformAttn` (same parameters); returns how many."""
    return swap_module_class(module, MultiScaleDeformableAttention, PortableMSDeformAttn)


@MODELS.register_module()
class SCANMask2FormerHead(Mask2FormerHead):
    """mmseg's Mask2Former head with SCAN's embedding class head (``embed_hidden_dim`` ->
    ``embed_dims``, ``embed_layers`` linears); ``forward`` returns per decoder layer (learnable
    queries first, then each of the ``num_layers`` layers: upstream's DEC_LAYERS 10 = 9 + 1)
    the query embeddings (B, Q, embed_dims) and mask logits (B, Q, h, w)."""

    def __init__(self, embed_dims: int = 512, embed_hidden_dim: int = 1024, embed_layers: int = 2,
                 **kwargs):
        super().__init__(**kwargs)
        self.cls_embed = MLP(kwargs['feat_channels'], embed_hidden_dim, embed_dims, embed_layers)
        use_portable_msda(self.pixel_decoder)

"""Per-class binary cross-entropy on one-hot targets (CAT-Seg / OVRS / AerOSeg segmentation loss).

Upstream (cvlab-kaist/CAT-Seg cat_seg/cat_seg_model.py, CATSeg.forward, training branch): the
logits are resized bilinearly (align_corners=False) to the label size, the targets are the one-hot
labels of the training vocabulary, pixels with the ignore value get ALL-ZERO targets (they still
count, as negatives for every class), and ``F.binary_cross_entropy_with_logits`` averages over
every pixel and class.

Pixels the open-vocabulary protocol hides (unseen classes in training, label ``HIDDEN_INDEX`` =
254 from ``HideUnseenClasses``) are a case upstream's code does not have (CAT-Seg trains on all of
COCO-Stuff; the AerOSeg paper only says "only the seen classes are available during training").
Our default leaves them out of the loss (``hidden_mode='exclude'``): counted as negatives they
would supervise the unseen regions as "none of the classes", and every head trained that way on
the mini world maps unseen regions to all-low logits (benchmarks/ov_transfer.py).
``hidden_mode='zero_target'`` treats them like upstream's ignored pixels.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from aeroseg.datasets.transforms import HIDDEN_INDEX

__all__ = ['OpenVocabBCELoss']


@MODELS.register_module()
class OpenVocabBCELoss(nn.Module):
    """BCE with logits over one-hot class targets.

    Args:
        ignore_mode: 'zero_target' (upstream: ignored pixels are negatives for every class and
            count in the mean) or 'exclude' (ignored pixels are left out of the loss and of the
            mean).
        ignore_index: label value of ignored (unlabelled) pixels (255).
        hidden_mode: 'exclude' (default, our choice) or 'zero_target': the same two treatments
            for the pixels of classes hidden from training (``hidden_index``).
        hidden_index: label value of hidden pixels (``HIDDEN_INDEX`` = 254).
        loss_weight: multiplier of the loss.
        resize_logits: resize logits to the label size first (bilinear, align_corners=False, as
            upstream); when False, a size mismatch is an error.
        reduction: 'mean' (upstream) or 'sum'.
        loss_name: key of the loss in the losses dict ('loss_bce').
    """

    def __init__(self, ignore_mode: str = 'zero_target', ignore_index: int = 255,
                 loss_weight: float = 1.0, resize_logits: bool = True, reduction: str = 'mean',
                 loss_name: str = 'loss_bce', hidden_mode: str = 'exclude',
                 hidden_index: int = HIDDEN_INDEX):
        super().__init__()
        for arg, mode in (('ignore_mode', ignore_mode), ('hidden_mode', hidden_mode)):
            if mode not in ('zero_target', 'exclude'):
                raise ValueError(f"OpenVocabBCELoss: {arg} must be 'zero_target' or 'exclude', got {mode!r}")
        if hidden_index == ignore_index:
            raise ValueError(f'OpenVocabBCELoss: hidden_index and ignore_index are both {ignore_index}')
        self.hidden_mode, self.hidden_index = hidden_mode, int(hidden_index)
        if reduction not in ('mean', 'sum'):
            raise ValueError(f"OpenVocabBCELoss: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.ignore_mode, self.ignore_index = ignore_mode, ignore_index
        self.loss_weight, self.resize_logits, self.reduction = loss_weight, resize_logits, reduction
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor, weight: Optional[torch.Tensor] = None,
                ignore_index: Optional[int] = None, **kwargs) -> torch.Tensor:
        """cls_score: (B, N, H', W') logits; label: (B, H, W) or (B, 1, H, W) ids in [0, N) or
        ``ignore_index``; weight: optional per-pixel weight (B, H, W)."""
        ignore = self.ignore_index if ignore_index is None else ignore_index
        if label.dim() == 4 and label.shape[1] == 1:
            label = label[:, 0]
        if cls_score.dim() != 4 or label.dim() != 3 or label.shape[0] != cls_score.shape[0]:
            raise ValueError(f'OpenVocabBCELoss: expected logits (B, N, H, W) and labels (B, H, W), got '
                             f'{tuple(cls_score.shape)} and {tuple(label.shape)}')
        if cls_score.shape[-2:] != label.shape[-2:]:
            if not self.resize_logits:
                raise ValueError(f'OpenVocabBCELoss: logits {tuple(cls_score.shape[-2:])} and labels '
                                 f'{tuple(label.shape[-2:])} differ in size and resize_logits=False')
            cls_score = F.interpolate(cls_score, size=label.shape[-2:], mode='bilinear', align_corners=False)
        N = cls_score.shape[1]
        label = label.long()
        ignored, hidden = label == ignore, label == self.hidden_index
        valid = ~(ignored | hidden)
        bad = valid & ((label < 0) | (label >= N))
        if bad.any():
            vals = torch.unique(label[bad])[:8].tolist()
            raise ValueError(f'OpenVocabBCELoss: labels {vals} are outside the {N} classes of the logits and '
                             f'the ignore value {ignore} or the hidden value {self.hidden_index}; map dataset '
                             f'ids to positions in the training vocabulary (and unseen classes to '
                             f'{self.hidden_index}) before the loss')
        logits = cls_score.permute(0, 2, 3, 1)                                   # (B, H, W, N)
        target = F.one_hot(torch.where(valid, label, torch.zeros_like(label)), N).to(logits.dtype)
        target = target * valid[..., None].to(logits.dtype)                      # ignored -> all zeros
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
        if weight is not None:
            loss = loss * weight[..., None].to(loss.dtype)
        keep = valid.clone()                  # pixels in the loss and the mean
        if self.ignore_mode == 'zero_target':
            keep |= ignored
        if self.hidden_mode == 'zero_target':
            keep |= hidden
        if not keep.all():
            loss = loss[keep]                                                    # (n_kept, N)
        if self.reduction == 'sum':
            out = loss.sum()
        elif loss.numel() == 0:   # every pixel ignored: a zero that keeps the graph
            out = cls_score.sum() * 0.0
        else:
            out = loss.mean()
        return self.loss_weight * out

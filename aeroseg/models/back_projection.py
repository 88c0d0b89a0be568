"""Semantic back-projection (AerOSeg, paper §3.1 eq. 7 and §3.2 eq. 13).

The class-wise refined correlation features (B, C, N, h, w) are concatenated along the channel
axis (C * N per position) and mapped by three linear layers with GELU to the guidance feature
dimension; the loss compares this reconstruction with the stop-gradient target feature.

Paper-silent choices (config options, defaults documented here):
* hidden width of the two inner linear layers: ``hidden_dim`` (default 512);
* loss form and weight: not legible in our copy of the paper; the module defaults to MSE with
  weight 1.0 (``loss_type`` in {'mse', 'l1', 'cosine'}); AerOSeg's config sets 0.01, measured
  (configs/_base_/models/aeroseg_vitb16.py);
* targets (Table 5): 'sam' (the last guidance feature, default), 'clip' (CLIP dense features),
  'rgb' (the input pixels of each patch, flattened: 3 * p * p values per position, p the stride
  between the cost volume and the input; per-patch standardised as MAE does).
Because the input width is C * N, the module is tied to the training vocabulary size; it is only
used for the training loss, so test vocabularies of any size work.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmseg.registry import MODELS

__all__ = ['SemanticBackProjection', 'rgb_patch_target']


@MODELS.register_module()
class SemanticBackProjection(nn.Module):
    """Three linear layers with GELU: concat of class-wise refined features -> target feature."""

    def __init__(self, in_channels: int, num_classes: int, out_channels: int,
                 hidden_dim: int = 512, loss_type: str = 'mse', loss_weight: float = 1.0,
                 target: str = 'sam') -> None:
        super().__init__()
        if loss_type not in ('mse', 'l1', 'cosine'):
            raise ValueError(f"back_projection.loss_type must be 'mse', 'l1' or 'cosine', got {loss_type!r}")
        if target not in ('sam', 'clip', 'rgb'):
            raise ValueError(f"back_projection.target must be 'sam', 'clip' or 'rgb', got {target!r}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.loss_type, self.loss_weight, self.target = loss_type, loss_weight, target
        self.mlp = nn.Sequential(
            nn.Linear(in_channels * num_classes, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, out_channels))

    def forward(self, refined: torch.Tensor) -> torch.Tensor:
        """refined (B, C, N, h, w) -> reconstruction (B, out_channels, h, w)."""
        b, c, n, h, w = refined.shape
        if c * n != self.in_channels * self.num_classes:
            raise ValueError(f'back-projection built for {self.num_classes} classes x '
                             f'{self.in_channels} channels, got {n} x {c}: it only runs with the '
                             f'training vocabulary')
        x = refined.permute(0, 3, 4, 2, 1).reshape(b, h, w, n * c)  # class-major concat per position
        return self.mlp(x).permute(0, 3, 1, 2)

    def loss(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.detach()  # stop-gradient (eq. 13)
        if target.shape[-2:] != recon.shape[-2:]:
            target = F.interpolate(target, size=recon.shape[-2:], mode='bilinear', align_corners=False)
        if self.loss_type == 'mse':
            loss = F.mse_loss(recon, target)
        elif self.loss_type == 'l1':
            loss = F.l1_loss(recon, target)
        else:
            loss = (1 - F.cosine_similarity(recon, target, dim=1)).mean()
        return self.loss_weight * loss


def rgb_patch_target(img: torch.Tensor, size, patch) -> torch.Tensor:
    """Per-position RGB patches (B, 3*ph*pw, h, w): ``img`` resized to (h*ph, w*pw), unfolded.

    ``patch`` is CLIP's patch size, so each cost-volume position reconstructs the pixels of its
    own token. Each patch is standardised (zero mean, unit variance), as MAE's pixel target.
    """
    h, w = size
    ph, pw = patch
    img = F.interpolate(img, size=(h * ph, w * pw), mode='bilinear', align_corners=False)
    patches = F.unfold(img, kernel_size=(ph, pw), stride=(ph, pw))  # (B, 3*ph*pw, h*w)
    mu = patches.mean(1, keepdim=True)
    sd = patches.std(1, keepdim=True) + 1e-6
    return ((patches - mu) / sd).reshape(img.shape[0], -1, h, w)

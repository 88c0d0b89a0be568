"""SimFeatUp / FeatUp joint-bilateral feature upsamplers, pure torch, official checkpoint layout.

Facts from likyoo/SegEarth-OV ``simfeatup_dev/upsamplers.py`` (``JBULearnedRange``, ``JBUOne``,
``JBUStack``, ``get_upsampler``), which equal FeatUp's (mhamilton723/FeatUp, MIT,
``featup/upsamplers.py``) for ``JBULearnedRange`` and ``JBUStack``:

* one stage (``JBULearnedRange(guidance_dim=3, key_dim=32, radius)``), source (B,C,h,w) and
  guidance (B,3,H,W) = the CLIP-normalised image average-pooled to 2h x 2w::

      k_range   = softmax_p(exp(range_temp) * <proj(g)[neighbour p], proj(g)>)   # p in the
      k_spatial = exp(-(dx^2 + dy^2) / (2 sigma_spatial^2)), dx, dy in linspace(-1, 1, 2r+1)
      k = k_range * k_spatial / sum_p(...);  k += 0.1 * fixup_proj([k, g])       # (2r+1)^2 window
      out[c, y, x] = sum_p k[p, y, x] * reflect_pad(bicubic(source -> H x W))[c, y + dy_p, x + dx_p]

  (proj = conv1x1 -> GELU -> Dropout2d(0.1) -> conv1x1; fixup_proj the same on the
  (2r+1)^2 + 3 channels; ``range_temp`` clamped to [1e-4, 1e4] after exp).
* ``jbu_one`` (SimFeatUp, SegEarth-OV's default): ONE shared stage with radius 5 applied 4 times
  (x16: 14 -> 224 for ViT-B/16), then ``out + 0.1 * fixup_proj(out)`` (Dropout2d(0.2) -> conv1x1).
* ``jbu_stack`` (FeatUp): four stages ``up1..up4`` with radius 3, the same final fix-up.

The official windowed sum is FeatUp's CUDA ``AdaptiveConv``; its pure-torch equivalent in the same
file (``adaptive_conv_py_simple``) unfolds the padded source into (B, C, (2r+1)^2, H, W), 12 GB per
224 x 224 ViT-B crop in float32. :func:`adaptive_conv` and :meth:`JBULearnedRange.range_kernel`
compute the same sums by looping over the (2r+1)^2 offsets instead (memory of one (B, C, H, W)).

Checkpoints: the official files are PyTorch-Lightning checkpoints whose ``state_dict`` holds the
upsampler under ``upsampler.`` (SegEarth-OV strips ``k[10:]``). They load through the suite's
weights-only loader (:mod:`aeroseg.utils.checkpoint`); a mismatch names the file and the keys.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mmseg.registry import MODELS

from aeroseg.utils.checkpoint import CheckpointError, load_external_state_dict, load_into

__all__ = ['JBULearnedRange', 'SimFeatUp', 'adaptive_conv', 'OFFICIAL_PREFIX', 'UPSAMPLER_VARIANTS']

OFFICIAL_PREFIX = 'upsampler.'
# model_name -> (stages share one module?, radius); simfeatup_dev/upsamplers.py JBUOne / JBUStack
UPSAMPLER_VARIANTS = {'jbu_one': (True, 5), 'jbu_stack': (False, 3)}
_GUIDANCE_DIM = 3   # the RGB guidance image (JBULearnedRange(3, ...) in JBUOne / JBUStack)
_KEY_DIM = 32       # JBULearnedRange(3, feat_dim, 32, ...)


def adaptive_conv(padded: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-pixel filtering: padded (B,C,H+2r,W+2r), kernels (B,H,W,k,k) -> (B,C,H,W).

    ``out[b,c,y,x] = sum_ij kernels[b,y,x,i,j] * padded[b,c,y+i,x+j]`` (FeatUp ``AdaptiveConv``,
    ``adaptive_conv_py_simple``), one offset at a time.
    """
    b, h, w, k, k2 = kernels.shape
    if k != k2 or padded.shape[-2:] != (h + k - 1, w + k - 1):
        raise ValueError(f'adaptive_conv: input {tuple(padded.shape)} and kernels {tuple(kernels.shape)} disagree')
    kernels = kernels.to(padded.dtype)
    out = padded.new_zeros(padded.shape[0], padded.shape[1], h, w)
    for i in range(k):
        for j in range(k):
            out.addcmul_(padded[:, :, i:i + h, j:j + w], kernels[:, None, :, :, i, j])
    return out


class JBULearnedRange(nn.Module):
    """One joint-bilateral x2 stage with a learned range kernel (module docstring).

    Submodule and parameter names are the official ones (checkpoint keys).
    """

    def __init__(self, guidance_dim: int = _GUIDANCE_DIM, key_dim: int = _KEY_DIM, radius: int = 3):
        super().__init__()
        self.radius = radius
        self.diameter = 2 * radius + 1
        self.key_dim = key_dim
        d2 = self.diameter ** 2
        self.range_temp = nn.Parameter(torch.tensor(0.0))
        self.range_proj = nn.Sequential(nn.Conv2d(guidance_dim, key_dim, 1), nn.GELU(), nn.Dropout2d(0.1),
                                        nn.Conv2d(key_dim, key_dim, 1))
        self.fixup_proj = nn.Sequential(nn.Conv2d(guidance_dim + d2, d2, 1), nn.GELU(), nn.Dropout2d(0.1),
                                        nn.Conv2d(d2, d2, 1))
        self.sigma_spatial = nn.Parameter(torch.tensor(1.0))

    def range_kernel(self, guidance: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B,(2r+1)^2,H,W): softmax over the window of key similarities."""
        _, _, h, w = guidance.shape
        keys = self.range_proj(guidance)
        padded = F.pad(keys, [self.radius] * 4, mode='reflect')
        d = self.diameter
        sims = torch.stack([(padded[:, :, i:i + h, j:j + w] * keys).sum(1)
                            for i in range(d) for j in range(d)], dim=1)
        temp = self.range_temp.exp().clamp_min(1e-4).clamp_max(1e4)
        return torch.softmax(temp * sims, dim=1)

    def spatial_kernel(self) -> torch.Tensor:
        """(1,(2r+1)^2,1,1) Gaussian over window offsets in [-1, 1]^2."""
        r = torch.linspace(-1, 1, self.diameter, device=self.sigma_spatial.device)
        dist2 = r[:, None] ** 2 + r[None, :] ** 2
        return torch.exp(-dist2 / (2 * self.sigma_spatial ** 2)).reshape(1, -1, 1, 1)

    def forward(self, source: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """source (B,C,h,w) -> (B,C,H,W) at the guidance size."""
        if source.shape[0] != guidance.shape[0]:
            raise ValueError(f'batch sizes differ: source {source.shape[0]}, guidance {guidance.shape[0]}')
        b, _, h, w = guidance.shape
        kernel = self.range_kernel(guidance) * self.spatial_kernel()
        kernel = kernel / kernel.sum(1, keepdim=True).clamp(1e-7)
        kernel = kernel + 0.1 * self.fixup_proj(torch.cat([kernel, guidance], dim=1))
        kernel = kernel.permute(0, 2, 3, 1).reshape(b, h, w, self.diameter, self.diameter)
        hr = F.interpolate(source, size=(h, w), mode='bicubic', align_corners=False)
        return adaptive_conv(F.pad(hr, [self.radius] * 4, mode='reflect'), kernel)


@MODELS.register_module()
class SimFeatUp(BaseModule):
    """x2^num_stages guided upsampler of CLIP dense features: ``jbu_one`` or ``jbu_stack``.

    Args:
        feat_dim: channels of the features (CLIP embed dim: 512 for ViT-B/16).
        model_name: ``'jbu_one'`` (SimFeatUp; SegEarth-OV's default, what its paper numbers use)
            or ``'jbu_stack'`` (FeatUp's four stages).
        checkpoint: an official Lightning checkpoint (``state_dict`` with ``upsampler.*`` keys) or
            a bare state dict of this module; ``None`` leaves random weights.
        num_stages: x2 stages (official 4: patch 16 -> pixels). ``jbu_stack`` holds one module per
            stage (``up1..upN``).

    ``forward(source (B,C,h,w), guidance (B,3,H,W))`` -> (B, C, h * 2^num_stages, w * 2^num_stages);
    the guidance is the CLIP-normalised image (SegEarth-OV passes the normalised crop).
    """

    def __init__(self, feat_dim: int, model_name: str = 'jbu_one', checkpoint: Optional[str] = None,
                 num_stages: int = 4, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if model_name not in UPSAMPLER_VARIANTS:
            raise ValueError(f'unknown upsampler {model_name!r}; choose one of {sorted(UPSAMPLER_VARIANTS)}')
        if num_stages < 1:
            raise ValueError(f'num_stages must be >= 1, got {num_stages}')
        shared, radius = UPSAMPLER_VARIANTS[model_name]
        self.model_name = model_name
        self.feat_dim = feat_dim
        self.num_stages = num_stages
        if shared:
            self.up = JBULearnedRange(radius=radius)
        else:
            for i in range(1, num_stages + 1):
                self.add_module(f'up{i}', JBULearnedRange(radius=radius))
        self.fixup_proj = nn.Sequential(nn.Dropout2d(0.2), nn.Conv2d(feat_dim, feat_dim, kernel_size=1))
        self.checkpoint = checkpoint
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)

    def stages(self):
        return [self.up] * self.num_stages if hasattr(self, 'up') else \
            [getattr(self, f'up{i}') for i in range(1, self.num_stages + 1)]

    def init_weights(self):
        """Weights are set in ``__init__`` (``checkpoint``); mmengine must not re-initialise them."""

    def load_checkpoint(self, path: str) -> None:
        """Official Lightning file (``upsampler.`` prefix stripped) or a bare state dict of this module."""
        what = f'{self.model_name} upsampler weights {os.fspath(path)!r}'
        sd = load_external_state_dict(path, what=what)
        if any(k.startswith(OFFICIAL_PREFIX) for k in sd):
            sd = {k[len(OFFICIAL_PREFIX):]: v for k, v in sd.items() if k.startswith(OFFICIAL_PREFIX)}
        try:
            load_into(self, sd, what=what)
        except CheckpointError as e:
            own = self.state_dict()
            groups = sorted({k.split('.')[0] for k in own}, key=lambda k: (k == 'fixup_proj', k))
            raise CheckpointError(
                f'{e}\n  Expected the official {self.model_name} layout (feat_dim {self.feat_dim}): a '
                f'Lightning checkpoint whose state_dict holds {len(own)} keys '
                f'{", ".join(OFFICIAL_PREFIX + k + ".*" for k in groups)} (or the same keys unprefixed).') from None

    def forward(self, source: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        for up in self.stages():
            _, _, h, w = source.shape
            source = up(source, F.adaptive_avg_pool2d(guidance, (2 * h, 2 * w)))
        return source + 0.1 * self.fixup_proj(source)

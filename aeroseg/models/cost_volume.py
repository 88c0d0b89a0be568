"""Image-text cost volume and its embedding (CAT-Seg / OVRS / AerOSeg).

The cost volume holds the cosine similarity of every dense CLIP token with every class-name
embedding, one channel per (rotation, template) pair:

    corr[b, r * P + p, n, y, x] = <img[b, r, :, y, x] / |.|, text[b, n, p, :] / |.|>

Channel order follows the official code: CAT-Seg's ``Aggregator.correlation``
(cat_seg/modeling/transformer/model.py, ``einsum('bchw, btpc -> bpthw')``) has one channel per
template; OVRS's ``Aggregator.correlation`` (cat_seg/modeling/transformer/model_ours.py) stacks
the four rotations first and rearranges ``'B N P T H W -> B (N P) T H W'``, i.e. rotation-major.
"""
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['cosine_cost_volume', 'derotate_dense_features', 'CorrelationEmbedding']


def derotate_dense_features(feats: Union[torch.Tensor, Sequence[torch.Tensor]],
                            ks: Sequence[int] = (0, 1, 2, 3)) -> torch.Tensor:
    """Rotate dense maps computed on ``torch.rot90(image, k, dims=(2, 3))`` back to the
    unrotated frame.

    Args:
        feats: (B, R, D, h, w) tensor or a list of R (B, D, h, w) tensors; entry r was computed
            on the input rotated by ``ks[r]`` quarter turns.
        ks: quarter turns of each entry. OVRS (cat_seg_model_ours.py, CATSeg.forward) uses
            k = 0, 1, 2, 3 and rotates back with rot90(k=3), (k=2), (k=1) in
            model_ours.py:Aggregator.correlation, i.e. k' = -k mod 4.

    Returns:
        (B, R, D, h, w) maps, all in the frame of the unrotated image.
    """
    if isinstance(feats, torch.Tensor):
        if feats.dim() != 5:
            raise ValueError(f'derotate_dense_features: expected (B, R, D, h, w), got {tuple(feats.shape)}')
        feats = feats.unbind(1)
    feats = list(feats)
    if len(feats) != len(ks):
        raise ValueError(f'derotate_dense_features: {len(feats)} feature maps but {len(ks)} rotations ks={tuple(ks)}')
    return torch.stack([torch.rot90(f, k=(-k) % 4, dims=(-2, -1)) for f, k in zip(feats, ks)], dim=1)


def cosine_cost_volume(img_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
    """Cosine-similarity cost volume.

    Args:
        img_feats: (B, R, D, h, w) dense CLIP features of R rotations, already rotated back to
            the unrotated frame (see :func:`derotate_dense_features`); (B, D, h, w) means R = 1.
        text_feats: (N, P, D) or (B, N, P, D) text embeddings of N classes x P templates.

    Returns:
        corr: (B, R * P, N, h, w), channel index r * P + p (rotation-major, as OVRS).
    """
    if img_feats.dim() == 4:
        img_feats = img_feats.unsqueeze(1)
    if img_feats.dim() != 5:
        raise ValueError('cosine_cost_volume: img_feats must be (B, R, D, h, w) or (B, D, h, w), '
                         f'got {tuple(img_feats.shape)}')
    B, R, D = img_feats.shape[:3]
    if text_feats.dim() == 3:
        text_feats = text_feats.unsqueeze(0).expand(B, -1, -1, -1)
    if text_feats.dim() != 4 or text_feats.shape[-1] != D or text_feats.shape[0] != B:
        raise ValueError(f'cosine_cost_volume: text_feats must be (N, P, {D}) or ({B}, N, P, {D}) '
                         f'to match img_feats {tuple(img_feats.shape)}, got {tuple(text_feats.shape)}')
    img = F.normalize(img_feats, dim=2)
    txt = F.normalize(text_feats, dim=-1)
    corr = torch.einsum('brdhw,bnpd->brpnhw', img, txt)
    return corr.flatten(1, 2)


class CorrelationEmbedding(nn.Module):
    """Per-class convolution of the cost volume into the hidden width.

    Official: ``Aggregator.conv1 = nn.Conv2d(prompt_channel, hidden_dim, kernel_size=7,
    stride=1, padding=3)`` applied to ``'B P T H W -> (B T) P H W'``
    (cat_seg/modeling/transformer/model.py, Aggregator.__init__ / corr_embed). CAT-Seg's kernel
    is 7 as well; OVRS (model_ours.py) only multiplies the input channels by its 4 rotations.

    Input (B, C_in, N, h, w) -> output (B, hidden_dim, N, h, w).
    """

    def __init__(self, in_channels: int, hidden_dim: int = 128, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'CorrelationEmbedding: kernel_size must be odd (same padding), got {kernel_size}')
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, hidden_dim, kernel_size=kernel_size, stride=1,
                              padding=kernel_size // 2)

    def forward(self, corr: torch.Tensor) -> torch.Tensor:
        if corr.dim() != 5 or corr.shape[1] != self.in_channels:
            raise ValueError(f'CorrelationEmbedding: expected (B, {self.in_channels}, N, h, w) cost volume '
                             f'(in_channels = rotations x templates), got {tuple(corr.shape)}')
        B, C, N, h, w = corr.shape
        x = corr.transpose(1, 2).reshape(B * N, C, h, w)
        x = self.conv(x)
        return x.reshape(B, N, -1, h, w).transpose(1, 2)

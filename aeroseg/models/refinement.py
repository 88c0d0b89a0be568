"""Cost refinement blocks of CAT-Seg (shared by OVRS and AerOSeg).

One :class:`AggregatorLayer` = spatial refinement (two Swin blocks per class, guidance joins the
queries and keys) followed by class refinement (attention across the classes of each pixel, no
positional embedding, text guidance joins the queries and keys).

Upstream: cvlab-kaist/CAT-Seg cat_seg/modeling/transformer/model.py (WindowAttention,
SwinTransformerBlock, SwinTransformerBlockWrapper, LinearAttention, FullAttention,
AttentionLayer, ClassTransformerLayer, AggregatorLayer). Parameter names follow upstream so that
an official state dict maps onto ours with the few renames listed in
``baselines.catseg.convert_official_aggregator_state_dict``.

Tensors are laid out as upstream: cost features (B, C, T, H, W) with T classes.
"""
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .shared_guidance import add_per_image, split_linear

__all__ = ['GuidedWindowAttention', 'GuidedSwinBlock', 'SpatialRefinement', 'linear_attention',
           'full_attention', 'GuidedClassAttention', 'ClassRefinement', 'AggregatorLayer']

_MASK_VALUE = -100.0  # SwinTransformerBlock.__init__: masked_fill(attn_mask != 0, -100.0)


def _pair(v) -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f'expected an int or a pair, got {v}')
    return v


def _window_partition(x: torch.Tensor, win: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, win * win, C), windows in row-major order per image."""
    B, H, W, C = x.shape
    x = x.reshape(B, H // win, win, W // win, win, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, win * win, C)


def _window_merge(windows: torch.Tensor, win: int, B: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`_window_partition`: (B * nW, win * win, C) -> (B, H, W, C)."""
    x = windows.reshape(B, H // win, W // win, win, win, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, -1)


@lru_cache(maxsize=32)
def _shift_mask_cpu(H: int, W: int, win: int, shift: int) -> torch.Tensor:
    # Same regions as SwinTransformerBlock.__init__ (upstream): three slices per axis.
    region = torch.zeros(1, H, W, 1)
    cnt = 0
    for hs in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
        for ws in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
            region[:, hs, ws, :] = cnt
            cnt += 1
    rw = _window_partition(region, win).squeeze(-1)            # (nW, win*win)
    diff = rw.unsqueeze(1) - rw.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, _MASK_VALUE)  # (nW, N, N)


@lru_cache(maxsize=32)
def shifted_window_mask(H: int, W: int, win: int, shift: int, device=None, dtype=torch.float32):
    """Additive attention mask (nW, win*win, win*win) of the shifted-window block: 0 inside a
    region, -100 between regions that the cyclic shift brought together (cached per device)."""
    return _shift_mask_cpu(H, W, win, shift).to(device=device, dtype=dtype)


class GuidedWindowAttention(nn.Module):
    """Window multi-head self-attention whose queries and keys see [cost, guidance] and whose
    values see the cost only (upstream ``WindowAttention``; no relative position bias there).

    ``fused`` (class switch, default True): the attention runs as one
    ``F.scaled_dot_product_attention`` (softmax(q k^T * scale + mask) v, the same maths; scale =
    head_dim^-0.5 applied to the scores instead of to q, so results agree to float rounding,
    ~1e-6 abs, tests/models/test_fused_attention.py). False = upstream's explicit
    ``q @ k^T -> + mask -> softmax -> @ v``. On CPU the fused kernel is 5-9x faster for these window
    sizes (``python -m benchmarks.speed`` measures both in one run).
    """

    fused = True

    def __init__(self, dim: int, guidance_dim: int = 0, num_heads: int = 4, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'GuidedWindowAttention: dim {dim} is not divisible by num_heads {num_heads}')
        self.dim, self.num_heads = dim, num_heads
        self.q = nn.Linear(dim + guidance_dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim + guidance_dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def guidance_qk(self, guidance: torch.Tensor):
        """The guidance columns of the q and k projections applied to ``guidance`` (no bias)."""
        return (split_linear(guidance, self.q, -guidance.shape[-1], bias=False),
                split_linear(guidance, self.k, -guidance.shape[-1], bias=False))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                shared: Optional[tuple] = None) -> torch.Tensor:
        """x: (B * nW, N, dim [+ guidance_dim]); mask: (nW, N, N) additive or None.

        ``shared`` = (gq, gk, images): x is the cost part only, (images * T * nW, N, dim), and
        gq / gk (images * nW, N, dim) the guidance's q / k terms (:meth:`guidance_qk`, windowed),
        added to each of the T classes' windows."""
        Bw, N, _ = x.shape
        heads = self.num_heads
        if shared is None:
            q, k = self.q(x), self.k(x)
        else:
            gq, gk, images = shared
            q = add_per_image(split_linear(x, self.q, self.dim), gq, images)
            k = add_per_image(split_linear(x, self.k, self.dim), gk, images)
        q = q.reshape(Bw, N, heads, -1).transpose(1, 2)
        k = k.reshape(Bw, N, heads, -1).transpose(1, 2)
        v = self.v(x[..., :self.dim]).reshape(Bw, N, heads, -1).transpose(1, 2)
        if self.fused:
            if mask is not None:  # (nW, N, N) -> (Bw, 1, N, N): window w of every image gets mask w
                nW = mask.shape[0]
                mask = mask[None, :, None].expand(Bw // nW, nW, 1, N, N).reshape(Bw, 1, N, N)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.proj(out.transpose(1, 2).reshape(Bw, N, self.dim))
        q = q * q.shape[-1] ** -0.5
        attn = q @ k.transpose(-2, -1)
        if mask is not None:
            nW = mask.shape[0]
            attn = (attn.view(Bw // nW, nW, heads, N, N) + mask[None, :, None]).view(Bw, heads, N, N)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(Bw, N, self.dim)
        return self.proj(out)


class _Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (timm ``Mlp`` as used by upstream SwinTransformerBlock; same keys)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class GuidedSwinBlock(nn.Module):
    """Pre-norm Swin block with guidance concatenated after ``norm1`` (upstream
    ``SwinTransformerBlock``). The window and shift shrink as upstream when the map is not larger
    than the window (window = min(H, W), no shift), decided per call from the input size."""

    def __init__(self, dim: int, guidance_dim: int = 0, num_heads: int = 4, window_size: int = 12,
                 shift_size: int = 0, mlp_ratio: float = 4.0):
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f'GuidedSwinBlock: need 0 <= shift_size ({shift_size}) < window_size ({window_size})')
        self.dim, self.window_size, self.shift_size = dim, window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B', H, W, dim); guidance: (B', H, W, guidance_dim) (already normalised) or None;
        or guidance (B, H, W, guidance_dim) shared by the B' = B * T class maps of B images (its
        q / k terms computed once per image, ``SpatialRefinement.guidance_once``)."""
        B, H, W, C = x.shape
        win, shift = self.window_size, self.shift_size
        if min(H, W) <= win:   # upstream: no partition when the window covers the map
            win, shift = min(H, W), 0
        if H % win or W % win:
            raise ValueError(f'GuidedSwinBlock: cost map {H}x{W} is not a multiple of window_size {win}; '
                             'choose a CLIP input size whose token grid is a multiple of the window '
                             '(e.g. 384 px -> 24x24 tokens for window 12) or set window_size')
        shortcut = x
        y = self.norm1(x)
        shared = None
        if guidance is not None and guidance.shape[0] != B:
            shared = list(self.attn.guidance_qk(guidance))
        elif guidance is not None:
            y = torch.cat([y, guidance], dim=-1)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
            if shared is not None:
                shared = [torch.roll(t, shifts=(-shift, -shift), dims=(1, 2)) for t in shared]
        mask = shifted_window_mask(H, W, win, shift, x.device, x.dtype) if shift else None
        if shared is not None:
            shared = (*(_window_partition(t, win) for t in shared), guidance.shape[0])
        y = self.attn(_window_partition(y, win), mask, shared)
        y = _window_merge(y, win, B, H, W)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = shortcut + y
        return x + self.mlp(self.norm2(x))


class SpatialRefinement(nn.Module):
    """Two Swin blocks (W-MSA then SW-MSA with shift window_size // 2), run on each class's cost
    map independently; the guidance map (shared by all classes) is layer-normed and joins the
    queries and keys (upstream ``SwinTransformerBlockWrapper``).

    Args:
        dim: hidden width of the cost features (128 upstream).
        guidance_dim: width of the projected guidance, 0 = no guidance (128 upstream).
        num_heads: 4 upstream; window_size: 12 upstream (vitb_384.yaml WINDOW_SIZES).
    """

    def __init__(self, dim: int = 128, guidance_dim: int = 128, num_heads: int = 4,
                 window_size: int = 12, mlp_ratio: float = 4.0):
        super().__init__()
        self.guidance_dim = guidance_dim
        self.block_1 = GuidedSwinBlock(dim, guidance_dim, num_heads, window_size, 0, mlp_ratio)
        self.block_2 = GuidedSwinBlock(dim, guidance_dim, num_heads, window_size, window_size // 2, mlp_ratio)
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim > 0 else None

    #: class switch: the guidance's q / k terms once per image (aeroseg/models/shared_guidance.py)
    guidance_once = True

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, T, H, W); guidance: (B, guidance_dim, H, W) or None -> (B, C, T, H, W)."""
        B, C, T, H, W = x.shape
        if (guidance is None) != (self.guidance_norm is None):
            raise ValueError(f'SpatialRefinement: built with guidance_dim={self.guidance_dim} but got '
                             f'guidance={"None" if guidance is None else tuple(guidance.shape)}')
        y = x.permute(0, 2, 3, 4, 1).reshape(B * T, H, W, C)
        g = None
        if guidance is not None:
            if guidance.shape[0] != B or guidance.shape[-2:] != (H, W):
                raise ValueError(f'SpatialRefinement: guidance {tuple(guidance.shape)} does not match '
                                 f'cost features {tuple(x.shape)} (need (B, C, H, W) at the cost resolution)')
            # LayerNorm is per token, so normalising before repeating over classes is exact.
            g = self.guidance_norm(guidance.permute(0, 2, 3, 1))
            if not self.guidance_once:  # upstream: the guidance repeated for every class
                g = g.unsqueeze(1).expand(B, T, H, W, -1).reshape(B * T, H, W, -1)
        y = self.block_1(y, g)
        y = self.block_2(y, g)
        return y.reshape(B, T, H, W, C).permute(0, 4, 1, 2, 3)


def _elu_feature_map(x):
    return F.elu(x) + 1


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6,
                     key_weight: Optional[torch.Tensor] = None, length: Optional[int] = None) -> torch.Tensor:
    """Linear attention of "Transformers are RNNs" with the elu + 1 feature map (upstream
    ``LinearAttention``, including its division of V by the length to avoid fp16 overflow).
    q: (N, L, H, D), k/v: (N, S, H, D) -> (N, L, H, D).

    ``key_weight`` (S,): key s stands for ``key_weight[s]`` identical keys (their sums are the
    same), ``length``: the sequence length those stand for (default S). Used by
    :class:`ClassRefinement` for its ``pad_len - T`` identical padding tokens."""
    Q, K = _elu_feature_map(q), _elu_feature_map(k)
    s = v.shape[1] if length is None else length
    v = v / s
    if key_weight is not None:
        K = K * key_weight.view(1, -1, 1, 1)
    kv = torch.einsum('nshd,nshv->nhdv', K, v)
    z = 1 / (torch.einsum('nlhd,nhd->nlh', Q, K.sum(dim=1)) + eps)
    return torch.einsum('nlhd,nhdv,nlh->nlhv', Q, kv, z) * s


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention with 1/sqrt(D) temperature (upstream ``FullAttention``, no dropout)."""
    qk = torch.einsum('nlhd,nshd->nlsh', q, k)
    a = torch.softmax(qk / q.shape[3] ** 0.5, dim=2)
    return torch.einsum('nlsh,nshd->nlhd', a, v)


class GuidedClassAttention(nn.Module):
    """Multi-head attention across classes: Q, K from [features, guidance], V from features, no
    output projection (upstream ``AttentionLayer``)."""

    def __init__(self, hidden_dim: int, guidance_dim: int = 0, num_heads: int = 4,
                 attention_type: str = 'linear'):
        super().__init__()
        if attention_type not in ('linear', 'full'):
            raise ValueError(f"GuidedClassAttention: attention_type must be 'linear' or 'full', got {attention_type!r}")
        if hidden_dim % num_heads:
            raise ValueError(f'GuidedClassAttention: hidden_dim {hidden_dim} not divisible by num_heads {num_heads}')
        self.num_heads, self.attention_type = num_heads, attention_type
        self.q = nn.Linear(hidden_dim + guidance_dim, hidden_dim)
        self.k = nn.Linear(hidden_dim + guidance_dim, hidden_dim)
        self.v = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor] = None,
                n_pad: int = 0) -> torch.Tensor:
        """x: (B', T, C); guidance: (B', T, Cg) or None -> (B', T, C).

        ``n_pad`` > 0 (linear attention only): the LAST token of ``x`` / ``guidance`` is a padding
        token standing for ``n_pad`` identical ones (keys and values only); the output then has
        the T - 1 real tokens, equal to attending over all T - 1 + n_pad tokens.

        ``guidance`` may also be (B, T, Cg) shared by the Bn = B * P rows of B images (the same
        text guidance at every pixel): its q / k terms are then computed once per image."""
        Bn, T, C = x.shape
        nq = T - 1 if n_pad else T
        if guidance is not None and guidance.shape[0] != Bn:
            images = guidance.shape[0]
            gw = guidance.shape[-1]
            q = add_per_image(split_linear(x[:, :nq], self.q, C),
                              split_linear(guidance[:, :nq], self.q, -gw, bias=False), images)
            k = add_per_image(split_linear(x, self.k, C), split_linear(guidance, self.k, -gw, bias=False), images)
        else:
            xg = torch.cat([x, guidance], dim=-1) if guidance is not None else x
            q, k = self.q(xg[:, :nq]), self.k(xg)
        q = q.reshape(Bn, nq, self.num_heads, C // self.num_heads)
        k = k.reshape(Bn, T, self.num_heads, -1)
        v = self.v(x).reshape(Bn, T, self.num_heads, -1)
        if n_pad:
            if self.attention_type != 'linear':
                raise ValueError('GuidedClassAttention: n_pad needs linear attention')
            w = torch.ones(T, dtype=k.dtype, device=k.device)
            w[-1] = n_pad
            return linear_attention(q, k, v, key_weight=w, length=T - 1 + n_pad).reshape(Bn, T - 1, C)
        attn = linear_attention if self.attention_type == 'linear' else full_attention
        return attn(q, k, v).reshape(Bn, T, C)


class ClassRefinement(nn.Module):
    """Transformer layer across the classes of each (pooled) pixel, no positional embedding, so
    it is equivariant to the class order and takes any number of classes (upstream
    ``ClassTransformerLayer``).

    Faithful details: the cost map is average-pooled by ``pooling_size`` before the layer and the
    layer's output (pooled input + attention + MLP) is upsampled bilinearly (align_corners=True)
    and ADDED to the unpooled input; classes are padded to ``pad_len`` tokens with a learned
    token (and learned guidance) that take part as keys/values.

    Args:
        hidden_dim: 128 upstream. guidance_dim: projected text width, 0 = none (128 upstream).
        num_heads: 4. attention_type: 'linear' (upstream default) or 'full'.
        pooling_size: pooling while training; (2, 2) in configs/vitb_384.yaml POOLING_SIZES.
        test_pooling_size: pooling in eval mode; upstream eval.sh overrides POOLING_SIZES to
            [1, 1]. None = same as ``pooling_size``.
        pad_len: 256 upstream (Aggregator's default, not exposed in its configs); 0 disables.

    ``dedup_padding`` (class switch, default True; linear attention): the ``pad_len - T`` padding
    tokens are one learned token repeated, so as keys / values they act as one token weighted by
    their count (:func:`linear_attention` ``key_weight``), and their own outputs, which upstream
    computes and then drops (``[:, :T]``), are not computed: the same result to float rounding
    (tests/models/test_fused_attention.py) with T + 1 instead of ``pad_len`` tokens (iSAID at full
    size: 16 instead of 256). False = upstream's padded computation.
    """

    dedup_padding = True
    #: class switch: the text guidance's q / k terms once per image (aeroseg/models/shared_guidance.py)
    guidance_once = True

    def __init__(self, hidden_dim: int = 128, guidance_dim: int = 128, num_heads: int = 4,
                 attention_type: str = 'linear', pooling_size: Union[int, Sequence[int], None] = (2, 2),
                 test_pooling_size: Union[int, Sequence[int], None] = (1, 1), pad_len: int = 256):
        super().__init__()
        self.pooling_size = _pair(pooling_size) if pooling_size is not None else (1, 1)
        self.test_pooling_size = _pair(test_pooling_size) if test_pooling_size is not None else self.pooling_size
        self.attention = GuidedClassAttention(hidden_dim, guidance_dim, num_heads, attention_type)
        # ClassTransformerLayer.MLP: Linear(C, 4C) -> ReLU -> Linear(4C, C) (ratio fixed upstream)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, hidden_dim * 4), nn.ReLU(),
                                 nn.Linear(hidden_dim * 4, hidden_dim))
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.guidance_dim = guidance_dim
        self.pad_len = pad_len
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, hidden_dim)) if pad_len > 0 else None
        self.padding_guidance = (nn.Parameter(torch.zeros(1, 1, guidance_dim))
                                 if pad_len > 0 and guidance_dim > 0 else None)

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, T, H, W); guidance: (B, T, guidance_dim) or None -> (B, C, T, H, W)."""
        B, C, T, H, W = x.shape
        if (guidance is None) != (self.guidance_dim == 0):
            raise ValueError(f'ClassRefinement: built with guidance_dim={self.guidance_dim} but got '
                             f'guidance={"None" if guidance is None else tuple(guidance.shape)}')
        if guidance is not None and guidance.shape[:2] != (B, T):
            raise ValueError(f'ClassRefinement: text guidance {tuple(guidance.shape)} must be (B={B}, T={T}, C)')
        pool = self.pooling_size if self.training else self.test_pooling_size
        y = x.transpose(1, 2).reshape(B * T, C, H, W)
        if pool != (1, 1):
            y = F.avg_pool2d(y, pool)
        Hp, Wp = y.shape[-2:]
        y = y.reshape(B, T, C, Hp, Wp).permute(0, 3, 4, 1, 2).reshape(B * Hp * Wp, T, C)
        n_pad = self.pad_len - T if self.padding_tokens is not None else 0
        dedup = n_pad > 0 and self.dedup_padding and self.attention.attention_type == 'linear'
        n_tok = 1 if dedup else n_pad  # padding tokens actually built (one stands for n_pad)
        if n_pad > 0:
            y = torch.cat([y, self.padding_tokens.expand(y.shape[0], n_tok, C)], dim=1)
        g = None
        if guidance is not None:
            if n_pad > 0:
                guidance = torch.cat([guidance, self.padding_guidance.expand(B, n_tok, -1)], dim=1)
            g = guidance  # shared by the Hp * Wp pixels: q / k terms once per image
            if not self.guidance_once:  # upstream: the guidance repeated at every pixel
                g = guidance.unsqueeze(1).expand(B, Hp * Wp, -1, -1).reshape(B * Hp * Wp, guidance.shape[1], -1)
        if dedup:
            y = y[:, :T] + self.attention(self.norm1(y), g, n_pad=n_pad)
            y = y + self.mlp(self.norm2(y))
        else:  # upstream: every padded token through attention and MLP, then dropped
            y = y + self.attention(self.norm1(y), g)
            y = (y + self.mlp(self.norm2(y)))[:, :T]
        y = y.reshape(B, Hp, Wp, T, C).permute(0, 3, 4, 1, 2).reshape(B * T, C, Hp, Wp)
        if (Hp, Wp) != (H, W):
            y = F.interpolate(y, size=(H, W), mode='bilinear', align_corners=True)
        return x + y.reshape(B, T, C, H, W).transpose(1, 2)


class AggregatorLayer(nn.Module):
    """Spatial refinement then class refinement (upstream ``AggregatorLayer``).

    Args mirror upstream: hidden_dim 128, text_guidance_dim 128 and appearance_guidance_dim 128
    (the PROJECTED widths; 0 = no guidance), num_heads 4, window_size 12, pooling (2, 2) in
    training and (1, 1) at test, attention 'linear', pad_len 256.
    """

    def __init__(self, hidden_dim: int = 128, text_guidance_dim: int = 128,
                 appearance_guidance_dim: int = 128, num_heads: int = 4, window_size: int = 12,
                 pooling_size=(2, 2), test_pooling_size=(1, 1), attention_type: str = 'linear',
                 pad_len: int = 256, mlp_ratio: float = 4.0):
        super().__init__()
        self.swin_block = SpatialRefinement(hidden_dim, appearance_guidance_dim, num_heads, window_size, mlp_ratio)
        self.attention = ClassRefinement(hidden_dim, text_guidance_dim, num_heads, attention_type,
                                         pooling_size, test_pooling_size, pad_len)

    def forward(self, x: torch.Tensor, appearance_guidance: Optional[torch.Tensor] = None,
                text_guidance: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, T, H, W); appearance_guidance: (B, Cg, H, W) or None; text_guidance:
        (B, T, Ct) or None."""
        return self.attention(self.swin_block(x, appearance_guidance), text_guidance)

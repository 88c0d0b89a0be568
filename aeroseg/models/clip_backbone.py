"""CLIP dense backbone: value-path dense tokens, intermediate taps, rotations, text prompts.

Built on open_clip (open_clip_torch 3.3.0); follows CAT-Seg (cvlab-kaist/CAT-Seg @ 6d3a188) for
the dense image path and OVRS (caoql98/OVRS @ aacbb10) for the rotations.

Call graph of :meth:`CLIPDenseBackbone.forward` (input: RGB 0..255 float, un-normalised)::

    img (B,3,H,W) --(x - mean)/std, CLIP's own mean/std--> --bilinear resize to image_size-->
      --rot90 by each angle, all angles as ONE batch (R*B)--> encode_dense:
          conv1 -> [CLS] + tokens + pos-embed (bicubic-resized to the grid) -> ln_pre
          -> blocks 0..L-2 (taps collected after the blocks in ``tap_indices``)
          -> last block through the VALUE path (below) -> ln_post -> @ proj
      --each rotation's map rotated back--> dense (B,R,D,h,w); taps from the unrotated pass.

Dense last block, as CAT-Seg ``cat_seg/third_party/model_vpt.py``
(``ResidualAttentionBlock.forward_dense`` + ``VisualTransformer.forward(dense=True)``)::

    v = out_proj(W_v ln_1(x) + b_v) + x[CLS]      # the residual is the block input's CLS token,
    v = v + mlp(ln_2(v))                           # broadcast to every position (CAT-Seg's quirk)
    dense = ln_post(v) @ proj                      # ln_post and proj ARE applied to every token

Positional embeddings: CAT-Seg keeps CLIP's native grid and resizes it at every forward
(``VisualTransformer.resized_pos_embed``: CLS kept, grid bicubic, ``align_corners=False``, no
antialias), which we follow (open_clip's own ``resize_pos_embed`` uses antialias=True: a different
kernel). Taps: outputs of ``resblocks[i]`` (0-based, CAT-Seg registers forward hooks on
``resblocks[l]`` with ``layer_indexes = [3, 7]`` for ViT-B/16 and ``[7, 15]`` for ViT-L/14).

Fine-tuning policies (``finetune``):

* ``'frozen'``: nothing trains.
* ``'qv'`` (CAT-Seg's ``CLIP_FINETUNE: "attention"``, ``cat_seg_model.py``): only the attention
  query and value projection *weights* of every block of BOTH encoders train. CAT-Seg's biases
  stay frozen (they live in ``in_proj_bias``, whose name matches neither ``q_proj`` nor
  ``v_proj``); ``qv_bias=True`` also trains the Q and V biases.
* ``'full'``: every CLIP parameter trains.
* ``'visual'``: the whole image tower trains, the text tower is frozen (SED's
  ``CLIP_FINETUNE: "full"``, ``sed/sed_model.py``: only names containing "visual" train).

open_clip packs Q, K, V into one ``in_proj_weight``. Masking K's rows of its gradient is not
enough: AdamW's decoupled weight decay moves every row of a parameter that has a gradient. So every
attention of both towers is replaced by :class:`SplitQKVAttention`, which holds separate
``q/k/v_proj_weight`` and ``q/k/v_proj_bias`` parameters (as CAT-Seg's own ``Attention`` class
does). A frozen K has ``requires_grad=False``, never gets a ``.grad`` and torch's AdamW skips it
(also when mmengine puts frozen parameters into the optimizer). The split is done under every
policy so checkpoint keys do not depend on it; packed ``in_proj_*`` keys still load
(:meth:`SplitQKVAttention._load_from_state_dict`) and :meth:`CLIPDenseBackbone.open_clip_state_dict`
writes open_clip's packed format back.
"""
from __future__ import annotations

import logging
import os
import zipfile
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmengine.model import BaseModule
from mmseg.registry import MODELS

from aeroseg.models.cost_volume import derotate_dense_features
from aeroseg.models.prompts import TemplatesArg, format_prompts, get_templates, prompt_average
from aeroseg.utils.checkpoint import CheckpointError, load_external_state_dict, load_into

__all__ = ['CLIPDenseBackbone', 'SplitQKVAttention', 'resize_clip_pos_embed', 'value_path_block']

# OpenAI CLIP pixel statistics (open_clip.constants OPENAI_DATASET_MEAN/STD) in 0..255 units;
# CAT-Seg's CLIP_PIXEL_MEAN / CLIP_PIXEL_STD (cat_seg/config.py) are the same numbers.
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_FINETUNE = ('frozen', 'qv', 'full', 'visual')
_ANGLES = (0, 90, 180, 270)


class SplitQKVAttention(nn.Module):
    """``nn.MultiheadAttention`` (self-attention, packed in-projection) with Q, K, V as separate
    parameters, so each can be frozen on its own. Same call signature and maths
    (``F.multi_head_attention_forward`` with ``use_separate_proj_weight=True``).
    """

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise NotImplementedError('SplitQKVAttention supports plain self-attention '
                                      'nn.MultiheadAttention only (no kdim/vdim, bias_k, add_zero_attn)')
        self.embed_dim = mha.embed_dim
        self.num_heads = mha.num_heads
        self.dropout = mha.dropout
        self.batch_first = mha.batch_first
        q, k, v = mha.in_proj_weight.detach().clone().chunk(3, dim=0)
        self.q_proj_weight = nn.Parameter(q)
        self.k_proj_weight = nn.Parameter(k)
        self.v_proj_weight = nn.Parameter(v)
        if mha.in_proj_bias is not None:
            qb, kb, vb = mha.in_proj_bias.detach().clone().chunk(3, dim=0)
            self.q_proj_bias = nn.Parameter(qb)
            self.k_proj_bias = nn.Parameter(kb)
            self.v_proj_bias = nn.Parameter(vb)
        else:
            self.q_proj_bias = self.k_proj_bias = self.v_proj_bias = None
        self.out_proj = mha.out_proj

    @property
    def in_proj_bias(self) -> Optional[torch.Tensor]:
        if self.q_proj_bias is None:
            return None
        return torch.cat([self.q_proj_bias, self.k_proj_bias, self.v_proj_bias])

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, w = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads,
            None, self.in_proj_bias, None, None, False, self.dropout,
            self.out_proj.weight, self.out_proj.bias, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=True, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, w

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # accept open_clip's packed keys (in_proj_weight / in_proj_bias) as well
        for kind in ('weight', 'bias'):
            packed = prefix + f'in_proj_{kind}'
            if packed in state_dict:
                for name, t in zip('qkv', state_dict.pop(packed).chunk(3, dim=0)):
                    state_dict[prefix + f'{name}_proj_{kind}'] = t
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def resize_clip_pos_embed(pos_embed: torch.Tensor, native_grid: Tuple[int, int],
                          grid: Tuple[int, int], scale_offset: Optional[float] = None) -> torch.Tensor:
    """(1 + gh0*gw0, W) -> (1 + gh*gw, W): CLS row kept, grid resized bicubic, align_corners=False.

    CAT-Seg ``model_vpt.py::VisualTransformer.resized_pos_embed`` (no antialias). With
    ``scale_offset`` (DINO's "+0.1" trick, used by SegEarth-OV's bundled open_clip
    ``transformer.py::VisionTransformer.interpolate_pos_encoding``) the grid is resized by
    ``scale_factor=(g + offset) / g0`` instead of to a size: the output size is the same, the
    sampling positions differ slightly.
    """
    if tuple(grid) == tuple(native_grid):
        return pos_embed
    width = pos_embed.shape[-1]
    cls_pos = pos_embed[:1]
    g = pos_embed[1:].reshape(1, native_grid[0], native_grid[1], width).permute(0, 3, 1, 2)
    if scale_offset is None:
        g = F.interpolate(g, size=tuple(grid), mode='bicubic', align_corners=False)
    else:
        g = F.interpolate(g, scale_factor=tuple((n + scale_offset) / n0 for n, n0 in zip(grid, native_grid)),
                          mode='bicubic', align_corners=False)
        if tuple(g.shape[-2:]) != tuple(grid):
            raise ValueError(f'pos-embed resize by scale factor gave {tuple(g.shape[-2:])}, expected {tuple(grid)}')
    return torch.cat([cls_pos, g.reshape(width, -1).T], dim=0)


def value_path_block(blk: nn.Module, x: torch.Tensor, v_weight: torch.Tensor,
                     v_bias: Optional[torch.Tensor], residual: str = 'cls') -> torch.Tensor:
    """CAT-Seg's last-block ``forward_dense`` (cat_seg/third_party/model_vpt.py) for batch-first
    tokens (B, L, W) of an open_clip block: attention replaced by the value projection +
    ``out_proj``; residual the CLS token ('cls'), each token ('token') or none ('none'); then
    the block's MLP. ``v_weight`` / ``v_bias``: the value slice of the block's attention."""
    v = blk.ls_1(blk.attn.out_proj(F.linear(blk.ln_1(x), v_weight, v_bias)))
    if residual == 'cls':
        v = v + x[:, :1]
    elif residual == 'token':
        v = v + x
    return v + blk.ls_2(blk.mlp(blk.ln_2(v)))


def _is_torchscript_archive(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split('/', 1)[-1].startswith(('code/', 'constants.pkl')) for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_clip_file(path: str, what: str) -> Dict[str, torch.Tensor]:
    """A CLIP state dict from a local file (open_clip's formats): ``.safetensors`` (no pickle) or a
    torch file read with ``weights_only=True``; the usual wrappers and a DDP ``module.`` prefix
    are removed, as open_clip's ``factory.load_state_dict`` does."""
    if str(path).endswith('.safetensors'):
        if not os.path.isfile(path):
            raise CheckpointError(f'{what}: file not found: {path!r}')
        from safetensors.torch import load_file
        sd = dict(load_file(path, device='cpu'))
    else:
        try:
            sd = load_external_state_dict(path, what=what)
        except CheckpointError as e:
            if os.path.isfile(path) and _is_torchscript_archive(path):
                raise CheckpointError(
                    f'{what}: {path!r} is a TorchScript archive (OpenAI\'s original JIT release); '
                    f'it cannot be read with weights_only=True. Use the plain state dict instead '
                    f'(open_clip\'s "openai" tag downloads timm/vit_base_patch16_clip_224.openai), or '
                    f'convert once: torch.save(torch.jit.load(path).state_dict(), new_path).') from e
            raise
    if sd and all(k.startswith('module.') for k in sd):
        sd = {k[len('module.'):]: v for k, v in sd.items()}
    for k in ('input_resolution', 'context_length', 'vocab_size'):  # JIT-export leftovers
        sd.pop(k, None)
    return sd


def _drop_random_init_warning(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith('No pretrained weights loaded')


def _clear_text_cache_hook(module, incompatible_keys):
    """load_state_dict post hook: new weights make cached text embeddings stale."""
    module.clear_text_cache()


@MODELS.register_module()
class CLIPDenseBackbone(BaseModule):
    """open_clip CLIP (ViT) giving dense value-path tokens, intermediate taps and text embeddings.

    Args:
        model_name: open_clip architecture name ('ViT-B-16', 'ViT-L-14', 'ViT-B-16-quickgelu', or a
            name registered from ``model_config_dir``).
        pretrained: ``None`` (random init), an open_clip tag such as ``'openai'`` (downloaded by
            open_clip, then read by our loader), or a local file in open_clip's formats (a state
            dict as ``.bin`` / ``.pt`` / ``.pth`` / ``.safetensors``).
        image_size: the CLIP input side after resizing (384 for ViT-B/16 -> 24x24 tokens, CAT-Seg
            ``clip_resolution``; CAT-Seg uses 336 for ViT-L/14).
        tap_indices: 0-based blocks whose outputs are returned as taps ((3, 7) for ViT-B, CAT-Seg).
        rotations: angles in degrees, a subset of (0, 90, 180, 270) (OVRS: all four). Taps need 0.
        finetune: 'frozen' | 'qv' | 'full' | 'visual' (module docstring).
        qv_bias: with 'qv', also train the Q and V biases (CAT-Seg: False).
        quick_gelu: force QuickGELU. ``None``: True for tags whose open_clip config says so (e.g.
            'openai'), else the architecture's own setting. OpenAI weights loaded from a FILE need
            QuickGELU: pass ``quick_gelu=True`` or a '-quickgelu' model name.
        model_config_dir: a folder (or json file) of open_clip model configs to register first.
        dense_residual: residual of the dense last block: 'cls' (CAT-Seg), 'token', or 'none'.
        pixel_mean / pixel_std: CLIP normalisation in 0..255 units; ``None``: open_clip's
            preprocessing config of the model (OpenAI statistics by default).
        cache_text: keep text embeddings while the text tower cannot change (no trainable text
            parameter, or eval mode); cleared by ``train()`` and ``load_state_dict``.
        cache_dir: download folder for open_clip tags (open_clip's default when None).

    Outside weights never go through ``open_clip.create_model(pretrained=...)``: the architecture is
    built with random weights and the file is read by ``aeroseg.utils.checkpoint`` (weights_only,
    errors naming the file and every mismatching key). open_clip 3.3.0's own route does use
    ``weights_only=True`` but falls back to a plain ``torch.load`` on ``TypeError`` and reports
    mismatches without the file name.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 image_size: Union[int, Tuple[int, int]] = 384,
                 tap_indices: Sequence[int] = (3, 7),
                 rotations: Sequence[int] = (0,),
                 finetune: str = 'qv',
                 qv_bias: bool = False,
                 quick_gelu: Optional[bool] = None,
                 model_config_dir: Optional[str] = None,
                 dense_residual: str = 'cls',
                 pixel_mean: Optional[Sequence[float]] = None,
                 pixel_std: Optional[Sequence[float]] = None,
                 cache_text: bool = True,
                 cache_dir: Optional[str] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        import open_clip

        if finetune not in _FINETUNE:
            raise ValueError(f'finetune={finetune!r}; choose one of {_FINETUNE}')
        if dense_residual not in ('cls', 'token', 'none'):
            raise ValueError(f"dense_residual={dense_residual!r}; choose 'cls', 'token' or 'none'")
        rotations = tuple(int(a) for a in rotations)
        if not rotations or any(a not in _ANGLES for a in rotations) or len(set(rotations)) != len(rotations):
            raise ValueError(f'rotations={rotations}: distinct angles from {_ANGLES} expected')
        if tap_indices and 0 not in rotations:
            raise ValueError('taps come from the unrotated pass (OVRS): include 0 in rotations')
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if self.image_size[0] != self.image_size[1] and any(a in (90, 270) for a in rotations):
            raise ValueError('90/270 degree rotations need a square image_size')

        if model_config_dir is not None:
            open_clip.add_model_config(model_config_dir)
        if model_name not in open_clip.list_models():
            raise KeyError(f'unknown open_clip model {model_name!r}; register its json config with '
                           f'model_config_dir=... (open_clip.add_model_config)')
        tag_cfg = {}
        is_file = False
        if pretrained is not None:
            tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
            is_file = not tag_cfg
            if is_file and not os.path.isfile(pretrained):
                raise CheckpointError(
                    f'CLIP {model_name}: pretrained={pretrained!r} is neither an open_clip tag of this '
                    f'model ({open_clip.list_pretrained_tags_by_model(model_name)}) nor an existing file.')
        if quick_gelu is None:
            quick_gelu = bool(tag_cfg.get('quick_gelu', False))

        # Build the architecture with random weights; outside weights go through our loader.
        # (open_clip warns "No pretrained weights loaded" here; we load them right after)
        root = logging.getLogger()
        root.addFilter(_drop_random_init_warning)
        try:
            clip = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu,
                                          device='cpu')
        finally:
            root.removeFilter(_drop_random_init_warning)
        if pretrained is not None:
            if is_file:
                path = pretrained
            else:
                try:
                    path = open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
                except Exception as e:
                    raise CheckpointError(
                        f'CLIP {model_name}: could not download open_clip tag {pretrained!r} ({e}). '
                        f'Without internet, pass the weights as a local file: pretrained=<path>.') from e
            what = f'CLIP {model_name} weights {path!r}'
            sd = _load_clip_file(path, what)
            if 'logit_scale' in sd and sd['logit_scale'].ndim != clip.logit_scale.ndim:
                sd['logit_scale'] = sd['logit_scale'].reshape(clip.logit_scale.shape)
            load_into(clip, sd, what=what)
        self.model_name = model_name
        self.pretrained = pretrained
        self.clip = clip
        self.tokenizer = open_clip.get_tokenizer(model_name)

        visual = clip.visual
        self.rotations = rotations
        self.finetune = finetune
        self.qv_bias = qv_bias
        self.dense_residual = dense_residual
        self._setup_visual(visual, tap_indices)

        # the tag's statistics first (a tag may differ from the architecture default), then the model's
        pcfg = {**(getattr(visual, 'preprocess_cfg', None) or {}),
                **{k: tag_cfg[k] for k in ('mean', 'std') if k in tag_cfg}}
        mean = pixel_mean if pixel_mean is not None else [255 * m for m in pcfg.get('mean', _OPENAI_MEAN)]
        std = pixel_std if pixel_std is not None else [255 * s for s in pcfg.get('std', _OPENAI_STD)]
        self.register_buffer('pixel_mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer('pixel_std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), False)

        self._split_attention()
        self._apply_finetune_policy()
        self.cache_text = cache_text
        self._text_cache: Dict[Tuple, torch.Tensor] = {}
        self.register_load_state_dict_post_hook(_clear_text_cache_hook)

    # ------------------------------------------------------------------ setup
    def _setup_visual(self, visual: nn.Module, tap_indices: Sequence[int]) -> None:
        """Check the image tower and read its sizes (``width``, ``embed_dim``, ``patch_size``,
        ``native_grid``, ``grid``, ``tap_indices``); subclasses for other towers override it."""
        import open_clip
        if not isinstance(visual, open_clip.transformer.VisionTransformer) or \
                getattr(visual, 'attn_pool', None) is not None or visual.pool_type != 'tok' or \
                getattr(visual, 'final_ln_after_pool', False):
            raise NotImplementedError(f'{self.model_name}: CLIPDenseBackbone needs a plain open_clip ViT '
                                      f'(class-token pooling, no attentional pool)')
        if not isinstance(visual.patch_dropout, nn.Identity):
            raise NotImplementedError(f'{self.model_name}: patch dropout is not supported for dense output')
        blocks = list(visual.transformer.resblocks)
        if not all(isinstance(b, open_clip.transformer.ResidualAttentionBlock) for b in blocks):
            raise NotImplementedError(f'{self.model_name}: custom attention blocks are not supported')
        depth = len(blocks)
        self.tap_indices = tuple(int(i) for i in tap_indices)
        bad = [i for i in self.tap_indices if not 0 <= i < depth]
        if bad:
            raise ValueError(f'tap_indices {bad} outside 0..{depth - 1} for {self.model_name}')
        self.width = visual.transformer.width
        self.embed_dim = visual.output_dim
        self.patch_size = tuple(visual.patch_size)
        self.native_grid = tuple(visual.grid_size)
        self.grid = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])

    def _split_attention(self) -> None:
        import open_clip
        for m in self.clip.modules():
            if isinstance(m, open_clip.transformer.ResidualAttentionBlock) and \
                    isinstance(m.attn, nn.MultiheadAttention):
                m.attn = SplitQKVAttention(m.attn)

    def _apply_finetune_policy(self) -> None:
        trainable = ['q_proj_weight', 'v_proj_weight'] + (['q_proj_bias', 'v_proj_bias'] if self.qv_bias else [])
        for name, p in self.clip.named_parameters():
            if self.finetune == 'full':
                p.requires_grad = True
            elif self.finetune == 'visual':
                p.requires_grad = name.startswith('visual.')
            elif self.finetune == 'frozen':
                p.requires_grad = False
            else:  # 'qv': attention Q/V of every transformer block of both towers
                p.requires_grad = '.attn.' in name and name.rsplit('.', 1)[-1] in trainable

    def init_weights(self):
        """Weights are set in ``__init__`` (``pretrained``); mmengine must not re-initialise them."""

    def train(self, mode: bool = True):
        super().train(mode)
        self.clear_text_cache()
        return self

    # ------------------------------------------------------------------ image
    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 -> CLIP-normalised, resized to ``image_size`` (bilinear, CAT-Seg order)."""
        x = (img - self.pixel_mean) / self.pixel_std
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode='bilinear', align_corners=False)
        return x

    def _embed(self, x: torch.Tensor, pos_scale_offset: Optional[float] = None) -> torch.Tensor:
        """Patch embedding + [CLS] + (resized) pos-embed + ln_pre: (N,3,H,W) -> (N, 1+h*w, W), (h, w).

        ``pos_scale_offset``: see :func:`resize_clip_pos_embed` (None: CAT-Seg's resize).
        """
        v = self.clip.visual
        x = v.conv1(x)
        grid = tuple(x.shape[-2:])
        x = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + resize_clip_pos_embed(v.positional_embedding, self.native_grid, grid,
                                      scale_offset=pos_scale_offset).to(x.dtype)
        return v.ln_pre(x), grid

    def _dense_last_block(self, blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
        attn = blk.attn
        return value_path_block(blk, x, attn.v_proj_weight, attn.v_proj_bias, self.dense_residual)

    def encode_dense(self, x: torch.Tensor, with_cls: bool = False) -> Dict[str, torch.Tensor]:
        """Already normalised CLIP input (N,3,H,W) -> dict(dense=(N,D,h,w), taps=[(N,W,h,w)], cls).

        ``cls`` (only when ``with_cls``): CLIP's ordinary image embedding (normal last block,
        ln_post on the class token, @ proj), unnormalised; equals ``encode_image`` at the native
        resolution.
        """
        v = self.clip.visual
        tokens, (gh, gw) = self._embed(x)
        batch_first = v.transformer.batch_first
        blocks = v.transformer.resblocks
        depth = len(blocks)
        taps: Dict[int, torch.Tensor] = {}
        h = tokens if batch_first else tokens.transpose(0, 1)
        for i, blk in enumerate(blocks[:-1]):
            h = blk(h)
            if i in self.tap_indices:
                taps[i] = h if batch_first else h.transpose(0, 1)
        pre_last = h if batch_first else h.transpose(0, 1)
        out = {}
        if with_cls or (depth - 1) in self.tap_indices:
            h_last = blocks[-1](h)
            h_last = h_last if batch_first else h_last.transpose(0, 1)
            taps[depth - 1] = h_last
            if with_cls:
                out['cls'] = v.ln_post(h_last[:, 0]) @ v.proj
        dense = v.ln_post(self._dense_last_block(blocks[-1], pre_last)) @ v.proj
        n = x.shape[0]
        out['dense'] = dense[:, 1:].reshape(n, gh, gw, -1).permute(0, 3, 1, 2)
        out['taps'] = [taps[i][:, 1:].reshape(n, gh, gw, -1).permute(0, 3, 1, 2) for i in self.tap_indices]
        return out

    def forward(self, img: torch.Tensor, with_cls: bool = False) -> Dict[str, torch.Tensor]:
        """RGB 0..255 float (B,3,H,W), NOT normalised (CLIP's mean/std is applied here).

        Returns dict:
            dense: (B, R, D, h, w), R = len(rotations) in the given order, each map rotated back
                to the input orientation (not L2-normalised);
            taps: list of (B, width, h, w), outputs of ``tap_indices`` blocks, unrotated pass;
            cls (with_cls): (B, R, D) CLIP image embeddings of each rotated view.
        """
        x = self.normalize(img)
        b = x.shape[0]
        views = [torch.rot90(x, k=a // 90, dims=(2, 3)) if a else x for a in self.rotations]
        out = self.encode_dense(torch.cat(views, dim=0) if len(views) > 1 else views[0], with_cls=with_cls)
        result = {'dense': derotate_dense_features(out['dense'].split(b, dim=0),
                                                   ks=[a // 90 for a in self.rotations])}
        if self.tap_indices:
            r0 = self.rotations.index(0)
            result['taps'] = [t[r0 * b:(r0 + 1) * b] for t in out['taps']]
        else:
            result['taps'] = []
        if with_cls:
            result['cls'] = out['cls'].reshape(len(self.rotations), b, -1).transpose(0, 1)
        return result

    # ------------------------------------------------------------------ text
    def _text_params(self):
        return [p for n, p in self.clip.named_parameters() if not n.startswith('visual.')]

    def text_trainable(self) -> bool:
        return any(p.requires_grad for p in self._text_params())

    def clear_text_cache(self) -> None:
        self._text_cache = {}

    def encode_text(self, class_names: Sequence[str], templates: TemplatesArg = 'rs4') -> torch.Tensor:
        """(N, P, D) L2-normalised embedding of every (class name, template) prompt.

        Cached per (names, templates) while the text tower cannot change (``cache_text``).
        """
        tpl = get_templates(templates)
        names = tuple(class_names)
        key = (names, tpl)
        cacheable = self.cache_text and (not self.text_trainable() or not self.training)
        device = self.clip.token_embedding.weight.device if hasattr(self.clip, 'token_embedding') \
            else next(self.clip.parameters()).device
        if cacheable and key in self._text_cache:
            return self._text_cache[key].to(device)
        tokens = self.tokenizer(format_prompts(names, tpl)).to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not cacheable):
            emb = self.clip.encode_text(tokens, normalize=True)
        emb = emb.reshape(len(names), len(tpl), -1)
        if cacheable:
            emb = self._text_cache[key] = emb.detach()
        return emb

    def encode_text_mean(self, class_names: Sequence[str], templates: TemplatesArg = 'rs4') -> torch.Tensor:
        """(N, D): the prompt-averaged, re-normalised class embeddings."""
        return prompt_average(self.encode_text(class_names, templates))

    # ------------------------------------------------------------------ export
    def open_clip_state_dict(self) -> Dict[str, torch.Tensor]:
        """The CLIP weights in open_clip's own (packed ``in_proj_*``) key format."""
        own = self.clip.state_dict()
        sd = {}
        for k, v in own.items():
            head, _, leaf = k.rpartition('.')
            if leaf in ('q_proj_weight', 'q_proj_bias'):
                kind = leaf.rsplit('_', 1)[-1]
                sd[f'{head}.in_proj_{kind}'] = torch.cat(
                    [v, own[f'{head}.k_proj_{kind}'], own[f'{head}.v_proj_{kind}']])
            elif leaf not in ('k_proj_weight', 'v_proj_weight', 'k_proj_bias', 'v_proj_bias'):
                sd[k] = v
        return sd

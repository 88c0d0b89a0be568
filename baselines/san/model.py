"""SAN (Side Adapter Network, MendelXu/SAN) as mmseg 1.2.2 ships it, behind the suite's seam.

:class:`SANSegmentor` builds the three parts of mmseg's ``MultimodalEncoderDecoder`` under the
same attribute names (``image_encoder`` = CLIP ViT blocks below the split, ``text_encoder`` =
:class:`SANTextEncoder`, ``decode_head`` = ``SideAdapterCLIPHead``), so mmseg-layout SAN
checkpoints load unchanged, and runs them itself instead of going through
``MultimodalEncoderDecoder``'s fixed ``dataset_name`` / ``vocabulary``: the vocabulary is set on
the text encoder for every forward (training: the split's seen names; test: all names, or any
list given to ``set_vocabulary`` / ``predict_logits(names=...)``). What it adds to mmseg:

* the open-vocabulary label protocol (``train_targets``): hidden unseen pixels (254) become the
  ignore value, so mask classification treats them as unlabelled pixels (no class target, in
  no ground-truth mask), as SAN treats 255; ``num_classes`` / the class-CE ``class_weight``
  follow the training vocabulary (num_seen + 1 entries, SAN issue #46);
* CLIP weights from OpenAI / open_clip files, converted by :func:`~baselines.san.clip_to_san`;
* inference via ``decode_head.forward`` + ``predict_by_feat`` (SAN's ``semantic_inference``),
  never ``MultimodalEncoderDecoder._forward`` (``mode='tensor'`` crashes: mmseg #3866);
* normalisation and padding as upstream (CLIP mean / std on RGB 0..255, zero padding of the
  normalised image to a multiple of 32 at test, SAN.SIZE_DIVISIBILITY in ``san/config.py``).
"""
from __future__ import annotations

import copy
import os
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmseg.models.text_encoder.clip_text_encoder import CLIPTextEncoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList, add_prefix, tokenizer
from torch import Tensor, nn

from aeroseg.models.base_segmentor import OpenVocabSegmentor
from aeroseg.models.mask_classification import mask_targets, no_object_class_weight, normalize_zero_pad
from aeroseg.utils.checkpoint import CheckpointError

from .checkpoint import SAN_CLIP_PREFIXES, clip_to_san

__all__ = ['SANSegmentor', 'SANTextEncoder', 'clip_arch']

# OpenAI CLIP statistics x 255 (SAN's pixel_mean / pixel_std from open_clip's preprocess, san.py;
# mmseg configs/_base_/models/san_vit-b16.py data_preprocessor)
_CLIP_MEAN = (122.7709, 116.7460, 104.0937)
_CLIP_STD = (68.5005, 66.6322, 70.3232)


@MODELS.register_module()
class SANTextEncoder(CLIPTextEncoder):
    """mmseg's ``CLIPTextEncoder`` whose vocabulary the segmentor sets per forward.

    Three differences, all needed beyond OpenAI ViT-B/16: prompts are tokenised to the model's own
    ``context_length`` (mmseg's ``template_encode`` always uses 77), the FFN activation follows the
    CLIP (mmseg hard-codes QuickGELU: right for OpenAI, wrong for a GELU CLIP such as the mini
    one), and the per-word cache of text embeddings is emptied when weights load or the module
    moves device (it would otherwise serve stale or wrong-device embeddings).
    """

    def __init__(self, act_cfg: dict = dict(type='QuickGELU'), vocabulary=None, **kwargs):
        kwargs.pop('dataset_name', None)
        super().__init__(vocabulary=list(vocabulary or ['object']), dataset_name=None, **kwargs)
        if act_cfg.get('type') != 'QuickGELU':
            for block in self.transformer:
                block.ffns[0].layers[0][1] = build_activation_layer(act_cfg)
        self.register_load_state_dict_post_hook(lambda m, keys: m.clear_cache())

    def clear_cache(self) -> None:
        if self.cache_feature:
            self.cache.clear()

    def _apply(self, fn, *args, **kwargs):
        self.clear_cache()
        return super()._apply(fn, *args, **kwargs)

    def template_encode(self, vocabulary):
        """Template-averaged, normalised embeddings (mmseg's, at this model's context length)."""
        embeds = []
        for template in self.templates:
            tokens = tokenizer.tokenize([template.format(n) for n in vocabulary],
                                        context_length=self.num_pos)
            embeds.append(self.encode_text(tokens, normalize=True))
        embed = torch.stack(embeds).mean(dim=0)
        return embed / embed.norm(dim=-1, keepdim=True)


def clip_arch(model_name: str, model_config_dir: Optional[str] = None) -> dict:
    """The widths of an open_clip ViT config that mmseg's SAN parts need."""
    import open_clip
    if model_config_dir is not None:
        open_clip.add_model_config(model_config_dir)
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise KeyError(f'unknown open_clip model {model_name!r}: register its json with '
                       f'model.clip.model_config_dir (open_clip.add_model_config)')
    v, t = cfg['vision_cfg'], cfg['text_cfg']
    img = v.get('image_size', 224)
    return dict(embed_dim=cfg['embed_dim'], width=v['width'], layers=v['layers'],
                heads=v['width'] // v.get('head_width', 64), patch_size=v['patch_size'],
                image_size=img if isinstance(img, int) else img[0],
                text_width=t['width'], text_heads=t['heads'], text_layers=t['layers'],
                context_length=t.get('context_length', 77), vocab_size=t.get('vocab_size', 49408),
                quick_gelu=bool(cfg.get('quick_gelu', False)))


def _open_clip_state_dict(clip: dict) -> tuple:
    """(state dict, quick_gelu) of ``clip``: its pretrained file / open_clip tag, or open_clip's
    random initialisation when ``pretrained`` is None (never uninitialised memory)."""
    import open_clip
    from aeroseg.models.clip_backbone import _load_clip_file
    name, pretrained = clip['model_name'], clip.get('pretrained')
    arch = clip_arch(name, clip.get('model_config_dir'))
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained) if pretrained else {}
    quick_gelu = clip.get('quick_gelu')
    if quick_gelu is None:  # OpenAI tags need QuickGELU (open_clip 3.3.0 only warns)
        quick_gelu = bool((tag_cfg or {}).get('quick_gelu', arch['quick_gelu']))
    if pretrained is None:
        torch_state = torch.random.get_rng_state()
        model = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)
        torch.random.set_rng_state(torch_state)  # building SAN stays seed-for-seed reproducible
        return model.state_dict(), quick_gelu
    if tag_cfg:
        try:
            path = open_clip.download_pretrained(tag_cfg, cache_dir=clip.get('cache_dir'))
        except Exception as e:
            raise CheckpointError(f'SAN CLIP {name}: could not download open_clip tag {pretrained!r} '
                                  f'({e}). Offline, set model.clip.pretrained=<local file>.') from e
    elif os.path.isfile(pretrained):
        path = pretrained
    else:
        raise CheckpointError(f'SAN CLIP {name}: model.clip.pretrained={pretrained!r} is neither an '
                              f'open_clip tag ({open_clip.list_pretrained_tags_by_model(name)}) nor '
                              f'a file')
    return _load_clip_file(path, f'SAN CLIP {name} weights {path!r}'), quick_gelu


@MODELS.register_module()
class SANSegmentor(OpenVocabSegmentor):
    """SAN on the suite's protocol: mmseg's SAN parts, vocabulary swapped through the seam.

    Args:
        image_encoder / text_encoder / decode_head: the mmseg configs of
            ``MultimodalEncoderDecoder`` (``VisionTransformer``, :class:`SANTextEncoder`,
            ``SideAdapterCLIPHead``); ``decode_head.num_classes`` and the class-CE
            ``class_weight`` are filled from the training vocabulary, the three activations
            from the CLIP (QuickGELU for OpenAI weights).
        clip: where the CLIP weights come from: ``dict(model_name='ViT-B-16', pretrained='openai'
            | <file> | None, model_config_dir=None, quick_gelu=None, cache_dir=None)``; the file is
            an OpenAI / open_clip state dict, converted to mmseg's SAN layout on load.
        encoder_resolution: CLIP input scale (0.5: SAN.CLIP_RESOLUTION, ``san/config.py``).
        size_divisor: test-time padding (32: SAN.SIZE_DIVISIBILITY).
        no_object_weight: class-CE weight of the no-object class (0.1: SAN.NO_OBJECT_WEIGHT).
        vocabulary, test_cfg, ignore_index: see :class:`OpenVocabSegmentor`.
    """

    def __init__(self, image_encoder: dict, text_encoder: dict, decode_head: dict,
                 clip: dict = dict(model_name='ViT-B-16', pretrained='openai'),
                 asymetric_input: bool = True, encoder_resolution: float = 0.5,
                 size_divisor: int = 32, no_object_weight: float = 0.1,
                 pixel_mean: Sequence[float] = _CLIP_MEAN, pixel_std: Sequence[float] = _CLIP_STD,
                 vocabulary: dict = dict(split='isaid', train='seen', test='all'),
                 test_cfg: Optional[dict] = None, ignore_index: int = 255,
                 data_preprocessor: Optional[dict] = None, init_cfg=None, train_cfg=None) -> None:
        super().__init__(vocabulary=vocabulary, test_cfg=test_cfg, ignore_index=ignore_index,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg, train_cfg=train_cfg)
        self.asymetric_input = asymetric_input
        self.encoder_resolution = encoder_resolution
        self.size_divisor = size_divisor
        self.clip_cfg = dict(clip)
        self.register_buffer('pixel_mean', torch.tensor(pixel_mean).view(1, 3, 1, 1), False)
        self.register_buffer('pixel_std', torch.tensor(pixel_std).view(1, 3, 1, 1), False)

        clip_sd, quick_gelu = _open_clip_state_dict(self.clip_cfg)
        act = dict(type='QuickGELU' if quick_gelu else 'GELU')
        # ConfigDicts: mmseg's SAN head reads its sub-configs by attribute (san_cfg.in_channels)
        image_encoder, text_encoder, decode_head = (ConfigDict(copy.deepcopy(dict(c))) for c in
                                                    (image_encoder, text_encoder, decode_head))
        for part, cfg in (('image_encoder', image_encoder), ('text_encoder', text_encoder),
                          ('decode_head.maskgen_cfg', decode_head['maskgen_cfg'])):
            given = cfg.setdefault('act_cfg', act)
            if dict(given) != act:
                raise ValueError(f'model.{part}.act_cfg={dict(given)} but the CLIP '
                                 f'({self.clip_cfg["model_name"]}, {self.clip_cfg.get("pretrained")}) '
                                 f'uses {act["type"]} (OpenAI weights need QuickGELU): drop the key '
                                 f'(it follows model.clip) or set model.clip.quick_gelu')
        text_encoder['vocabulary'] = list(self.train_vocabulary)
        self._complete_head_cfg(decode_head, no_object_weight)

        with DefaultScope.overwrite_default_scope('mmseg'):  # mmcv builds QuickGELU by scope
            self.image_encoder = MODELS.build(image_encoder)
            self.text_encoder = MODELS.build(text_encoder)
            self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.load_clip(clip_sd)

    # ------------------------------------------------------------------ hooks
    @classmethod
    def weight_fields(cls, model_cfg) -> Dict[str, str]:
        return {'vl': 'clip.pretrained'}

    @classmethod
    def mini_scale(cls, model, m) -> None:
        """The tiny CLIP (its widths read from its open_clip config) split 3 | 1 like ViT-B/16's
        9 | 3, CLIP at the mini input size (16 x 16 tokens; full: 320 px -> 20 x 20; at half size
        the mini CLIP would see 8 x 8 tokens, too coarse for the mini world's small classes) and a
        side network of width 64, 4 blocks, 2 heads, patch 8 (16 x 16 tokens; full: 40 x 40); deep supervision on its block 3 (full: 7 of 8); the rest as the
        full config (100 queries, losses, matching), 1,024 sampled points (full: 12,544 on 640^2
        crops, about the same share of the 128^2 mini crops)."""
        c = m.clip
        a = clip_arch(c['model_name'], c.get('model_config_dir'))
        split = a['layers'] * 3 // 4  # ViT-B/16: 9 of 12 (SAN.FEATURE_LAST_LAYER_IDX)
        step = split // 3
        model.clip = dict(model_name=c['model_name'], model_config_dir=c.get('model_config_dir'),
                          pretrained=c.get('pretrained'))
        model.encoder_resolution = 1.0
        ie = model.image_encoder
        ie.update(img_size=(a['image_size'],) * 2, patch_size=a['patch_size'], embed_dims=a['width'],
                  num_layers=split, num_heads=a['heads'],
                  out_indices=tuple(range(step - 1, split, step)))
        ie.pop('act_cfg', None)
        te = model.text_encoder
        te.update(embed_dims=a['text_width'], num_layers=a['text_layers'], num_heads=a['text_heads'],
                  output_dims=a['embed_dim'], context_length=a['context_length'],
                  total_vocab_size=a['vocab_size'])
        te.pop('act_cfg', None)
        dh = model.decode_head
        dh.deep_supervision_idxs = [3]
        dh.san_cfg.update(clip_channels=a['width'], embed_dims=64, patch_size=8)
        dh.san_cfg.cfg_encoder.update(num_encode_layer=4, num_heads=2)
        dh.san_cfg.cfg_decoder.update(num_heads=a['heads'], embed_channels=64, mlp_channels=64)
        dh.maskgen_cfg.update(num_layers=a['layers'] - split, embed_dims=a['width'],
                              num_heads=a['heads'], out_dims=a['embed_dim'])
        dh.maskgen_cfg.pop('act_cfg', None)
        dh.train_cfg.num_points = 1024

    # ------------------------------------------------------------------ building / weights
    def _complete_head_cfg(self, head: dict, no_object_weight: float) -> None:
        n = len(self.train_vocabulary)
        head['num_classes'] = n
        head.setdefault('ignore_index', self.ignore_index)
        losses = head.get('loss_decode')
        for loss in losses if isinstance(losses, (list, tuple)) else [losses]:
            if loss.get('loss_name') == 'loss_cls_ce':
                loss['class_weight'] = no_object_class_weight(
                    loss.get('class_weight'), n, no_object_weight,
                    'model.decode_head.loss_decode[loss_cls_ce].class_weight')

    def load_clip(self, clip_sd: Dict[str, Tensor]) -> None:
        """Load an OpenAI / open_clip state dict (converted to the SAN layout) into the CLIP parts;
        a clear error listing what does not fit."""
        what = f'SAN CLIP {self.clip_cfg["model_name"]} ({self.clip_cfg.get("pretrained")})'
        sd = clip_to_san(clip_sd, split=len(self.image_encoder.layers))
        if 'text_encoder.logit_scale' in sd:
            sd['text_encoder.logit_scale'] = sd['text_encoder.logit_scale'].reshape(())
        own = self.state_dict()
        wanted = [k for k in own if k.startswith(SAN_CLIP_PREFIXES) and k != 'text_encoder.bg_embed']
        missing = [k for k in wanted if k not in sd]
        unexpected = [k for k in sd if k not in own]
        shape = [f'{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}'
                 for k in sd if k in own and sd[k].shape != own[k].shape]
        if missing or unexpected or shape:
            raise CheckpointError(
                f'{what}: the converted CLIP does not fit the SAN config (split '
                f'{len(self.image_encoder.layers)}): missing {missing[:6]}, unexpected '
                f'{unexpected[:6]}, shape {shape[:4]}. Check model.image_encoder / text_encoder / '
                f'decode_head.maskgen_cfg widths and depths against the CLIP (ViT-B/16: 768 wide, '
                f'9 + 3 blocks, text 512 x 12).')
        self.load_state_dict(sd, strict=False)

    def init_weights(self):
        """mmseg's initialisation of what is not CLIP (side adapter, background embedding); the
        CLIP parts keep the weights loaded in ``__init__`` (the suite's convention; mmseg's
        ``RecWithAttnbias.init_weights`` without a ``Pretrained_Part`` checkpoint calls the
        missing ``nn.Module.init_weights`` and fails)."""
        self.decode_head.side_adapter_network.init_weights()
        if self.text_encoder.cat_bg:  # as CLIPTextEncoder.init_weights
            nn.init.normal_(self.text_encoder.bg_embed, std=self.text_encoder.bg_embed.shape[1] ** -0.5)
        self._is_init = True

    # ------------------------------------------------------------------ forward pieces
    def normalize(self, inputs: Tensor, data_samples: Optional[SampleList] = None) -> Tensor:
        """RGB 0..255 -> CLIP-normalised; the data preprocessor's padding set to 0 afterwards
        (upstream pads the normalised image with zeros, detectron2 ``ImageList``)."""
        return normalize_zero_pad(inputs, self.pixel_mean, self.pixel_std, data_samples)

    def san_forward(self, x: Tensor, names: Sequence[str], deep_supervision_idxs: List[int]):
        """mmseg's SAN on normalised ``x`` for ``names``: (mask proposals, class logits) per
        supervised side layer (``SideAdapterCLIPHead.forward``; the last is the output)."""
        self.text_encoder.vocabulary = list(names)  # the vocabulary swap (train: seen; test: any)
        class_embeds = self.text_encoder()  # (N + 1, C): names + learnable background
        clip_x = x
        if self.asymetric_input:  # as MultimodalEncoderDecoder.encode_decode
            clip_x = F.interpolate(x, scale_factor=self.encoder_resolution, mode='bilinear')
        feats = self.image_encoder(clip_x)
        return self.decode_head.forward([x, feats, class_embeds], deep_supervision_idxs)

    def forward_logits(self, inputs: Tensor, names: Sequence[str]) -> Dict[str, Tensor]:
        """SAN's semantic-inference scores (B, N, H, W) at the input size (``logits``: they are
        already scores, see :meth:`logits_to_scores`), plus the last layer's masks / class logits."""
        x = self.normalize(inputs)
        h, w = x.shape[-2:]
        d = self.size_divisor
        x = F.pad(x, (0, (-w) % d, 0, (-h) % d))
        mask_props, mask_logits = self.san_forward(x, names, [])
        pad = tuple(x.shape[-2:])
        scores = self.decode_head.predict_by_feat([mask_props[-1], mask_logits[-1]],
                                                  [dict(img_shape=pad, pad_shape=pad)])
        return dict(logits=scores[..., :h, :w], mask_props=mask_props[-1],
                    mask_logits=mask_logits[-1])

    def logits_to_scores(self, logits: Tensor) -> Tensor:
        """``forward_logits`` gives SAN's ``semantic_inference`` output, sum_q softmax(class
        logits)[q, c] * sigmoid(mask)[q] (no-object column dropped), in [0, num_queries]: divided
        by the number of queries so scores lie in [0, 1] as the seam promises (argmax unchanged)."""
        return logits / self.decode_head.side_adapter_network.query_embed.shape[1]

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """SAN's set-prediction losses (Hungarian matching, class CE, mask BCE + dice on sampled
        points, deep supervision) on the training vocabulary."""
        x = self.normalize(inputs, data_samples)
        # hidden unseen pixels: no class target, in no ground-truth mask (as unlabelled ones)
        gts = mask_targets(self, data_samples, inputs.shape[-2:])
        props, logits = self.san_forward(x, self.train_vocabulary,
                                         self.decode_head.deep_supervision_idxs)
        return add_prefix(self.decode_head.loss_by_feat(logits, props, gts), 'decode')

    def extract_feat(self, inputs: Tensor):
        x = self.normalize(inputs)
        if self.asymetric_input:
            x = F.interpolate(x, scale_factor=self.encoder_resolution, mode='bilinear')
        return self.image_encoder(x)

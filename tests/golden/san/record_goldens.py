"""Record SAN golden tensors from the official code (MendelXu/SAN); not a test.

    python tests/golden/san/record_goldens.py /path/to/MendelXu/SAN [--out tests/golden/san]

Imports, unchanged and by file path, ``san/model/side_adapter/{side_adapter,timm_wrapper}.py``,
``san/model/clip_utils/{visual,classifier,utils}.py``, ``san/model/attn_helper.py``,
``san/model/layers.py`` and ``san/model/san.py`` (for ``SAN.semantic_inference``). What upstream
needs and this environment lacks is replaced in ``sys.modules`` only:

* detectron2 / fvcore (configs, registries, logging, ``ShapeSpec``, ``CNNBlockBase``, ``Conv2d``,
  ``c2_xavier_fill``): minimal stand-ins below; none of them computes anything that is recorded
  (the weights they would initialise are overwritten by the shared random state dict);
* ``san/__init__.py``, ``san/model/__init__.py``, ``san/utils/__init__.py`` are not executed
  (they import the datasets, wandb and the training loop): their folders become bare packages;
* open_clip: upstream pins 2.16.0 (sequence-first blocks); the installed 3.3.0 blocks are
  batch-first. The CLIP ViT and text tower are built with open_clip 3.3.0 and made sequence-first
  for upstream's calls (``nn.MultiheadAttention.batch_first = False`` on the image blocks, which
  upstream calls one by one; ``Transformer.batch_first = False`` on the text tower, which upstream
  calls as a whole), and the attributes 3.x dropped (``input_patchnorm``, ``patchnorm_pre_ln``,
  ``global_average_pool``) are set to their 2.16 values (False). The block arithmetic
  (ln_1 -> attention -> ln_2 -> MLP, QuickGELU) is the same in both versions.
* timm: the installed 1.0.31; the side ViT is built by upstream's own route
  (``_create_vision_transformer('vit_tiny_patch16_224_in21k', ...)`` as in ``timm_wrapper.py``,
  with the tiny widths below instead of 240 / 6 / 8).

Sizes are tiny but keep every code path (official in brackets): CLIP width 32 [768], 4 blocks
[12], 4 heads [12], patch 8 [16], 32 px native [224], split after block 3 [9] with fusion map
0->0, 1->1, 2->2, 3->3 [0, 3, 6, 9 -> 0..3], 1 recognition block [3]; text width 32 [512],
2 blocks [12], 4 heads [8], context 77, embed 32 [512] (= the text width, as in ViT-B/16:
upstream's bg_embed is text_projection.shape[0] wide, mmseg's shape[1]); side ViT width 24 [240], 2 heads [6],
4 blocks [8], patch 16, 640 px (mmseg's SideAdapterNetwork sizes its position embedding for a
640 input, hard-coded), 5 queries [100], deep supervision [3, 4] [7, 8];
mask decoder 16 channels [256], 3 layers, 4 bias heads [12] x 1 layer, rescaled. The image is
96 x 96 (side grid 6 x 6; CLIP sees 48 x 48 -> 6 x 6: CLIP_RESOLUTION 0.5). Every parameter is moved off its init
(``p += 0.1 * randn``), ``bg_embed`` included; the token table is N(0, 0.02) from seed 7, not
stored (6 MB), rebuilt by the test. Outputs: ``tests/golden/san/san_goldens.pt``
(``torch.load(weights_only=True)``), read by ``tests/baselines/san/test_san_golden.py``.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import types

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
CFG = dict(clip_width=32, clip_layers=4, clip_heads=4, patch=8, clip_image=32, split=3,
           text_width=32, text_layers=2, text_heads=4, context=77, embed=32,
           side_width=24, side_heads=2, side_depth=4, side_patch=16, side_image=640, queries=5,
           deep_supervision=[3, 4], dec_channels=16, dec_layers=3, bias_heads=4, image=96,
           vocabulary=['ship', 'storage tank', 'harbor'], templates='vild')


# --------------------------------------------------------------------------- stand-ins
class _Anything:
    """Returned for any detectron2 / fvcore name not defined below: callable, decorator-safe."""

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        if len(a) == 1 and callable(a[0]) and not k:
            return a[0]
        return _Anything()

    def __getattr__(self, name):
        return _Anything()


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _Anything()


def _install_stubs() -> None:
    def mod(name, **attrs):
        m = _StubModule(name)
        m.__path__ = []
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    class ShapeSpec:
        def __init__(self, channels=None, height=None, width=None, stride=None):
            self.channels = channels

    class CNNBlockBase(nn.Module):
        def __init__(self, in_channels, out_channels, stride):
            super().__init__()
            self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    class Conv2d(nn.Conv2d):
        def __init__(self, *a, norm=None, activation=None, **k):
            super().__init__(*a, **k)

    def c2_xavier_fill(module):
        nn.init.kaiming_uniform_(module.weight, a=1)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0)

    class Registry:
        def __init__(self, name):
            self._obj = {}

        def register(self, obj=None):
            def deco(o):
                self._obj[o.__name__] = o
                return o
            return deco(obj) if obj is not None else deco

        def get(self, name):
            return self._obj[name]

    for name in ['detectron2', 'detectron2.config', 'detectron2.layers', 'detectron2.utils',
                 'detectron2.utils.logger', 'detectron2.utils.registry', 'detectron2.utils.memory',
                 'detectron2.utils.comm', 'detectron2.modeling', 'detectron2.modeling.postprocessing',
                 'detectron2.structures', 'detectron2.data', 'detectron2.projects',
                 'detectron2.projects.point_rend', 'detectron2.projects.point_rend.point_features',
                 'fvcore', 'fvcore.nn']:
        mod(name)
    sys.modules['detectron2.config'].configurable = lambda f: f
    sys.modules['detectron2.layers'].ShapeSpec = ShapeSpec
    sys.modules['detectron2.layers'].CNNBlockBase = CNNBlockBase
    sys.modules['detectron2.layers'].Conv2d = Conv2d
    sys.modules['detectron2.utils.logger'].log_first_n = lambda *a, **k: None
    sys.modules['detectron2.utils.registry'].Registry = Registry
    sys.modules['detectron2.modeling'].META_ARCH_REGISTRY = Registry('META_ARCH')
    mod('fvcore.nn.weight_init', c2_xavier_fill=c2_xavier_fill)
    sys.modules['fvcore.nn'].weight_init = sys.modules['fvcore.nn.weight_init']


def _import_upstream(root: str):
    """Upstream modules by file path; the package __init__ files are not run."""
    for pkg, sub in [('san', 'san'), ('san.model', 'san/model'), ('san.utils', 'san/utils'),
                     ('san.model.clip_utils', 'san/model/clip_utils'),
                     ('san.model.side_adapter', 'san/model/side_adapter')]:
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(root, sub)]
        sys.modules[pkg] = m

    def load(name):
        path = os.path.join(root, *name.split('.')) + '.py'
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    load('san.model.clip_utils.utils')
    visual = load('san.model.clip_utils.visual')
    classifier = load('san.model.clip_utils.classifier')
    clip_utils = sys.modules['san.model.clip_utils']
    clip_utils.get_predefined_templates = sys.modules['san.model.clip_utils.utils'].get_predefined_templates
    clip_utils.FeatureExtractor, clip_utils.RecWithAttnbiasHead = visual.FeatureExtractor, visual.RecWithAttnbiasHead
    clip_utils.PredefinedOvClassifier = classifier.PredefinedOvClassifier
    clip_utils.LearnableBgOvClassifier = classifier.LearnableBgOvClassifier
    timm_wrapper = load('san.model.side_adapter.timm_wrapper')
    side_adapter = load('san.model.side_adapter.side_adapter')
    sys.modules['san.model.side_adapter'].build_side_adapter_network = side_adapter.build_side_adapter_network
    san = load('san.model.san')
    return dict(visual=visual, classifier=classifier, timm_wrapper=timm_wrapper,
                side_adapter=side_adapter, san=san, layers=sys.modules['san.model.layers'])


# --------------------------------------------------------------------------- building
def _open_clip_model(c):
    import open_clip
    cfg = dict(embed_dim=c['embed'], quick_gelu=True,
               vision_cfg=dict(image_size=c['clip_image'], layers=c['clip_layers'],
                               width=c['clip_width'], head_width=c['clip_width'] // c['clip_heads'],
                               patch_size=c['patch']),
               text_cfg=dict(context_length=c['context'], vocab_size=49408, width=c['text_width'],
                             heads=c['text_heads'], layers=c['text_layers']))
    model = open_clip.model.CLIP(**cfg)
    v = model.visual
    v.input_patchnorm = False  # open_clip 2.16 attributes that 3.x dropped (their 2.16 values)
    v.patchnorm_pre_ln = False
    v.global_average_pool = False
    if not hasattr(v, 'output_tokens'):
        v.output_tokens = False
    for blk in v.transformer.resblocks:  # upstream calls image blocks one by one, (L, N, D)
        blk.attn.batch_first = False
    model.transformer.batch_first = False  # upstream calls the text tower on (L, N, D)
    return model, cfg


def build(up, c):
    torch.manual_seed(SEED)
    clip, clip_cfg = _open_clip_model(c)
    get_templates = sys.modules['san.model.clip_utils.utils'].get_predefined_templates
    ov = up['classifier'].LearnableBgOvClassifier(clip, templates=get_templates(c['templates']))
    fx = up['visual'].FeatureExtractor(clip.visual, last_layer_idx=c['split'],
                                       frozen_exclude=['positional_embedding'])
    rec = up['visual'].RecWithAttnbiasHead(clip.visual, first_layer_idx=c['split'],
                                           frozen_exclude=[], cross_attn=False,
                                           sos_token_format='cls_token',
                                           sos_token_num=c['queries'], downsample_method='max')
    from timm.models.vision_transformer import _create_vision_transformer
    vit = _create_vision_transformer(
        'vit_tiny_patch16_224_in21k', pretrained=False, patch_size=c['side_patch'],
        embed_dim=c['side_width'], depth=c['side_depth'], num_heads=c['side_heads'],
        img_size=c['side_image'], drop_path_rate=0.0, fc_norm=False, num_classes=0,
        embed_layer=up['timm_wrapper'].PatchEmbed)
    sa_mod = up['side_adapter']
    fusion_map = {i: i for i in range(4)}  # "0->0", "1->1", "2->2", "3->3"
    fusion_layers = nn.ModuleDict({f'layer_{t}': up['layers'].build_fusion_layer(
        'add', c['clip_width'], vit.num_features) for t in fusion_map})
    decoder = sa_mod.MLPMaskDecoder(in_channels=vit.num_features, total_heads=c['bias_heads'],
                                    total_layers=1, embed_channels=c['dec_channels'],
                                    mlp_channels=c['dec_channels'], mlp_num_layers=c['dec_layers'],
                                    rescale_attn_bias=True)
    san_net = sa_mod.RegionwiseSideAdapterNetwork(
        vit_model=vit, fusion_layers=fusion_layers, mask_decoder=decoder,
        num_queries=c['queries'], fusion_map=fusion_map,
        deep_supervision_idxs=c['deep_supervision'])
    model = nn.Module()  # the official SAN's attribute names (san.py), for the state dict
    model.clip_visual_extractor, model.clip_rec_head = fx, rec
    model.side_adapter_network, model.ov_classifier = san_net, ov
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for p in model.parameters():
            p += 0.1 * torch.randn(p.shape, generator=g)
        # the 49,408-row token table is regenerated from its seed by the test (not stored)
        ov.token_embedding.weight.copy_(token_embedding(ov.token_embedding.weight.shape))
    return model.eval(), clip_cfg


TOKEN_SEED = 7


def token_embedding(shape) -> torch.Tensor:
    """The token-embedding table of the goldens (not stored: 6 MB): N(0, 0.02) from TOKEN_SEED."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(TOKEN_SEED)) * 0.02


def run(up, model, c):
    """SAN.forward's inference path (san.py), step by step, on a normalised image."""
    g = torch.Generator().manual_seed(SEED + 2)
    image = torch.randn(1, 3, c['image'], c['image'], generator=g)
    out = dict(inputs=dict(image=image))
    with torch.no_grad():
        ov = model.ov_classifier
        weight = ov.logit_scale.exp() * ov.get_classifier_by_vocabulary(c['vocabulary'])
        clip_in = nn.functional.interpolate(image, scale_factor=0.5, mode='bilinear')
        feats = model.clip_visual_extractor(clip_in)
        out['text_classifier'] = weight
        out['clip_features'] = torch.stack([feats[i] for i in range(c['split'] + 1)])
        out['clip_cls'] = feats[f'{c["split"]}_cls_token'][0]
        sa = model.side_adapter_network
        sa.train()  # every deep-supervision output (no dropout anywhere)
        preds_all, biases_all = sa(image, feats)
        sa.eval()
        preds, biases = sa(image, feats)
        out['side_mask_preds_train'] = torch.stack(preds_all)
        out['side_attn_bias_train'] = torch.stack([b[0] for b in biases_all])
        out['side_mask_preds'] = preds[-1]
        out['side_attn_bias'] = biases[-1][0]
        rec = model.clip_rec_head
        h, w = feats[c['split']].shape[-2:]
        out['rec_attn_mask'] = rec._build_attn_biases(biases[-1], target_shape=(h, w))[0]
        emb = rec(feats, biases[-1], normalize=True)
        out['mask_embeds'] = emb
        logits = torch.einsum('bqc,nc->bqn', emb, weight)
        out['mask_logits'] = logits
        mask = nn.functional.interpolate(preds[-1], size=image.shape[-2:], mode='bilinear',
                                         align_corners=False)
        out['semseg'] = up['san'].SAN.semantic_inference(None, logits[0], mask[0])[None]
        # MLPMaskDecoder alone on its own random inputs
        q = torch.randn(2, c['queries'], c['side_width'], generator=g)
        x = torch.randn(2, c['side_width'], 6, 5, generator=g)
        dm, db = sa.mask_decoder(q, x)
        out['inputs'].update(decoder_query=q, decoder_x=x)
        out['decoder_masks'], out['decoder_bias'] = dm, db[0]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('upstream', help='a checkout of github.com/MendelXu/SAN')
    ap.add_argument('--out', default=HERE)
    args = ap.parse_args(argv)
    root = os.path.abspath(args.upstream)
    if not os.path.isfile(os.path.join(root, 'san', 'model', 'san.py')):
        sys.exit(f'record_goldens.py: {root!r} is not a MendelXu/SAN checkout (no san/model/san.py); '
                 f'clone https://github.com/MendelXu/SAN and pass its path')
    try:
        commit = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True,
                                text=True, check=True).stdout.strip()
    except Exception:
        commit = os.environ.get('SAN_COMMIT', 'unknown')
    _install_stubs()
    up = _import_upstream(root)
    model, clip_cfg = build(up, CFG)
    out = run(up, model, CFG)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()
             if k != 'ov_classifier.token_embedding.weight'}
    rec = dict(upstream=f'MendelXu/SAN@{commit}', config=CFG, clip_cfg=clip_cfg,
               modules='san/model/{san.py:SAN.semantic_inference, side_adapter/side_adapter.py:'
                       'RegionwiseSideAdapterNetwork+MLPMaskDecoder, clip_utils/visual.py:'
                       'FeatureExtractor+RecWithAttnbiasHead, clip_utils/classifier.py:'
                       'LearnableBgOvClassifier}',
               state_dict=state, token_embedding=dict(seed=TOKEN_SEED, std=0.02, shape=[49408, CFG['text_width']]),
               **out)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'san_goldens.pt')
    torch.save(rec, path)
    print(f'wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB) from MendelXu/SAN@{commit}')


if __name__ == '__main__':
    main()

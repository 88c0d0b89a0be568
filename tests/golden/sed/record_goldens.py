"""Record SED golden tensors from the official code (xb534/SED); not a test.

    python tests/golden/sed/record_goldens.py /path/to/xb534/SED [--out tests/golden/sed]

Imports, unchanged and by file path: ``sed/modeling/transformer/{model,convnext}.py`` (the
Aggregator and its blocks; they need torch, einops and timm), ``open_clip/src/open_clip/timm_model.py``
(SED's bundled open_clip 2.10.1 ``TimmModel`` with its dense ``forward``) and
``sed/modeling/transformer/sed_predictor.py`` (for ``SEDPredictor.class_embeddings``) with
``sed/third_party/imagenet_templates.py``. What upstream needs and this environment lacks is
replaced in ``sys.modules`` only: detectron2 (``configurable``, ``Conv2d``) and fvcore for
``sed_predictor.py`` (nothing of them runs), the bundled open_clip package around
``timm_model.py`` (only ``utils.freeze_batch_norm_2d``, unused), ``sed.third_party.clip``
(unused: the tokenizer is open_clip 3.3.0's, the same BPE), and ``torch.Tensor.cuda`` becomes the
identity while ``fast_conv_decoder`` / ``class_embeddings`` run (they hard-code ``.cuda()``).

Sizes are tiny but keep every code path (official in brackets): hidden 32 [128], decoder dims
(32, 16, 16) [(64, 32, 16)], guidance 24 / 16 / 8 channels [512 / 256 / 128] projected to 8 / 8 / 4
[32 / 16 / 8], corr guidance 4 -> 8 -> 8 -> 4 [80 -> 32 -> 16 -> 8], 4 templates [80], 4 heads,
kernel 9, pooling 2 x 2, cost map 4 x 4 [24 x 24], CLIP dim 16 [640]. The dense CLIP golden uses a
timm ConvNeXt registered here as ``sed_golden_convnext`` (timm's ``ConvNeXt``, dims 8/16/24/32,
one block per stage; ConvNeXt-B: 128..1024, 3/3/27/3) in a ``TimmModel`` with
``convnext_base_w_320.json``'s head (``timm_pool ''``, ``timm_proj 'linear'``), embed 16 [640].
``official_shapes``: key -> shape of the full-size ``Aggregator`` (convnextB_768.yaml).
Every parameter is moved off its init (``p += 0.1 * randn``). Output:
``tests/golden/sed/sed_goldens.pt`` (``torch.load(weights_only=True)``), read by
``tests/baselines/sed/test_sed_golden.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
GOLDEN_CONVNEXT = dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))


def register_golden_convnext():
    """timm ConvNeXt of the golden's widths (the test registers the same)."""
    from timm.models import register_model
    from timm.models._registry import is_model
    from timm.models.convnext import _create_convnext
    if is_model('sed_golden_convnext'):
        return

    @register_model
    def sed_golden_convnext(pretrained=False, **kwargs):
        return _create_convnext('sed_golden_convnext', pretrained=False, **dict(GOLDEN_CONVNEXT, **kwargs))


def _load(name, path, package=None):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    if package:
        mod.__package__ = package
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _pkg(name, path=None):
    m = types.ModuleType(name)
    m.__path__ = [path] if path else []
    sys.modules[name] = m
    return m


def load_upstream(root):
    t = os.path.join(root, 'sed', 'modeling', 'transformer')
    _pkg('sed_up', t)
    _load('sed_up.convnext', os.path.join(t, 'convnext.py'), 'sed_up')
    model = _load('sed_up.model', os.path.join(t, 'model.py'), 'sed_up')
    # bundled open_clip 2.10.1: only timm_model.py (+ the one helper it imports)
    oc = os.path.join(root, 'open_clip', 'src', 'open_clip')
    _pkg('sed_oc', oc)
    utils = types.ModuleType('sed_oc.utils')
    from open_clip.utils import freeze_batch_norm_2d
    utils.freeze_batch_norm_2d = freeze_batch_norm_2d
    sys.modules['sed_oc.utils'] = utils
    timm_model = _load('sed_oc.timm_model', os.path.join(oc, 'timm_model.py'), 'sed_oc')
    # sed_predictor.py for class_embeddings: detectron2 / fvcore / sed.third_party.clip stand-ins
    for n in ('fvcore', 'fvcore.nn', 'detectron2', 'detectron2.config', 'detectron2.layers'):
        _pkg(n)
    sys.modules['fvcore.nn'].weight_init = types.ModuleType('fvcore.nn.weight_init')
    sys.modules['fvcore.nn.weight_init'] = sys.modules['fvcore.nn'].weight_init
    sys.modules['detectron2.config'].configurable = lambda f: f
    sys.modules['detectron2.layers'].Conv2d = torch.nn.Conv2d
    _pkg('sed', os.path.join(root, 'sed'))
    _pkg('sed.third_party', os.path.join(root, 'sed', 'third_party'))
    sys.modules['sed.third_party.clip'] = types.ModuleType('sed.third_party.clip')
    tpl = _load('sed.third_party.imagenet_templates',
                os.path.join(root, 'sed', 'third_party', 'imagenet_templates.py'), 'sed.third_party')
    sys.modules['sed.third_party'].clip = sys.modules['sed.third_party.clip']
    sys.modules['sed.third_party'].imagenet_templates = tpl
    sys.modules['sed_up'].__path__.append(t)
    predictor = _load('sed_up.sed_predictor', os.path.join(t, 'sed_predictor.py'), 'sed_up')
    return model, timm_model, predictor, tpl


@contextlib.contextmanager
def cuda_is_identity():
    old = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = old


def perturb(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return module


def sd(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


AGG = dict(text_guidance_dim=0, text_guidance_proj_dim=0, appearance_guidance_dim=0,
           appearance_guidance_proj_dim=0, decoder_dims=(32, 16, 16), decoder_guidance_dims=(24, 16, 8),
           decoder_corr_guidance_dims=(4, 8, 8), decoder_guidance_proj_dims=(8, 8, 4), num_layers=2,
           nheads=4, hidden_dim=32, pooling_size=(2, 2), feature_resolution=(4, 4), window_size=12,
           attention_type='linear', prompt_channel=4, cnext_type='V1', kernel_size=(9, 9, 9))


def record(root):
    model, timm_model, predictor, tpl = load_upstream(root)
    out = {}
    commit = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()
    out['upstream'] = f'xb534/SED@{commit}'
    out['imagenet_templates'] = list(tpl.IMAGENET_TEMPLATES)

    torch.manual_seed(0)
    m = perturb(model.ConvNextBlock(16, 9, 0.0, 1.0), 100).eval()
    x = torch.randn(2, 16, 6, 6)
    out['convnext_block'] = dict(config=dict(dim=16, kernel_size=9, layer_scale=1.0), state_dict=sd(m),
                                 inputs=dict(x=x), output=m(x).detach())

    torch.manual_seed(1)
    for pool in ((2, 2), (1, 1)):
        m = perturb(model.ClassTransformerLayer(16, 0, nheads=4, attention_type='linear', pooling_size=pool), 101).eval()
        x = torch.randn(2, 16, 3, 6, 6)
        out[f'class_attention_pool{pool[0]}'] = dict(config=dict(hidden_dim=16, guidance_dim=0, nheads=4, pooling_size=pool),
                                                     state_dict=sd(m), inputs=dict(x=x), output=m(x, None).detach())

    torch.manual_seed(2)
    m = perturb(model.Up(32, 16, 8, 0, 4, 'linear', (2, 2), 'V1', 9), 102).eval()
    x, g, cg = torch.randn(6, 32, 6, 6), torch.randn(2, 8, 12, 12), torch.randn(6, 8, 12, 12)
    out['up'] = dict(config=dict(in_channels=32, out_channels=16, guidance_channels=8, nheads=4, pooling_size=(2, 2),
                                 kernel_size=9), state_dict=sd(m), inputs=dict(x=x, guidance=g, corr_guidance=cg),
                     output=m(x, None, g, cg).detach())

    def agg_inputs(T, h):
        img = torch.randn(1, 16, h, h)
        text = torch.nn.functional.normalize(torch.randn(1, T, 4, 16), dim=-1)
        guid = [torch.randn(1, 32, h, h), torch.randn(1, 24, 2 * h, 2 * h), torch.randn(1, 16, 4 * h, 4 * h),
                torch.randn(1, 8, 8 * h, 8 * h)]  # res5 (unused upstream), res4, res3, res2
        return img, text, guid, torch.tensor(4.6052)

    torch.manual_seed(3)
    m = perturb(model.Aggregator(**AGG), 103).eval()
    img, text, guid, ls = agg_inputs(3, 4)
    with torch.no_grad():
        outs = m(img, text, guid, ls)
        corr = m.correlation(img, text, ls)
    out['aggregator'] = dict(config=AGG, state_dict=sd(m),
                             inputs=dict(img_feats=img, text_feats=text, res5=guid[0], res4=guid[1], res3=guid[2],
                                         res2=guid[3]),
                             output=outs[0], aux=list(outs[1:]), corr=corr)

    torch.manual_seed(4)  # the same weights with TEST.FAST_INFERENCE True, TOPK 1; 6 classes, 2 x 2 map
    img, text, guid, ls = agg_inputs(6, 2)
    m.fast_infer, m.topK = True, 1
    with torch.no_grad(), cuda_is_identity():
        fast = m(img, text, guid, ls)[0]
    m.fast_infer = False
    with torch.no_grad():
        full = m(img, text, guid, ls)
        kept = m.get_valid_idx_from_mask(full[1], 1)
    out['aggregator_topk'] = dict(config=dict(fast_inference=True, topK=1),  # state_dict: 'aggregator'
                                  inputs=dict(img_feats=img, text_feats=text, res5=guid[0], res4=guid[1],
                                              res3=guid[2], res2=guid[3]),
                                  output=fast, head0_kept=kept)

    # key -> shape of the full-size Aggregator of configs/convnextB_768.yaml (80 templates)
    full = model.Aggregator(text_guidance_dim=0, text_guidance_proj_dim=0, appearance_guidance_dim=1024,
                            appearance_guidance_proj_dim=128, decoder_dims=(64, 32, 16),
                            decoder_guidance_dims=(512, 256, 128), decoder_guidance_proj_dims=(32, 16, 8),
                            num_layers=2, nheads=4, hidden_dim=128, pooling_size=(2, 2), feature_resolution=(24, 24),
                            window_size=12, attention_type='linear', prompt_channel=80, cnext_type='V1',
                            kernel_size=(9, 9, 9))
    out['official_shapes'] = {k: list(v.shape) for k, v in full.state_dict().items()}

    register_golden_convnext()
    torch.manual_seed(5)
    m = perturb(timm_model.TimmModel('sed_golden_convnext', 16, image_size=64, pool='', proj='linear',
                                     drop=0.0, drop_path=0.0), 105).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        o = m(x, dense=True)
    out['clip_dense'] = dict(config=dict(timm_model_name='sed_golden_convnext', embed_dim=16, image_size=64,
                                         timm_pool='', timm_proj='linear', **GOLDEN_CONVNEXT),
                             state_dict=sd(m), inputs=dict(x=x), output={k: v.detach() for k, v in o.items()})

    # text: SEDPredictor.class_embeddings on a stand-in text model (a fixed linear map of the tokens)
    import open_clip
    tok = open_clip.get_tokenizer('convnext_base_w_320')
    torch.manual_seed(6)
    W = torch.randn(77, 16)

    class FakeClip:
        def encode_text(self, tokens):
            return tokens.float() @ W
    names = ['ship', 'ground track field, sports field', 'harbor']
    templates = list(tpl.IMAGENET_TEMPLATES[:4])
    fake_self = types.SimpleNamespace(tokenizer=tok)
    with torch.no_grad(), cuda_is_identity():
        emb = predictor.SEDPredictor.class_embeddings(fake_self, names, templates, FakeClip())
    out['class_embeddings'] = dict(names=names, templates=templates, W=W,
                                   output=emb.permute(1, 0, 2).float())  # as SEDPredictor stores it: (T, P, C)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('sed_root')
    ap.add_argument('--out', default=HERE)
    a = ap.parse_args()
    sys.path.insert(0, REPO)
    res = record(os.path.abspath(a.sed_root))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, 'sed_goldens.pt')
    torch.save(res, path)
    print(f'wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB) from {res["upstream"]}')


if __name__ == '__main__':
    main()

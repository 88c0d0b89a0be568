"""Record SCAN golden tensors from the official code (yongliu20/SCAN); not a test.

    python tests/golden/scan/record_goldens.py /path/to/yongliu20/SCAN [--out tests/golden/scan]

SCAN is CC BY-NC 4.0: nothing of it is copied here. Imported unchanged, by file path, from the
checkout: ``scan/frequency.py`` (``LFM``, ``MLP``, ``CA``), ``scan/modeling/clip_adapter/utils.py``
(``crop_with_mask``), ``open_clip_training/src/open_clip/transformer.py`` (the forked
``VisionTransformer`` with ``get_embedding`` and the contextual shift ``bg_add_cls``) and
``scan/modeling/pixel_decoder/ops/functions/ms_deform_attn_func.py``
(``ms_deform_attn_core_pytorch``). Stand-ins, in ``sys.modules`` only:

* ``detectron2.utils.comm`` (imported by ``utils.py`` for functions the recorded code never
  calls) and the compiled ``MultiScaleDeformableAttention`` extension (imported at the top of
  ``ms_deform_attn_func.py``; only its pure-torch reference function is called);
* ``open_clip_training/src/open_clip`` becomes a bare package (its ``__init__`` is not executed:
  it imports the training code); ``transformer.py`` then resolves ``.utils`` / ``.pos_embed``;
* ``LFM.make_gaussian`` calls ``.cuda()``: ``torch.Tensor.cuda`` is the identity while recording
  (CPU machine; the Gaussian is the same tensor on either device).

The integration stack is ``SCAN.forward`` (``scan/ovseg_model.py`` L206-236) written out below
(reshape of the layer tokens to the grid, LFM per layer with its sigma, concatenation, MLP, CA,
flatten to sequences of one, ``+ learnable_weight * normalised final_cls_token``, encoder, reshape)
around the official modules; its input tokens come from the official ViT's ``get_embedding``.

Sizes are tiny but keep every code path (official in brackets): CLIP width 16 [768], 6 blocks
[12], 4 heads [12], patch 8 [16], 32 px [224] -> 4 x 4 grid [14 x 14], output 16 [512]; SI layers
[2, 4, 6] [6, 9, 12] with sigmas [3, 2, 1] [9, 7, 3]; SCAN_DIM 16 [512] (8 heads as upstream),
CA 5 layers, encoder 5 layers with FFN 64 [torch's default 2048, which upstream keeps]; 2 images x 5 queries [100]; contextual shift after blocks
[1, 3, 5] (as upstream) with ratio 0.5 [0.15] after ``random.seed(11)``, and ratio 0. Every
parameter is moved off its init (``p += 0.1 * randn``). Output: ``scan_goldens.pt``
(``torch.load(weights_only=True)``), read by ``tests/baselines/scan/test_scan_golden.py``.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import types

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = dict(width=16, layers=6, heads=4, patch=8, image=32, embed=16, si_layers=[2, 4, 6],
           sigmas=[3.0, 2.0, 1.0], scan_dim=16, num_ca=5, num_enc=5, batch=2, queries=5,
           replace_layer=[1, 3, 5], replace_ratio=0.5, shift_seed=11, crops=3, enc_ffn=64)


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _stubs() -> None:
    d2 = types.ModuleType('detectron2')
    utils = types.ModuleType('detectron2.utils')
    comm = types.ModuleType('detectron2.utils.comm')
    comm.get_local_rank = lambda: 0
    comm.synchronize = lambda: None
    d2.utils, utils.comm = utils, comm
    sys.modules.update({'detectron2': d2, 'detectron2.utils': utils, 'detectron2.utils.comm': comm})
    sys.modules['MultiScaleDeformableAttention'] = types.ModuleType('MultiScaleDeformableAttention')


def _perturb(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p += 0.1 * torch.randn(p.shape, generator=g)


def _sd(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def record(repo: str) -> dict:
    _stubs()
    freq = _load(os.path.join(repo, 'scan/frequency.py'), 'scan_frequency')
    cutils = _load(os.path.join(repo, 'scan/modeling/clip_adapter/utils.py'), 'scan_clip_utils')
    msda = _load(os.path.join(repo, 'scan/modeling/pixel_decoder/ops/functions/ms_deform_attn_func.py'),
                 'scan_msda')
    pkg = types.ModuleType('scan_open_clip')
    pkg.__path__ = [os.path.join(repo, 'open_clip_training/src/open_clip')]
    sys.modules['scan_open_clip'] = pkg
    oc = importlib.import_module('scan_open_clip.transformer')
    torch.Tensor.cuda = lambda self, *a, **k: self  # LFM.make_gaussian's .cuda() on a CPU machine
    c = CFG
    out = {}

    # LFM alone
    torch.manual_seed(0)
    lfm = freq.LFM(num_channels=8)
    _perturb(lfm, 100)
    x = torch.randn(2, 8, 6, 6)
    out['lfm'] = dict(state_dict=_sd(lfm), inputs=dict(x=x, sigma=3.0),
                      output=lfm(x, sigma=3.0).detach(), module='scan/frequency.py:LFM')

    # the official ViT: get_embedding (original CLIP) and the contextual shift (CS-CLIP pass)
    torch.manual_seed(1)
    vit = oc.VisionTransformer(image_size=c['image'], patch_size=c['patch'], width=c['width'],
                               layers=c['layers'], heads=c['heads'], mlp_ratio=4.0,
                               output_dim=c['embed']).eval()
    _perturb(vit, 101)
    imgs = torch.randn(c['batch'], 3, c['image'], c['image'])
    with torch.no_grad():
        feats = vit(imgs, get_embedding=True)
    clip_out = dict(tokens=torch.stack([feats[i].transpose(0, 1) for i in range(c['layers'] + 1)]),
                    cls=torch.stack([feats[f'{i}_cls_token'][0] for i in range(c['layers'] + 1)]),
                    embed=feats['final_cls_token'])
    out['clip'] = dict(state_dict=_sd(vit), inputs=dict(x=imgs), output=clip_out,
                       module='open_clip_training/src/open_clip/transformer.py:VisionTransformer'
                              '.forward(get_embedding=True)')

    # contextual shift: crops of image 0 (upstream's batch of one at test)
    g = torch.Generator().manual_seed(2)
    regions = torch.randn(c['crops'], 3, c['image'], c['image'], generator=g)
    masks = torch.zeros(c['crops'], 1, c['image'], c['image'])
    masks[0, :, 3:13, 5:20] = 1
    masks[1, :, 16:30, 0:9] = 1
    masks[2, :, 0:32, 12:14] = 1  # a 2-px stripe: fg patches by ceil of the patch average
    with torch.no_grad():
        first = vit(imgs[:1], get_embedding=True)
        random.seed(c['shift_seed'])
        shifted = vit(regions, m=masks, original_features=first, bg_add_cls=True,
                      replace_ratio=c['replace_ratio'], replace_layer=c['replace_layer'])
        plain = vit(regions, m=masks, original_features=first, bg_add_cls=True,
                    replace_ratio=0.0, replace_layer=c['replace_layer'])
    out['shift'] = dict(inputs=dict(regions=regions, masks=masks), output=shifted, ratio0=plain,
                        module='open_clip_training/src/open_clip/transformer.py:VisionTransformer'
                               '.forward(bg_add_cls=True)')

    # the integration stack of SCAN.forward around the official LFM / MLP / CA / encoder
    torch.manual_seed(3)
    lfm = freq.LFM(num_channels=c['width'])
    mlp = freq.MLP(c['width'], c['scan_dim'])
    ca = freq.CA(input_dim=c['scan_dim'], num=c['num_ca'])
    layer = nn.TransformerEncoderLayer(d_model=c['scan_dim'], nhead=8, batch_first=True,
                                       dim_feedforward=c['enc_ffn'])
    enc = nn.TransformerEncoder(layer, num_layers=c['num_enc'])
    learnable_weight = nn.Parameter(torch.tensor([0.1]))
    stack = nn.ModuleDict(dict(LFM=lfm, oriclip_mlp=mlp, fusion_decoder=ca,
                               lightweight_transformer=enc))
    _perturb(stack, 103)
    with torch.no_grad():
        learnable_weight += 0.05
    stack.eval()
    queries = torch.randn(c['batch'], c['queries'], c['scan_dim'])
    grid = c['image'] // c['patch']
    with torch.no_grad():
        hw = []
        for sigma_i, o_id in enumerate(c['si_layers']):  # ovseg_model.py L208-213
            _, b, ch = feats[o_id].shape
            f = feats[o_id].permute(1, 2, 0).reshape(b, ch, grid, grid)
            f = lfm(f, sigma=c['sigmas'][sigma_i])
            hw.append(f.flatten(-2).permute(2, 0, 1))
        hw = mlp(torch.concat(hw, dim=0).transpose(0, 1))  # L214-215
        cls = feats['final_cls_token']
        cls = (cls / cls.norm(dim=-1, keepdim=True)).unsqueeze(1)  # L218-220
        q = ca(queries, hw).flatten(0, 1).unsqueeze(1)  # L225-228
        cls = cls.expand(-1, c['queries'], -1).flatten(0, 1).unsqueeze(1)  # L230-232
        q = enc(q + learnable_weight * cls).reshape(-1, c['queries'], c['scan_dim'])  # L235-236
        enc_alone = enc(queries.flatten(0, 1).unsqueeze(1)).reshape(queries.shape)
    sd = _sd(stack)
    sd['learnable_weight'] = learnable_weight.detach().clone()
    out['integration'] = dict(state_dict=sd, inputs=dict(queries=queries), output=q,
                              encoder_alone=enc_alone, memory=hw,
                              module='scan/ovseg_model.py:SCAN.forward L206-236')

    # crop_with_mask (mean fill, expand 1.0 and 1.3)
    g = torch.Generator().manual_seed(4)
    image = torch.rand(3, 20, 24, generator=g) * 255
    mask = torch.zeros(20, 24)
    mask[4:15, 6:19] = (torch.rand(11, 13, generator=g) > 0.3).float()
    ys, xs = torch.where(mask > 0)
    box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
    fill = [255.0 * m for m in (0.48145466, 0.4578275, 0.40821073)]
    crops = {}
    for ratio in (1.0, 1.3):
        r, m = cutils.crop_with_mask(image, mask, box, fill=fill, expand_ratio=ratio)
        crops[str(ratio)] = dict(region=r, mask=m)
    out['crop'] = dict(inputs=dict(image=image, mask=mask, box=box, fill=torch.tensor(fill)),
                       output=crops, module='scan/modeling/clip_adapter/utils.py:crop_with_mask')

    # the official pure-torch deformable attention core (what CPU / no-CUDA-op runs use)
    g = torch.Generator().manual_seed(5)
    shapes = torch.tensor([[6, 8], [3, 4], [2, 2]])
    n_val = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.randn(2, n_val, 4, 8, generator=g)
    loc = torch.rand(2, 7, 4, 3, 4, 2, generator=g)
    w = torch.rand(2, 7, 4, 3, 4, generator=g).flatten(-2).softmax(-1).view(2, 7, 4, 3, 4)
    out['msda'] = dict(inputs=dict(value=value, shapes=shapes, loc=loc, weights=w),
                       output=msda.ms_deform_attn_core_pytorch(value, shapes, loc, w),
                       module='scan/modeling/pixel_decoder/ops/functions/ms_deform_attn_func.py'
                              ':ms_deform_attn_core_pytorch')
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('repo', help='a checkout of yongliu20/SCAN')
    ap.add_argument('--out', default=HERE)
    args = ap.parse_args()
    try:
        commit = subprocess.check_output(['git', '-C', args.repo, 'rev-parse', 'HEAD'],
                                         text=True, stderr=subprocess.DEVNULL).strip()
    except Exception:
        commit = os.environ.get('SCAN_COMMIT', 'unknown')
    goldens = record(args.repo)
    goldens.update(upstream=f'yongliu20/SCAN@{commit}', config=CFG)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'scan_goldens.pt')
    torch.save(goldens, path)
    print(f'wrote {path} ({os.path.getsize(path):,} bytes) from {goldens["upstream"]}')


if __name__ == '__main__':
    main()

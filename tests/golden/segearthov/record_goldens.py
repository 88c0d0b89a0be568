"""Record the SegEarth-OV golden tensors by running the official code (not part of the test run).

Needs a checkout of likyoo/SegEarth-OV at ``UPSTREAM_COMMIT`` outside this repository (the
repository has no licence: none of it is copied here, it is imported from that folder)::

    python tests/golden/segearthov/record_goldens.py --upstream /work/scratch/segearthov/upstream

(``--upstream`` defaults to ``$SEGEARTHOV_UPSTREAM`` or /work/scratch/segearthov/upstream; without a
checkout the script says so and exits 2.) Run it with the suite's venv (torch, mmseg, mmengine).
It never imports ``aeroseg``: the official code imports its own bundled open_clip 2.24 under the
name ``open_clip``. Shims, all outside the official files:

* stub modules for ``BLIP.models.blip_retrieval`` and ``gem``: imported at the top of
  ``segearth_segmentor.py`` but used only for other backbones (they need transformers, cv2, ...);
* ``simfeatup_dev.upsamplers.AdaptiveConv`` (FeatUp's CUDA extension, absent here) is set to an
  object whose ``apply`` is the official pure-torch ``adaptive_conv_py_simple`` of the same file;
* ``segearth_segmentor.create_model`` returns a tiny CLIP built with the bundled open_clip's own
  ``CLIP`` class (the official ``__init__`` otherwise downloads OpenAI ViT-B/16), ``device='cpu'``,
  and the upsampler is attached after ``__init__`` (which would call ``.cuda().half()``);
* ``torch.Tensor.half`` is a no-op while the official code runs: it casts to fp16 for the GPU;
  the goldens are float32 on CPU.

Weights: the official modules' default init, then ``p += 0.05 * randn`` (own seed) so that every
parameter matters, then rounded to float16 values (stored as float16: half the bytes; both sides
run them as float32, so they are exactly shared). Images are stored as uint8.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import torch

UPSTREAM = 'likyoo/SegEarth-OV'
UPSTREAM_COMMIT = '3e22a969b32c6d751bdbba64a88a0b670e630f55'
OUT = Path(__file__).resolve().parent
DEFAULT_UPSTREAM = os.environ.get('SEGEARTHOV_UPSTREAM', '/work/scratch/segearthov/upstream')
CKPT_NAME = 'simfeatup_dev/weights/clip_jbu_stack_cocostuff.ckpt'

# tiny CLIP: patch 16 as ViT-B/16 (the x16 upsampler maps its grid back to pixels), native 64 px
# (4 x 4 tokens), width 32, 4 heads, 2 blocks, embed 8; QuickGELU as OpenAI CLIP.
VISION = dict(image_size=64, layers=2, width=32, head_width=8, patch_size=16)
TEXT = dict(context_length=77, vocab_size=49408, width=16, heads=2, layers=1)
EMBED = 8
OPEN_CLIP_CONFIG = dict(embed_dim=EMBED, quick_gelu=True, vision_cfg=VISION, text_cfg=TEXT)
# SegEarth-OV segearth_segmentor.py SegDataPreProcessor
MEAN = torch.tensor([122.771, 116.746, 104.094]).view(1, 3, 1, 1)
STD = torch.tensor([68.501, 66.632, 70.323]).view(1, 3, 1, 1)


def _import_upstream(root: Path):
    sys.path.insert(0, str(root))
    blip = types.ModuleType('BLIP.models.blip_retrieval')
    blip.blip_retrieval = None
    for name in ('BLIP', 'BLIP.models'):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules['BLIP.models.blip_retrieval'] = blip
    sys.modules['gem'] = types.ModuleType('gem')
    import open_clip  # the bundled 2.24
    if not str(Path(open_clip.__file__).resolve()).startswith(str(root.resolve())):
        raise SystemExit(f'open_clip resolved to {open_clip.__file__}, not the bundled copy in {root}')
    from simfeatup_dev import upsamplers
    upsamplers.AdaptiveConv = types.SimpleNamespace(apply=upsamplers.adaptive_conv_py_simple)
    import segearth_segmentor
    from prompts import imagenet_template
    return open_clip, upsamplers, segearth_segmentor, imagenet_template


def _perturb_fp16(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
            p.copy_(p.to(torch.float16).float())


def _fp16_sd(module: torch.nn.Module, drop_prefix: str = '') -> dict:
    return {k[len(drop_prefix):]: v.detach().to(torch.float16).clone() for k, v in module.state_dict().items()
            if k.startswith(drop_prefix)}


def _uint8(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def _norm(raw):
    return (raw.float() - MEAN) / STD


def _fp16_exact(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g)).to(torch.float16)


def _save(name, obj):
    path = OUT / name
    torch.save(obj, path)
    print(f'{path.name}: {path.stat().st_size / 1024:.0f} KB')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', default=DEFAULT_UPSTREAM, help='checkout of likyoo/SegEarth-OV')
    ap.add_argument('--ckpt', default=None, help=f'the official {CKPT_NAME} (default: in the checkout)')
    args = ap.parse_args()
    root = Path(args.upstream)
    if not (root / 'segearth_segmentor.py').is_file():
        print(f'No SegEarth-OV checkout at {root} (segearth_segmentor.py missing): check out {UPSTREAM} '
              f'@ {UPSTREAM_COMMIT} outside the repository and pass --upstream. Nothing recorded.')
        sys.exit(2)
    torch.set_num_threads(1)
    open_clip, ups, seg_mod, tpl_mod = _import_upstream(root)
    meta = {'upstream': f'{UPSTREAM}@{UPSTREAM_COMMIT}', 'torch': str(torch.__version__)}
    half = torch.Tensor.half
    torch.Tensor.half = lambda self, *a, **k: self  # fp32 recording (module docstring)
    try:
        _record(open_clip, ups, seg_mod, tpl_mod, meta)
    finally:
        torch.Tensor.half = half
    ckpt = Path(args.ckpt) if args.ckpt else root / CKPT_NAME
    _record_ckpt_keys(ckpt, meta)


def _record(open_clip, ups, seg_mod, tpl_mod, meta):
    torch.manual_seed(0)
    net = open_clip.model.CLIP(EMBED, VISION, TEXT, quick_gelu=True).eval()
    _perturb_fp16(net, seed=1)
    visual = net.visual

    # -- 1. the modified last block (custom_attn 'SegEarth') and the whole image path
    blk = visual.transformer.resblocks[-1]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(17, 2, VISION['width'], generator=g)  # (L, N, D): the official layout
    with torch.no_grad():
        attn_out = visual.custom_attn(blk.attn, x, model_type='SegEarth')
        enc = {}
        for key, shape, seed in (('64', (1, 3, 64, 64), 3), ('48x64', (1, 3, 48, 64), 4)):
            raw = _uint8(shape, seed)
            cls, tokens = net.encode_image(_norm(raw), 'SegEarth', True, True)
            enc[key] = {'raw': raw, 'cls': cls, 'tokens': tokens}
    _save('clip.pt', {**meta, 'module': 'open_clip/transformer.py:VisionTransformer (bundled 2.24)',
                      'open_clip_config': OPEN_CLIP_CONFIG, 'visual': _fp16_sd(net, 'visual.'),
                      'attn': {'x': x, 'output': attn_out,
                               'call': "custom_attn(resblocks[-1].attn, x, model_type='SegEarth')"},
                      'encode_image': enc,
                      'encode_call': "encode_image(img, 'SegEarth', ignore_residual=True, output_cls_token=True)"})

    # -- 2. JBULearnedRange and the x16 jbu_one stack; the FeatUp jbu_stack
    jbu_one = ups.get_upsampler('jbu_one', EMBED).eval()
    _perturb_fp16(jbu_one, seed=5)
    src_r = _fp16_exact((1, EMBED, 3, 4), 6).float()
    gd_r = _fp16_exact((1, 3, 6, 8), 7).float()
    src16 = _fp16_exact((1, EMBED, 3, 3), 8)
    gd16 = _fp16_exact((1, 3, 48, 48), 9)
    with torch.no_grad():
        range_out = jbu_one.up(src_r, gd_r)
        x16_out = jbu_one(src16.float(), gd16.float())
    _save('jbu_one.pt', {**meta, 'module': "simfeatup_dev/upsamplers.py:get_upsampler('jbu_one', 8) = JBUOne",
                         'state_dict': _fp16_sd(jbu_one),
                         'range': {'source': src_r, 'guidance': gd_r, 'output': range_out,
                                   'call': 'JBUOne.up(source, guidance)  # one JBULearnedRange, radius 5'},
                         'x16': {'source': src16, 'guidance': gd16, 'output': x16_out}})
    stack = ups.get_upsampler('jbu_stack', EMBED).eval()
    _perturb_fp16(stack, seed=10)
    src_s = _fp16_exact((1, EMBED, 2, 3), 11)
    gd_s = _fp16_exact((1, 3, 32, 48), 12)
    with torch.no_grad():
        stack_out = stack(src_s.float(), gd_s.float())
    _save('jbu_stack.pt', {**meta, 'module': "simfeatup_dev/upsamplers.py:get_upsampler('jbu_stack', 8) = JBUStack",
                           'state_dict': _fp16_sd(stack),
                           'x16': {'source': src_s, 'guidance': gd_s, 'output': stack_out}})

    # -- 3. the segmentor: bias-alleviated logits, slide merge, predict / postprocess_result
    queries = ['background', 'ship', 'boat', 'harbor']   # one class file line each: background / ship,boat / harbor
    with tempfile.TemporaryDirectory() as d:
        names = Path(d) / 'cls_golden.txt'
        names.write_text('background\nship,boat\nharbor')
        seg_mod.create_model = lambda *a, **k: net
        seg = seg_mod.SegEarthSegmentation(
            clip_type='CLIP', vit_type='ViT-B/16', model_type='SegEarth', name_path=str(names),
            device=torch.device('cpu'), ignore_residual=True, prob_thd=0.0, logit_scale=50,
            slide_stride=32, slide_crop=64, cls_token_lambda=-0.3, bg_idx=0, feature_up=False)
    assert seg.query_idx.tolist() == [0, 1, 1, 2]
    seg.eval()
    # the official text path ran above, but a random tiny text tower gives nearly parallel
    # embeddings (cosine > 0.98), and random directions are all beaten by the one direction the
    # dense features of a random CLIP share. So the queries are +-the first two principal
    # directions of the (upsampled, normalised) dense features of the test image, so that every
    # query wins somewhere; both sides take them as given (the test injects them by query name).
    img_raw = _uint8((1, 3, 40, 104), 14)  # crops 40 x 64 (zero-padded to 48 x 64), x1 = 0, 32, 40
    with torch.no_grad():
        x = torch.nn.functional.pad(_norm(img_raw), (0, 8, 4, 4))
        _, tok = net.encode_image(x, 'SegEarth', True, True)
        f = jbu_one(tok.permute(0, 2, 1).reshape(1, EMBED, 3, 7), x)
        f = torch.nn.functional.normalize(f, dim=1)[0].flatten(1).T
        pcs = torch.linalg.svd(f - f.mean(0), full_matrices=False).Vh[:2]
    seg.query_features = torch.stack([pcs[0], -pcs[0], -pcs[1], pcs[1]]).to(torch.float16).float()
    cfg = dict(cls_token_lambda=-0.3, logit_scale=50, slide_crop=64, slide_stride=32)
    common = {**meta, 'queries': queries, 'query_idx': seg.query_idx.tolist(),
              'query_features': seg.query_features.clone(), 'config': cfg}
    crop_raw = _uint8((1, 3, 48, 48), 13)
    with torch.no_grad():
        plain = seg.forward_feature(_norm(crop_raw))
        seg.feature_up, seg.feat_dim, seg.upsampler = True, EMBED, jbu_one
        up = seg.forward_feature(_norm(crop_raw))
    _save('forward_feature.pt', {**common, 'module': 'segearth_segmentor.py:SegEarthSegmentation.forward_feature',
                                 'raw': crop_raw, 'output_jbu_one': up, 'output_no_upsampler': plain,
                                 'note': 'the 48 x 48 crop is not the native 64: pos-embed resized 4x4 -> 3x3'})

    ori = (30, 77)
    from mmseg.structures import SegDataSample
    with torch.no_grad():
        merged = seg.forward_slide(_norm(img_raw), [dict(ori_shape=(40, 104))], 32, 64)
        probe = seg.forward_slide(_norm(img_raw), [dict(ori_shape=ori)], 32, 64)
        top_all = (probe[0] * 50).softmax(0)
        top = torch.stack([top_all[0], top_all[1:3].max(0)[0], top_all[3]]).max(0)[0]
        thd = round(float(top.quantile(0.1)), 2)  # some pixels fall below it, most do not
        seg.prob_thd = thd
        sample = SegDataSample(metainfo=dict(ori_shape=ori, img_shape=(40, 104)))
        out = seg.predict(_norm(img_raw), [sample])[0]
    pred = out.pred_sem_seg.data
    won_bg = (torch.stack([top_all[0], top_all[1:3].max(0)[0], top_all[3]]).argmax(0) == 0)
    assert 0 < int((top < thd).sum()) < top.numel(), 'threshold must split the pixels'
    assert bool((won_bg & (top >= thd)).any()), 'some pixels must go to background by the background query'
    assert len(pred.unique()) == 3, f'labels {pred.unique().tolist()}: every class should appear'
    _save('slide.pt', {**common, 'module': 'segearth_segmentor.py:SegEarthSegmentation.forward_slide / predict',
                       'raw': img_raw, 'merged_logits': merged, 'ori_shape': ori, 'prob_thd': thd, 'bg_idx': 0,
                       'predict_probs': out.seg_logits.data, 'predict_labels': pred.to(torch.uint8)})

    # postprocess_result alone: (a) the official background line, bg_idx 0; (b) no background
    # line, bg_idx = an ordinary class (1, 'harbor'), as the ISPRS configs do with clutter.
    g = torch.Generator().manual_seed(15)
    logits = 0.05 * torch.randn(1, 4, 24, 24, generator=g)
    res = {}
    for case, cols, idx, bg in (('with_background', [0, 1, 2, 3], [0, 1, 1, 2], 0),
                                ('class_bg_idx', [1, 2, 3], [0, 0, 1], 1)):
        seg.query_idx = torch.tensor(idx)
        seg.bg_idx = bg
        seg.prob_thd = 0.6
        s = SegDataSample()
        with torch.no_grad():
            seg.postprocess_result(logits[:, cols].clone(), [s])
        lab = s.pred_sem_seg.data
        res[case] = {'columns': cols, 'query_idx': idx, 'bg_idx': bg, 'prob_thd': 0.6,
                     'probs': s.seg_logits.data, 'labels': lab.to(torch.uint8)}
        assert 0 < int((s.seg_logits.data.max(0)[0] < 0.6).sum()) < 24 * 24
    templates = [t('{}') for t in tpl_mod.openai_imagenet_template]
    _save('postprocess.pt', {**meta, 'module': 'segearth_segmentor.py:SegEarthSegmentation.postprocess_result',
                             'queries': queries, 'logits': logits, 'cases': res,
                             'imagenet_templates_sha256': hashlib.sha256('\n'.join(templates).encode()).hexdigest(),
                             'imagenet_templates_count': len(templates)})


def _record_ckpt_keys(path: Path, meta):
    if not path.is_file():
        print(f'{path} missing: clip_jbu_stack_cocostuff_keys.json not rewritten')
        return
    ck = torch.load(path, map_location='cpu', weights_only=True)
    sd = ck['state_dict']
    fixture = {'upstream': meta['upstream'], 'file': CKPT_NAME, 'bytes': path.stat().st_size,
               'sha256': hashlib.sha256(path.read_bytes()).hexdigest(),
               'top_level_keys': sorted(ck), 'pytorch-lightning_version': ck.get('pytorch-lightning_version'),
               'loads_with_weights_only': True,
               'state_dict': {k: {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', '')}
                              for k, v in sd.items()}}
    out = OUT / 'clip_jbu_stack_cocostuff_keys.json'
    out.write_text(json.dumps(fixture, indent=1) + '\n')
    print(f'{out.name}: {len(sd)} keys')


if __name__ == '__main__':
    main()

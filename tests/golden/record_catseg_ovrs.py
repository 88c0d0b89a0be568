#!/usr/bin/env python
"""Re-record the CAT-Seg / OVRS golden tensors in tests/golden/ from the official code.

NOT a test (pytest does not collect it): it needs checkouts of the two upstream repositories,
which this repository does not ship (licence: upstream code is imported from your checkout at
run time, never copied here)::

    git clone https://github.com/cvlab-kaist/CAT-Seg && git -C CAT-Seg checkout 6d3a188af95165147fe2f34a8237fa7d2633e784
    git clone https://github.com/caoql98/OVRS && git -C OVRS checkout aacbb104d3c6d31c311c58725be1c6a010d5421a
    pip install einops timm          # beside torch; what the upstream modules import
    python tests/golden/record_catseg_ovrs.py --catseg CAT-Seg --ovrs OVRS --out /tmp/golden \\
        --compare tests/golden

It imports, unchanged and by file path (the ``cat_seg`` packages themselves import detectron2):

* CAT-Seg ``cat_seg/modeling/transformer/model.py`` (``AggregatorLayer``, ``Aggregator``),
* CAT-Seg ``cat_seg/cat_seg_model.py`` (``CATSeg``: the ``upsample1/2`` transposed convs and the
  training loss of ``CATSeg.forward``), with the few detectron2 names it imports stubbed in
  ``sys.modules`` while it loads (none of them is used on the code path run here, apart from
  ``ImageList.from_tensors``, stubbed as a plain stack),
* OVRS ``cat_seg/modeling/transformer/model_ours.py`` (``Aggregator``, ``Up``) and OVRS
  ``cat_seg/cat_seg_model.py`` (``CATSeg.upsample1/2`` for the ViT-B shape list).

Before importing, every upstream file is checked against its git blob hash at the pinned commit
(so a checkout without ``.git`` works too); ``--allow-other-revision`` records what is there.

Seed scheme of every file (recovered from the committed files: their state dicts and inputs are
reproduced bit for bit): ``torch.manual_seed(build_seed)``, build the official module(s), draw
the inputs from the same global stream in the order they are stored, then move every parameter
off its default init with its own generator, ``p += 0.1 * torch.randn(p.shape,
generator=torch.Generator().manual_seed(perturb_seed))``, in ``named_parameters`` order (the
aggregator files: Aggregator, upsample1, upsample2 with perturbation seeds s, s + 1, s + 2). The
modules run in eval mode, float32, CPU, under ``torch.no_grad``. Re-recorded with torch 2.14.1 on
an AVX-512 CPU the outputs differ from the committed ones by float32 rounding only (<= 3.3e-6).

Writes into ``--out`` (never over the committed files unless you point it there): the eight files
listed in tests/golden/README.md. ``--compare DIR`` then prints, per file, the max |stored -
new| of every tensor and whether the file is identical.
"""
import argparse
import ast
import contextlib
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import types
from pathlib import Path

CATSEG_REPO, CATSEG_COMMIT = 'cvlab-kaist/CAT-Seg', '6d3a188af95165147fe2f34a8237fa7d2633e784'
OVRS_REPO, OVRS_COMMIT = 'caoql98/OVRS', 'aacbb104d3c6d31c311c58725be1c6a010d5421a'

# git blob hashes of the upstream files used, at the pinned commits (`git rev-parse COMMIT:PATH`)
UPSTREAM_FILES = {
    'catseg': {
        'cat_seg/modeling/transformer/model.py': '70be9c44c6d5b0666355638a48b3c8eb5c2a5738',
        'cat_seg/cat_seg_model.py': '0d15215c99548fc3138bdf3709b6566cf94f9519',
        'configs/vitb_384.yaml': 'cfa6ed8c6f157c24a88ec94b902cd5f0f3b1ca71',
    },
    'ovrs': {
        'cat_seg/modeling/transformer/model_ours.py': '3d0788a0324d8f9e9d0b242c0a3a017311b99d76',
        'cat_seg/cat_seg_model.py': '0d15215c99548fc3138bdf3709b6566cf94f9519',
        'configs/vitb_384.yaml': 'cfa6ed8c6f157c24a88ec94b902cd5f0f3b1ca71',
    },
}

NEEDS = f"""\
This script re-records tests/golden/*.pt from the official CAT-Seg and OVRS code and needs
checkouts of both repositories (not shipped here; their code is imported, never copied):

    git clone https://github.com/cvlab-kaist/CAT-Seg && git -C CAT-Seg checkout {CATSEG_COMMIT}
    git clone https://github.com/caoql98/OVRS && git -C OVRS checkout {OVRS_COMMIT}
    pip install einops timm

then: python tests/golden/record_catseg_ovrs.py --catseg CAT-Seg --ovrs OVRS --out OUT_DIR"""

# (build seed, perturbation seed) of each file; see the module docstring
SEEDS = {
    'catseg_aggregator_layer': (0, 1),
    'catseg_aggregator_layer_noguidance': (1, 2),
    'catseg_aggregator': (3, 30),
    'catseg_aggregator_topk': (4, 40),
    'ovrs_aggregator': (5, 50),
    'ovrs_up': (6, 7),
    'catseg_loss': (8, None),
}

# Tiny sizes that keep every code path (tests/golden/README.md): hidden 16, 4 heads, a 12 x 12
# cost map with window 6 (shift 3), 3 classes, 2 templates, CLIP dim 16, CLIP width 24.
LAYER_CONFIGS = {
    'catseg_aggregator_layer': dict(
        hidden_dim=16, text_guidance_dim=16, appearance_guidance=16, nheads=4, input_resolution=(12, 12),
        pooling_size=(2, 2), window_size=6, attention_type='linear', pad_len=8),
    'catseg_aggregator_layer_noguidance': dict(
        hidden_dim=16, text_guidance_dim=0, appearance_guidance=0, nheads=4, input_resolution=(12, 12),
        pooling_size=(1, 1), window_size=6, attention_type='linear', pad_len=0),
}


def aggregator_config(pad_len):
    """``Aggregator`` arguments + ``decoder_guidance_in_dims`` (the CLIP width fed to upsample1/2)."""
    return dict(
        text_guidance_dim=16, text_guidance_proj_dim=8, appearance_guidance_dim=16,
        appearance_guidance_proj_dim=8, decoder_dims=(16, 16), decoder_guidance_dims=(16, 8),
        decoder_guidance_proj_dims=(8, 8), num_layers=2, nheads=4, hidden_dim=16, pooling_size=(2, 2),
        feature_resolution=(12, 12), window_size=6, attention_type='linear', prompt_channel=2,
        pad_len=pad_len, decoder_guidance_in_dims=(24, 24))


AGGREGATORS = {   # name: (upstream, pad_len, number of classes, rotations)
    'catseg_aggregator': ('catseg', 256, 3, False),
    'catseg_aggregator_topk': ('catseg', 3, 5, False),
    'ovrs_aggregator': ('ovrs', 256, 3, True),
}

# configs/vitb_384.yaml MODEL.SEM_SEG_HEAD key -> official Aggregator argument
# (cat_seg/modeling/transformer/cat_seg_predictor.py: from_config + __init__)
VITB_KEYS = (
    ('TEXT_GUIDANCE_DIM', 'text_guidance_dim'), ('TEXT_GUIDANCE_PROJ_DIM', 'text_guidance_proj_dim'),
    ('APPEARANCE_GUIDANCE_DIM', 'appearance_guidance_dim'),
    ('APPEARANCE_GUIDANCE_PROJ_DIM', 'appearance_guidance_proj_dim'), ('DECODER_DIMS', 'decoder_dims'),
    ('DECODER_GUIDANCE_DIMS', 'decoder_guidance_dims'),
    ('DECODER_GUIDANCE_PROJ_DIMS', 'decoder_guidance_proj_dims'), ('NUM_LAYERS', 'num_layers'),
    ('NUM_HEADS', 'nheads'), ('HIDDEN_DIMS', 'hidden_dim'), ('POOLING_SIZES', 'pooling_size'),
    ('FEATURE_RESOLUTION', 'feature_resolution'), ('WINDOW_SIZES', 'window_size'),
    ('ATTENTION_TYPE', 'attention_type'),
)

PREFIX = 'sem_seg_head.predictor.transformer.'   # as in a detectron2 checkpoint


def die(msg):
    sys.exit(f'record_catseg_ovrs.py: {msg}')


def git_blob_sha(path):
    data = path.read_bytes()
    return hashlib.sha1(b'blob %d\0' % len(data) + data).hexdigest()


def checkout_commit(root):
    try:
        out = subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'], capture_output=True, text=True)
    except OSError:
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r'[0-9a-f]{40}', sha) else None


def check_checkout(root, which, pinned, allow_other):
    """The pinned commit, or (``--allow-other-revision``) the checkout's own HEAD."""
    if root is None or not Path(root).is_dir():
        die(f'--{which} checkout {root!r} not found.\n\n{NEEDS}')
    root = Path(root)
    missing = [p for p in UPSTREAM_FILES[which] if not (root / p).is_file()]
    if missing:
        die(f'--{which} {root} does not look like the upstream repository (missing {missing}).\n\n{NEEDS}')
    changed = [p for p, sha in UPSTREAM_FILES[which].items() if git_blob_sha(root / p) != sha]
    if not changed:
        return pinned
    head = checkout_commit(root)
    if not allow_other:
        die(f'--{which} {root}: {changed} differ from the pinned commit {pinned} '
            f'(checkout HEAD: {head}); check out {pinned} or pass --allow-other-revision')
    if head is None:
        die(f'--{which} {root}: files differ from {pinned} and the checkout has no git HEAD to record')
    print(f'warning: --{which} files {changed} differ from {pinned}; recording {head}', file=sys.stderr)
    return head


def import_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def detectron2_stubs():
    """The names ``cat_seg/cat_seg_model.py`` imports from detectron2, present only while it loads."""
    import torch
    from torch import nn

    class Registry:
        def register(self, *args):
            return lambda obj: obj

    class ImageList:   # detectron2.structures.ImageList: only .from_tensors(...).tensor is used
        def __init__(self, tensor):
            self.tensor = tensor

        @classmethod
        def from_tensors(cls, tensors, size_divisibility=0):
            assert all(t.shape == tensors[0].shape for t in tensors), 'stub: equal sizes only'
            return cls(torch.stack(tensors))

    def unused(*args, **kwargs):
        raise NotImplementedError('detectron2 stub: not used by record_catseg_ovrs.py')

    names = {
        'detectron2': {},
        'detectron2.config': dict(configurable=lambda init: init),
        'detectron2.data': dict(MetadataCatalog=None),
        'detectron2.modeling': dict(META_ARCH_REGISTRY=Registry(), build_backbone=unused,
                                    build_sem_seg_head=unused),
        'detectron2.modeling.backbone': dict(Backbone=nn.Module),
        'detectron2.modeling.postprocessing': dict(sem_seg_postprocess=unused),
        'detectron2.structures': dict(ImageList=ImageList),
        'detectron2.utils': {},
        'detectron2.utils.memory': dict(_ignore_torch_cuda_oom=unused),
    }
    saved = {n: sys.modules.get(n) for n in names}
    for n, attrs in names.items():
        mod = types.ModuleType(n)
        mod.__dict__.update(attrs)
        sys.modules[n] = mod
    try:
        yield
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def load_upstream(catseg_root, ovrs_root):
    try:
        import einops  # noqa: F401
        import timm  # noqa: F401
    except ImportError as e:
        die(f'{e}: the upstream modules need einops and timm beside torch (pip install einops timm)')
    up = types.SimpleNamespace()
    up.cat = import_file(catseg_root / 'cat_seg/modeling/transformer/model.py', '_upstream_catseg_model')
    up.ovrs = import_file(ovrs_root / 'cat_seg/modeling/transformer/model_ours.py',
                          '_upstream_ovrs_model_ours')
    with detectron2_stubs():
        up.cat_meta = import_file(catseg_root / 'cat_seg/cat_seg_model.py', '_upstream_catseg_cat_seg_model')
        up.ovrs_meta = import_file(ovrs_root / 'cat_seg/cat_seg_model.py', '_upstream_ovrs_cat_seg_model')
    return up


def official_catseg(meta, clip_pretrained='ViT-B/16', logits=None):
    """The official ``CATSeg`` meta-architecture around a stand-in CLIP and head.

    ``CATSeg.__init__`` freezes CLIP parameters and hooks two CLIP blocks; the stand-in has no
    parameters and 24 identity blocks. ``forward`` runs the official code: the stand-in CLIP
    returns zeros (577 tokens, as CAT-Seg's 24 x 24 grid + CLS) and the stand-in head returns
    ``logits`` whatever it is given, so the training branch computes the official loss on them.
    """
    from torch import nn

    width = 768 if clip_pretrained == 'ViT-B/16' else 1024

    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.resblocks = nn.ModuleList(nn.Identity() for _ in range(24))

    class Visual(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = Blocks()

    class Clip(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = Visual()

        def encode_image(self, image, dense=True):
            tokens = image.new_zeros(24 * 24 + 1, image.shape[0], width)
            for block in self.visual.transformer.resblocks:
                tokens = block(tokens)   # the official forward hooks collect blocks 3 and 7
            return tokens.permute(1, 0, 2)

    class Predictor(nn.Module):
        def __init__(self):
            super().__init__()
            self.clip_model = Clip()

    class Head(nn.Module):
        ignore_value = 255

        def __init__(self):
            super().__init__()
            self.predictor = Predictor()

        def forward(self, clip_features, features):
            return logits

    return meta.CATSeg(
        backbone=None, sem_seg_head=Head(), size_divisibility=0, pixel_mean=(0., 0., 0.),
        pixel_std=(1., 1., 1.), clip_pixel_mean=(0., 0., 0.), clip_pixel_std=(1., 1., 1.),
        train_class_json=None, test_class_json=None, sliding_window=False, clip_finetune='attention',
        backbone_multiplier=0.0, clip_pretrained=clip_pretrained)


def perturb(modules, seed):
    """Move every parameter off its default init (p += 0.1 * randn, own generator)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p += 0.1 * torch.randn(p.shape, generator=gen)


def state_dict(module, prefix=''):
    return {prefix + k: v for k, v in module.state_dict().items() if not k.endswith('attn_mask')}


def record_layer(up, name, upstream):
    import torch
    cfg = LAYER_CONFIGS[name]
    build_seed, perturb_seed = SEEDS[name]
    torch.manual_seed(build_seed)
    layer = up.cat.AggregatorLayer(**cfg)
    C, (H, W) = cfg['hidden_dim'], cfg['input_resolution']
    inputs = {'x': torch.randn(1, C, 3, H, W)}
    if cfg['appearance_guidance'] > 0:
        inputs['appearance_guidance'] = torch.randn(1, cfg['appearance_guidance'], H, W)
    if cfg['text_guidance_dim'] > 0:
        inputs['text_guidance'] = torch.randn(1, 3, cfg['text_guidance_dim'])
    perturb([layer], perturb_seed)
    layer.eval()
    with torch.no_grad():
        out = layer(inputs['x'], inputs.get('appearance_guidance'), inputs.get('text_guidance'))
    return {'upstream': upstream, 'module': 'cat_seg/modeling/transformer/model.py:AggregatorLayer',
            'config': dict(cfg), 'state_dict': state_dict(layer), 'inputs': inputs, 'output': out}


def record_aggregator(up, name, upstreams):
    import torch
    import torch.nn.functional as F
    from torch import nn
    which, pad_len, num_classes, rotations = AGGREGATORS[name]
    cfg = aggregator_config(pad_len)
    agg_args = {k: v for k, v in cfg.items() if k != 'decoder_guidance_in_dims'}
    mod, meta = (up.ovrs, up.ovrs_meta) if rotations else (up.cat, up.cat_meta)
    ref = official_catseg(meta)   # before seeding: only its upsample1/2 kernel sizes and strides are used
    build_seed, perturb_seed = SEEDS[name]

    torch.manual_seed(build_seed)
    agg = mod.Aggregator(**agg_args)
    ups = [nn.ConvTranspose2d(c_in, c_out, kernel_size=u.kernel_size, stride=u.stride)
           for c_in, c_out, u in zip(cfg['decoder_guidance_in_dims'], cfg['decoder_guidance_dims'],
                                      (ref.upsample1, ref.upsample2))]
    D, (H, W) = cfg['appearance_guidance_dim'], cfg['feature_resolution']
    img_feats = torch.randn(1, 4, D, H, W) if rotations else torch.randn(1, D, H, W)
    text = torch.randn(1, num_classes, cfg['prompt_channel'], cfg['text_guidance_dim'])
    text_feats = F.normalize(text, dim=-1)
    appearance = torch.randn(1, D, H, W)
    decoder_guidance = [torch.randn(1, c, H, W) for c in cfg['decoder_guidance_in_dims']]
    for i, m in enumerate([agg] + ups):   # Aggregator, upsample1, upsample2: seeds s, s + 1, s + 2
        perturb([m], perturb_seed + i)
    agg.eval()
    for u in ups:
        u.eval()

    # OVRS's predictor passes the four rot90(k) maps as a sequence (x[0] .. x[3])
    img_arg = list(img_feats.unbind(1)) if rotations else img_feats
    seen = {}
    hooks = [agg.layers[-1].register_forward_hook(lambda m, i, o: seen.__setitem__('refined', o)),
             agg.conv1.register_forward_pre_hook(lambda m, i: seen.__setitem__('embedded', i[0]))]
    with torch.no_grad():
        corr = agg.correlation(img_arg, text_feats)
        vis = [appearance] + [u(g) for u, g in zip(ups, decoder_guidance)]
        logits = agg(img_arg, text_feats, vis)
    for h in hooks:
        h.remove()
    # the classes the official forward kept (all of them unless num_classes > pad_len, then its
    # top-k), in its order: match the cost volume its conv1 saw against the full one per class
    seen_corr = seen['embedded'].view(1, -1, *seen['embedded'].shape[1:])      # B T P H W
    full = corr.permute(0, 2, 1, 3, 4)                                         # B T P H W
    dist = (seen_corr[:, :, None] - full[:, None]).flatten(3).abs().amax(-1)   # B T_kept T
    kept = dist.argmin(-1)
    assert (dist.amin(-1) < 1e-5).all(), 'could not match the kept classes'
    assert sorted(kept[0].tolist()) == [c for c in range(num_classes) if not (logits[0, c] == -100).all()]

    sd = state_dict(agg, PREFIX)
    for i, u in enumerate(ups):
        sd.update({f'upsample{i + 1}.{k}': v for k, v in u.state_dict().items()})
    module = ('OVRS model_ours.py:Aggregator' if rotations else 'CAT-Seg model.py:Aggregator') \
        + ' + cat_seg_model.py:CATSeg.upsample1/2'
    note = ('img_feats: (B,4,D,h,w) dense maps of the rot90(k=0,1,2,3) inputs, NOT rotated back'
            if rotations else 'img_feats: (B,D,h,w)')
    return {'upstream': upstreams[which], 'module': module, 'config': cfg, 'state_dict': sd,
            'inputs': {'img_feats': img_feats, 'text_feats': text_feats, 'appearance_guidance': appearance,
                       'decoder_guidance': decoder_guidance},
            'output': logits, 'corr': corr, 'refined': seen['refined'], 'kept_classes': kept, 'note': note}


def record_up(up, upstream):
    import torch
    cfg = dict(in_channels=32, out_channels=16, guidance_channels=8)
    build_seed, perturb_seed = SEEDS['ovrs_up']
    torch.manual_seed(build_seed)
    block = up.ovrs.Up(**cfg)
    B, T = 2, 3
    x = torch.randn(B * T, cfg['in_channels'], 6, 6)               # official layout (B T) C H W
    guidance = torch.randn(B, cfg['guidance_channels'], 12, 12)
    perturb([block], perturb_seed)
    block.eval()
    with torch.no_grad():
        out = block(x, guidance)
    return {'upstream': upstream, 'module': 'cat_seg/modeling/transformer/model_ours.py:Up', 'config': cfg,
            'state_dict': state_dict(block), 'inputs': {'x': x, 'guidance': guidance, 'batch': B},
            'output': out}


def record_loss(up, upstream):
    """The training loss of the official ``CATSeg.forward``, run on given logits (see official_catseg)."""
    import torch
    torch.manual_seed(SEEDS['catseg_loss'][0])
    logits = torch.randn(2, 4, 8, 8) * 3
    targets = torch.randint(0, 4, (2, 16, 16))
    targets[:, :5] = 255                       # ignored rows (upstream: all-zero targets there)
    model = official_catseg(up.cat_meta, logits=logits)
    assert model.sem_seg_head.ignore_value == 255
    model.train()
    batched = [{'image': torch.zeros(3, 16, 16), 'sem_seg': t} for t in targets]
    with torch.no_grad():
        loss = model(batched)['loss_sem_seg']
    return {'upstream': upstream, 'module': 'cat_seg/cat_seg_model.py:CATSeg.forward (training loss)',
            'config': {'ignore_value': 255}, 'state_dict': {},
            'inputs': {'logits': logits, 'targets': targets}, 'output': loss}


def vitb_config(root):
    """``Aggregator`` arguments of configs/vitb_384.yaml (flat ``KEY: value`` lines; no yaml needed)."""
    text = (root / 'configs/vitb_384.yaml').read_text()
    values = {}
    for key, _ in VITB_KEYS + (('PROMPT_ENSEMBLE_TYPE', None),):
        found = re.findall(rf'^\s*{key}:\s*(.+?)\s*$', text, flags=re.M)
        if len(found) != 1:
            die(f'{root}/configs/vitb_384.yaml: expected one {key}, found {found}')
        values[key] = ast.literal_eval(found[0])
    # cat_seg_predictor.py: prompt_channel=len(prompt_templates); 'single' -> one template
    assert values['PROMPT_ENSEMBLE_TYPE'] == 'single', values['PROMPT_ENSEMBLE_TYPE']
    cfg = {arg: values[key] for key, arg in VITB_KEYS}
    cfg['prompt_channel'] = 1
    return cfg


def record_vitb_shapes(up, roots, upstreams):
    import torch
    cfg = vitb_config(roots['catseg'])
    if vitb_config(roots['ovrs']) != cfg:
        die('CAT-Seg and OVRS configs/vitb_384.yaml differ; the shape file holds one config')
    out = {'upstream': {'catseg_vitb': upstreams['catseg'], 'ovrs_vitb': upstreams['ovrs']}, 'config': cfg}
    torch.manual_seed(0)   # values are not stored; only shapes
    for key, mod, meta in (('catseg_vitb', up.cat, up.cat_meta), ('ovrs_vitb', up.ovrs, up.ovrs_meta)):
        sd = {PREFIX + k: v for k, v in mod.Aggregator(**cfg).state_dict().items()}
        catseg = official_catseg(meta, clip_pretrained='ViT-B/16')
        sd.update({f'{name}.{k}': v for name in ('upsample1', 'upsample2')
                   for k, v in getattr(catseg, name).state_dict().items()})
        out[key] = {k: list(v.shape) for k, v in sd.items()}
    return json.dumps(out, indent=0)


def tensors(obj, path=''):
    import torch
    if torch.is_tensor(obj):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f'{path}.{k}' if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f'{path}[{i}]')


def non_tensors(obj):
    import torch
    if torch.is_tensor(obj):
        return 'tensor'
    if isinstance(obj, dict):
        return {k: non_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)([non_tensors(v) for v in obj])
    return obj


def compare(name, new_path, ref_dir):
    import torch
    ref_path = Path(ref_dir) / new_path.name
    if not ref_path.is_file():
        print(f'  {name}: no stored file {ref_path}')
        return
    if new_path.suffix == '.json':
        same = new_path.read_bytes() == ref_path.read_bytes()
        print(f'  {name}: {"identical" if same else "DIFFERS"} ({ref_path})')
        return
    old = torch.load(ref_path, map_location='cpu', weights_only=True)
    new = torch.load(new_path, map_location='cpu', weights_only=True)
    if non_tensors(old) != non_tensors(new):
        print(f'  {name}: STRUCTURE DIFFERS (keys, order or metadata)')
    old_t, new_t = dict(tensors(old)), dict(tensors(new))
    if list(old_t) != list(new_t):
        print(f'  {name}: TENSOR KEYS DIFFER: only stored {sorted(set(old_t) - set(new_t))}, '
              f'only new {sorted(set(new_t) - set(old_t))}')
    worst, unequal = {}, []
    for k in old_t.keys() & new_t.keys():
        a, b = old_t[k], new_t[k]
        if a.shape != b.shape or a.dtype != b.dtype:
            unequal.append(f'{k} (shape/dtype {tuple(a.shape)}/{a.dtype} vs {tuple(b.shape)}/{b.dtype})')
            continue
        if not torch.equal(a, b):
            unequal.append(k)
        group = k.split('.')[0].split('[')[0]
        d = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
        worst[group] = max(worst.get(group, 0.0), d)
    summary = ', '.join(f'{g} {d:.3g}' for g, d in sorted(worst.items()))
    status = ('bit-identical tensors' if not unequal
              else f'{len(unequal)} tensor(s) not bit-identical: {unequal}')
    print(f'  {name}: max |stored - new|: {summary}; {status}')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=NEEDS)
    ap.add_argument('--catseg', help=f'checkout of {CATSEG_REPO} at {CATSEG_COMMIT}')
    ap.add_argument('--ovrs', help=f'checkout of {OVRS_REPO} at {OVRS_COMMIT}')
    ap.add_argument('--out', required=True, help='folder to write the golden files into')
    ap.add_argument('--compare', metavar='DIR', help='print max |stored - new| against the files in DIR')
    ap.add_argument('--allow-other-revision', action='store_true',
                    help='record checkouts whose files differ from the pinned commits (their git HEAD)')
    args = ap.parse_args(argv)
    if not args.catseg or not args.ovrs:
        die(f'--catseg and --ovrs are required.\n\n{NEEDS}')

    try:
        import torch
    except ImportError:
        die('needs torch')
    allow = args.allow_other_revision
    upstreams = {'catseg': f'{CATSEG_REPO}@{check_checkout(args.catseg, "catseg", CATSEG_COMMIT, allow)}',
                 'ovrs': f'{OVRS_REPO}@{check_checkout(args.ovrs, "ovrs", OVRS_COMMIT, allow)}'}
    roots = {'catseg': Path(args.catseg), 'ovrs': Path(args.ovrs)}
    up = load_upstream(roots['catseg'], roots['ovrs'])
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    records = {}
    for name in LAYER_CONFIGS:
        records[name] = record_layer(up, name, upstreams['catseg'])
    for name in AGGREGATORS:
        records[name] = record_aggregator(up, name, upstreams)
    records['ovrs_up'] = record_up(up, upstreams['ovrs'])
    records['catseg_loss'] = record_loss(up, upstreams['catseg'])
    written = []
    for name, rec in records.items():
        path = out_dir / f'{name}.pt'
        torch.save(rec, path)
        written.append((name, path))
    path = out_dir / 'official_vitb_shapes.json'
    path.write_text(record_vitb_shapes(up, roots, upstreams))
    written.append(('official_vitb_shapes', path))

    print(f'torch {torch.__version__}; wrote {len(written)} files to {out_dir}')
    if args.compare:
        print(f'compared with {args.compare}:')
        for name, path in written:
            compare(name, path, args.compare)


if __name__ == '__main__':
    main()

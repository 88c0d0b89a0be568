"""Mini world: generator determinism and format, class coverage, and the tiny pretrained weights."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aeroseg.datasets.splits import get_split
from aeroseg.mini import (CONCEPTS, FORMATS, MINI_DATASETS, concept_names, ensure_mini,
                          generate_mini, make_caption, render_scene)

ASSETS = Path(__file__).resolve().parents[2] / 'aeroseg' / 'assets' / 'mini'
CLIP_NAME = 'aeroseg-mini-ViT-8'
CONVNEXT_CLIP_NAME = 'aeroseg-mini-convnext'  # SED's (tools/train_tiny_clip.py --tower convnext)
SAM_NAME = 'sam_vit_tiny_mini'


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob('*') if p.is_file() and p.name != 'mini_stamp.json'):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _read(root: Path, split: str, name: str):
    img_suffix, seg_suffix = FORMATS[name]
    imgs = sorted((root / 'img_dir' / split).iterdir())
    labs = sorted((root / 'ann_dir' / split).iterdir())
    return imgs, labs, img_suffix, seg_suffix


# ----------------------------------------------------------------------------- generator
@pytest.mark.parametrize('name', MINI_DATASETS)
def test_generation_is_deterministic(tmp_path, name):
    a = generate_mini(name, tmp_path / 'a', seed=3, num_train=5, num_val=3)
    b = generate_mini(name, tmp_path / 'b', seed=3, num_train=5, num_val=3)
    c = generate_mini(name, tmp_path / 'c', seed=4, num_train=5, num_val=3)
    assert _tree_hash(a) == _tree_hash(b)
    assert _tree_hash(a) != _tree_hash(c)


@pytest.mark.parametrize('name', MINI_DATASETS)
def test_layout_and_label_values(name):
    root = ensure_mini(name)
    sp = get_split(name)
    stamp = json.loads((root / 'mini_stamp.json').read_text())
    assert stamp['classes'] == list(sp.classes)
    n_ignore = 0
    for split, n in (('train', 400), ('val', 100)):
        imgs, labs, img_suffix, seg_suffix = _read(root, split, name)
        assert len(imgs) == len(labs) == n
        assert all(p.suffix == img_suffix for p in imgs) and all(p.suffix == seg_suffix for p in labs)
        assert [p.stem for p in imgs] == [p.stem for p in labs]
        for ip, lp in list(zip(imgs, labs))[::7]:
            im, lab = Image.open(ip), Image.open(lp)
            assert im.mode == 'RGB' and im.size == (128, 128)
            assert im.format == ('JPEG' if img_suffix == '.jpg' else 'PNG')
            assert lab.mode == 'L' and lab.size == im.size
            arr = np.asarray(lab)
            assert arr.dtype == np.uint8
            vals = set(np.unique(arr).tolist())
            assert vals <= set(range(sp.num_classes)) | {255}, (lp, vals)
            n_ignore += int((arr == 255).sum())
    if name == 'isaid':  # background -> 255 as in processed iSAID
        assert n_ignore > 0
    if name == 'dlrsd':  # raw DLRSD masks label every pixel
        assert n_ignore == 0


@pytest.mark.parametrize('name', MINI_DATASETS)
def test_every_class_in_train_and_val_and_unseen_present(name):
    root = ensure_mini(name)
    sp = get_split(name)
    for split in ('train', 'val'):
        _, labs, _, _ = _read(root, split, name)
        counts = np.zeros(256, np.int64)
        images_with = np.zeros(256, np.int64)
        for lp in labs:
            arr = np.asarray(Image.open(lp))
            c = np.bincount(arr.ravel(), minlength=256)
            counts += c
            images_with += c > 0
        missing = [sp.classes[i] for i in range(sp.num_classes) if counts[i] == 0]
        assert not missing, f'{name} {split}: classes never present: {missing}'
        # unseen classes are scored by u-mIoU: each must be in several images
        for i in sp.unseen:
            assert images_with[i] >= (3 if split == 'val' else 10), (split, sp.classes[i], images_with[i])


def test_oem_unknown_is_ignored_in_some_images():
    _, labs, _, _ = _read(ensure_mini('oem'), 'train', 'oem')
    with_ignore = sum(bool((np.asarray(Image.open(p)) == 255).any()) for p in labs)
    assert 0.1 * len(labs) < with_ignore < 0.6 * len(labs)


def test_dlrsd_appearance_survives_jpeg():
    """Nearest-mean colour (4x4 block means) classifies val pixels far above chance after JPEG."""
    root = ensure_mini('dlrsd')
    sp = get_split('dlrsd')

    def feats(split, n):
        imgs, labs, _, _ = _read(root, split, 'dlrsd')
        X, Y = [], []
        for ip, lp in list(zip(imgs, labs))[:n]:
            im = np.asarray(Image.open(ip), np.float32).reshape(32, 4, 32, 4, 3)
            lab = np.asarray(Image.open(lp))[1::4, 1::4]
            mean, std = im.mean((1, 3)), im.std((1, 3))
            X.append(np.concatenate([mean, std], -1).reshape(-1, 6))
            Y.append(lab.reshape(-1))
        return np.concatenate(X), np.concatenate(Y)

    X, Y = feats('train', 150)
    centres = np.stack([X[Y == k].mean(0) for k in range(sp.num_classes)])
    Xv, Yv = feats('val', 60)
    pred = np.argmin(((Xv[:, None] - centres[None]) ** 2).sum(-1), 1)
    acc = np.mean([np.mean(pred[Yv == k] == k) for k in range(sp.num_classes) if (Yv == k).any()])
    assert acc > 0.4, acc  # chance: 1/17


def test_ensure_mini_stamp(tmp_path):
    root = ensure_mini('oem', tmp_path / 'oem', num_train=3, num_val=2)
    first = (root / 'img_dir' / 'train' / 'mini_oem_train_0000.png').read_bytes()
    assert ensure_mini('oem', root, num_train=3, num_val=2) == root  # cached
    stamp = json.loads((root / 'mini_stamp.json').read_text())
    stamp['source_sha256'] = 'stale'
    (root / 'mini_stamp.json').write_text(json.dumps(stamp))
    (root / 'img_dir' / 'train' / 'junk.png').write_bytes(b'')
    ensure_mini('oem', root, num_train=3, num_val=2)  # stale stamp -> regenerated
    assert not (root / 'img_dir' / 'train' / 'junk.png').exists()
    assert (root / 'img_dir' / 'train' / 'mini_oem_train_0000.png').read_bytes() == first
    ensure_mini('oem', root, seed=1, num_train=3, num_val=2)  # other seed -> other data
    assert (root / 'img_dir' / 'train' / 'mini_oem_train_0000.png').read_bytes() != first
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'x.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='mini_stamp.json'):
        ensure_mini('oem', foreign)
    with pytest.raises(KeyError, match='isaid'):
        ensure_mini('potsdam', tmp_path / 'p')


def test_stamp_hashes_every_module_of_the_generator(tmp_path, monkeypatch):
    """The stamp's source hash covers all of aeroseg/mini, not one file, and not its location."""
    import shutil
    import aeroseg.mini.io as mini_io
    real = mini_io.source_sha256()
    pkg = tmp_path / 'mini'
    shutil.copytree(mini_io._PACKAGE, pkg, ignore=shutil.ignore_patterns('__pycache__'))
    monkeypatch.setattr(mini_io, '_PACKAGE', pkg)
    assert mini_io.source_sha256() == real
    for rel in ('scenes/oem.py', 'canvas.py', 'io.py'):
        src = (pkg / rel).read_text()
        (pkg / rel).write_text(src + '# edited\n')
        assert mini_io.source_sha256() != real, rel
        (pkg / rel).write_text(src)
    (pkg / 'scenes' / 'new.py').write_text('')
    assert mini_io.source_sha256() != real


def test_benchmarks_read_the_generator_version_from_its_file():
    """benchmarks.common parses GENERATOR_VERSION out of aeroseg/mini's source (no import): the
    file it parses must be the one that defines it, or bumping the version would not stale jobs."""
    pytest.importorskip('mmengine')
    from aeroseg.mini import GENERATOR_VERSION
    from benchmarks.common import mini_world_identity
    assert mini_world_identity()['generator_version'] == GENERATOR_VERSION


def test_captions_cover_every_class_name():
    names = {n for v in concept_names().values() for n in v}
    for ds in MINI_DATASETS:
        missing = set(get_split(ds).classes) - names
        assert not missing, (ds, missing)
    rng = np.random.default_rng(0)
    _, cmap, _ = render_scene('isaid', rng, scene_type=0)  # harbor scene
    cap, keys = make_caption(cmap, rng)
    present = {CONCEPTS[c].key for c in np.unique(cmap) if c >= 0}
    assert set(keys) <= present and cap.count(' a ') + cap.startswith('a ') >= len(keys)


# ----------------------------------------------------------------------------- tiny CLIP
def _clip(name=CLIP_NAME):
    open_clip = pytest.importorskip('open_clip')
    import aeroseg.models.convnext_clip  # noqa: F401  (registers the ConvNeXt CLIP's timm trunk)
    ckpt = ASSETS / f'{name}.pt'
    assert ckpt.is_file(), f'missing {ckpt}: run tools/train_tiny_clip.py'
    open_clip.add_model_config(ASSETS)
    model = open_clip.create_model(name, pretrained=str(ckpt))  # the users' route (strict)
    return model.eval(), open_clip.get_tokenizer(name)


@pytest.mark.parametrize('name', [CLIP_NAME, CONVNEXT_CLIP_NAME])
def test_tiny_clip_checkpoint_format(name):
    from aeroseg.utils.checkpoint import load_external_state_dict
    model, _ = _clip(name)
    sd = load_external_state_dict(ASSETS / f'{name}.pt', what='tiny CLIP')
    assert set(sd) == set(model.state_dict())
    assert type(model).__name__ == 'CLIP'
    if name == CLIP_NAME:
        assert model.visual.conv1.kernel_size == (8, 8)
    else:  # open_clip's timm tower over a ConvNeXt with a stem and 4 stages (res2..res5), as convnext_base_w
        assert type(model.visual).__name__ == 'TimmModel' and type(model.visual.trunk).__name__ == 'ConvNeXt'
        assert [f['num_chs'] for f in model.visual.trunk.feature_info] == [32, 64, 128, 256]
    assert (ASSETS / f'{name}.pt').stat().st_size < 20e6


@pytest.mark.parametrize('name', [CLIP_NAME, CONVNEXT_CLIP_NAME])
@torch.no_grad()
def test_tiny_clip_zero_shot_beats_chance_seen_and_unseen(name):
    """On 64 held-out val images per dataset, with the paper's remote-sensing prompts, for seen and
    for unseen classes: per-class ROC-AUC of image ranking well above 0.5 (a constant or random
    ranking scores 0.5; the seeded random init scores 0.42-0.64) and top-k precision above chance."""
    torch.set_num_threads(1)
    F = torch.nn.functional
    model, tok = _clip(name)
    templates = ('a satellite image of a {}.', 'a land use image of a {}.',
                 'a remote sensing image of a {}.', 'an aerial image of a {}.')
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
    for name in MINI_DATASETS:
        sp = get_split(name)
        imgs, labs, _, _ = _read(ensure_mini(name), 'val', name)
        x = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert('RGB')) for p in imgs[:64]]))
        x = (x.permute(0, 3, 1, 2).float() / 255 - mean) / std
        f = F.normalize(model.encode_image(x), dim=-1)
        t = torch.stack([F.normalize(F.normalize(model.encode_text(tok([tp.format(c) for tp in templates])),
                                                 dim=-1).mean(0), dim=0) for c in sp.classes])
        scores = (f @ t.T).numpy()
        present = np.stack([np.bincount(np.asarray(Image.open(p)).ravel(), minlength=256)[:sp.num_classes] >= 16
                            for p in labs[:64]])
        for part in (sp.seen, sp.unseen):
            aucs = []
            for k in part:
                pos = present[:, k]
                if pos.all() or not pos.any():
                    continue
                aucs.append((scores[pos, k][:, None] > scores[~pos, k][None, :]).mean())
            prec, chance = [], []
            for s, pr in zip(scores, present):
                gt = {k for k in part if pr[k]}
                if gt:
                    top = np.asarray(part)[np.argsort(-s[list(part)])[:len(gt)]]
                    prec.append(len(gt & set(top.tolist())) / len(gt))
                    chance.append(len(gt) / len(part))
            assert np.mean(aucs) > 0.8, (name, part, np.mean(aucs))
            assert np.mean(prec) > np.mean(chance) + 0.15, (name, part, np.mean(prec), np.mean(chance))


# ----------------------------------------------------------------------------- tiny SAM
def test_tiny_sam_full_checkpoint_loads_into_segment_anything():
    pytest.importorskip('segment_anything')
    import importlib.util
    spec = importlib.util.spec_from_file_location('make_tiny_sam', Path(__file__).resolve().parents[2] / 'tools' / 'make_tiny_sam.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = json.loads((ASSETS / f'{SAM_NAME}.json').read_text())
    sam = mod.build_tiny_sam(cfg)
    sd = torch.load(ASSETS / f'{SAM_NAME}.pth', map_location='cpu', weights_only=True)
    assert {k.split('.')[0] for k in sd} == {'image_encoder', 'prompt_encoder', 'mask_decoder'}
    sam.load_state_dict(sd, strict=True)
    enc = sam.image_encoder.eval()
    assert len(enc.blocks) == cfg['encoder_depth'] and max(cfg['guidance_taps_1based']) == len(enc.blocks)
    with torch.no_grad():
        y = enc(torch.randn(1, 3, cfg['img_size'], cfg['img_size']))
    g = cfg['img_size'] // cfg['patch_size']
    assert y.shape == (1, cfg['prompt_embed_dim'], g, g)

"""Tiny fake raw releases in the official formats, and fake processed layouts.

Each fabricator returns what the conversion must produce, so tests compare exact values.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from aeroseg.datasets.splits import get_split


def _rng(seed):
    return np.random.default_rng(seed)


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return _rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ iSAID
def isaid_ids(h: int, w: int, classes: Sequence[int], seed: int = 0) -> np.ndarray:
    """255 background with one rectangle per class id."""
    ids = np.full((h, w), 255, np.uint8)
    r = _rng(seed)
    for c in classes:
        y, x = int(r.integers(0, h - 8)), int(r.integers(0, w - 8))
        ids[y:y + int(r.integers(4, 12)), x:x + int(r.integers(4, 12))] = c
    return ids


def isaid_colour(ids: np.ndarray) -> np.ndarray:
    pal = get_split('isaid').palette
    out = np.zeros(ids.shape + (3,), np.uint8)
    for i, c in enumerate(pal):
        out[ids == i] = c
    return out


def fake_isaid(raw: Path, layout: Dict[str, Dict[str, Tuple[int, int, Sequence[int]]]],
               masks_in: str = 'images') -> Dict[str, Dict[str, np.ndarray]]:
    """``layout[split][stem] = (h, w, class ids)``; images in <split>/images, colour masks in
    <split>/<masks_in>. Returns the expected id maps."""
    expected = {}
    for split, items in layout.items():
        (raw / split / 'images').mkdir(parents=True, exist_ok=True)
        (raw / split / masks_in).mkdir(parents=True, exist_ok=True)
        for k, (stem, (h, w, classes)) in enumerate(sorted(items.items())):
            ids = isaid_ids(h, w, classes, seed=k + 7 * len(split))
            Image.fromarray(rgb(h, w, k)).save(raw / split / 'images' / f'{stem}.png')
            Image.fromarray(isaid_colour(ids), 'RGB').save(
                raw / split / masks_in / f'{stem}_instance_color_RGB.png')
            # the id masks of the release are ignored by the tool
            Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(
                raw / split / masks_in / f'{stem}_instance_id_RGB.png')
            expected.setdefault(split, {})[stem] = ids
    return expected


def zip_isaid(extracted: Path, raw: Path, parts: int = 2) -> None:
    """The files of a :func:`fake_isaid` release packed as the official download comes, in the
    layout mmsegmentation documents (mmseg 1.2.2 tools/dataset_converters/isaid.py reads
    ``<split>/images/*.zip`` and ``<split>/Semantic_masks/*.zip``, members under ``images/``):
    ``<split>/images/part1.zip ... part<parts>.zip`` (the images, dealt out in turn) and
    ``<split>/Semantic_masks/images.zip`` (the colour and id masks), plus a test split."""
    import zipfile
    for split_dir in sorted(p for p in extracted.iterdir() if p.is_dir()):
        files = sorted(split_dir.rglob('*.png'))
        imgs = [f for f in files if not f.stem.endswith('_RGB')]
        masks = [f for f in files if f.stem.endswith('_RGB')]
        (raw / split_dir.name / 'images').mkdir(parents=True, exist_ok=True)
        (raw / split_dir.name / 'Semantic_masks').mkdir(parents=True, exist_ok=True)
        for k in range(parts):
            with zipfile.ZipFile(raw / split_dir.name / 'images' / f'part{k + 1}.zip', 'w') as z:
                for f in imgs[k::parts]:
                    z.write(f, f'images/{f.name}')
        with zipfile.ZipFile(raw / split_dir.name / 'Semantic_masks' / 'images.zip', 'w',
                             zipfile.ZIP_DEFLATED) as z:
            for f in masks:
                z.write(f, f'images/{f.name}')
    (raw / 'test' / 'images').mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(raw / 'test' / 'images' / 'part1.zip', 'w') as z:
        z.writestr('images/P9999.png', b'not read')


# ------------------------------------------------------------------------------ DLRSD
def fake_dlrsd(raw: Path, scenes: Sequence[str] = ('airplane', 'beach'), per_scene: int = 5,
               size: int = 16, labels_dir: str = 'DLRSD/Images') -> Dict[str, np.ndarray]:
    """UC Merced .tif images + DLRSD palette PNGs (values 1..17). Returns stem -> ids."""
    expected = {}
    pal = get_split('dlrsd').palette
    flat = [0, 0, 0] + [v for c in pal for v in c]
    for s_i, scene in enumerate(scenes):
        (raw / 'UCMerced_LandUse' / 'Images' / scene).mkdir(parents=True, exist_ok=True)
        (raw / labels_dir / scene).mkdir(parents=True, exist_ok=True)
        for n in range(per_scene):
            stem = f'{scene}{n:02d}'
            r = _rng(100 * s_i + n)
            raw_vals = r.integers(1, 18, size=(size, size)).astype(np.uint8)
            Image.fromarray(rgb(size, size, n)).save(
                raw / 'UCMerced_LandUse' / 'Images' / scene / f'{stem}.tif')
            m = Image.fromarray(raw_vals, 'P')
            m.putpalette(flat)
            m.save(raw / labels_dir / scene / f'{stem}.png')
            expected[stem] = raw_vals - 1
    return expected


# ------------------------------------------------------------------------------ OEM
def fake_oem(raw: Path, train: Dict[str, Tuple[int, int]], val: Dict[str, Tuple[int, int]],
             xbd: Dict[str, Tuple[int, int]]) -> Dict[str, np.ndarray]:
    """OpenEarthMap_wo_xBD: <region>/images|labels/<name>.tif, train.txt / val.txt (xBD names
    listed too), xbd_files.csv; xBD tiles have labels but no images. Names -> (h, w).
    Returns name -> expected ids (0 -> 255, v -> v - 1)."""
    expected = {}
    for k, (name, (h, w)) in enumerate(sorted({**train, **val, **xbd}.items())):
        region = '_'.join(name[:-4].split('_')[:-1])
        (raw / region / 'images').mkdir(parents=True, exist_ok=True)
        (raw / region / 'labels').mkdir(parents=True, exist_ok=True)
        raw_lab = _rng(k).integers(0, 9, size=(h, w)).astype(np.uint8)
        Image.fromarray(raw_lab, 'L').save(raw / region / 'labels' / name,
                                           compression='tiff_lzw')
        if name not in xbd:
            Image.fromarray(rgb(h, w, k)).save(raw / region / 'images' / name,
                                               compression='tiff_lzw')
        ids = raw_lab.astype(np.int16) - 1
        ids[raw_lab == 0] = 255
        expected[name] = ids.astype(np.uint8)
    (raw / 'train.txt').write_text(''.join(f'{n}\n' for n in sorted({**train, **xbd})))
    (raw / 'val.txt').write_text(''.join(f'{n}\n' for n in sorted(val)))
    with open(raw / 'xbd_files.csv', 'w', newline='') as f:
        wr = csv.writer(f, lineterminator='\r\n')  # the release uses CRLF
        for i, n in enumerate(sorted(xbd)):
            wr.writerow([f'palu-tsunami_{i:08d}_pre_disaster.png', n])
    return expected


# ------------------------------------------------------------------------------ processed
def fake_processed(root: Path, name: str, n: Dict[str, int], size: int = 24,
                   img_suffix: str = '.png', seg_suffix: str = '.png') -> List[Path]:
    """Processed mmseg layout with ids covering 0..K-1 and 255."""
    k = get_split(name).num_classes
    written = []
    for split, count in n.items():
        (root / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (root / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            ids = (np.arange(size * size).reshape(size, size) + i) % (k + 1)
            ids = np.where(ids == k, 255, ids).astype(np.uint8)
            Image.fromarray(rgb(size, size, i)).save(root / 'img_dir' / split / f'x{i}{img_suffix}')
            p = root / 'ann_dir' / split / f'x{i}{seg_suffix}'
            Image.fromarray(ids, 'L').save(p)
            written.append(p)
    return written

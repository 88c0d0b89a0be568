"""DLRSD (UC Merced images + DLRSD dense labels) -> the processed layout.

Raw input (the two official downloads, extracted side by side in ``--raw``)::

    <raw>/UCMerced_LandUse/Images/<scene>/<scene>NN.tif    256 x 256 RGB (a few are smaller)
    <raw>/DLRSD/Images/<scene>/<scene>NN.png               palette PNG, values 1..17
        (DLRSD/Labels/, DLRSD/ or Labels/ are also looked for; --images / --labels override)

Conversion: mask value v (1..17) -> id v - 1 (``splits.get_split('dlrsd').raw_to_id``);
a value outside 1..17 (0 included), a colour (RGB) mask, a size mismatch or an image without
mask is an error naming the file. Images are written as JPEG (OVRS reads ``.jpg``) at
``--jpeg-quality`` 95 without chroma subsampling (our choice; the paper does not say), masks
as uint8 PNG; sizes are kept as they are.

Split: DLRSD has no official split. Ours is deterministic and stratified: within each of the
21 scene classes the images are ordered by the SHA-256 of their stem and the first 20 % go to
val (the paper's 80 / 20 ratio): 1,680 train / 420 val. The paper reports 5,601 / 1,401
(7,002 images), which the release cannot give: it holds 2,100 image/mask pairs, so the paper's
set went through further processing that is not described (OVRS ships its DLRSD already
split in its own download). ``--val-list`` takes a list of val stems to reproduce another
split.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..splits import get_split
from .common import (SPLITS, PrepareError, SplitStats, as_rgb, atomic_save, decode_raw_values,
                     label_image, open_image, out_paths, progress, read_existing_label, report,
                     require_dir, require_pairs, require_same_size)

PAPER_COUNTS = {'train': 5601, 'val': 1401}
_LABEL_CANDIDATES = ('DLRSD/Images', 'DLRSD/Labels', 'DLRSD', 'Labels')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--images', default=None,
                   help='UC Merced image folder (default <raw>/UCMerced_LandUse/Images)')
    p.add_argument('--labels', default=None,
                   help='DLRSD mask folder with one sub-folder per scene (default: searched)')
    p.add_argument('--val-fraction', type=float, default=0.2, help='val share per scene class')
    p.add_argument('--val-list', default=None,
                   help='text file of val image stems (one per line); overrides the split rule')
    p.add_argument('--jpeg-quality', type=int, default=95)


def _has_scene_pngs(d: Path) -> bool:
    return d.is_dir() and any(sub.is_dir() and any(sub.glob('*.png')) for sub in d.iterdir())


def locate(raw: Path, images: Optional[str], labels: Optional[str]) -> Tuple[Path, Path]:
    img_root = Path(images) if images else raw / 'UCMerced_LandUse' / 'Images'
    require_dir(img_root, 'UC Merced image folder',
                'Extract UCMerced_LandUse.zip into --raw (or pass --images)')
    if labels:
        lab_root = require_dir(Path(labels), 'DLRSD label folder (--labels)')
    else:
        found = [raw / c for c in _LABEL_CANDIDATES if _has_scene_pngs(raw / c)]
        if not found:
            raise PrepareError(f'no DLRSD masks found under {str(raw)!r} (looked in '
                               f'{", ".join(_LABEL_CANDIDATES)}); extract DLRSD.zip into --raw '
                               f'or pass --labels')
        lab_root = found[0]
    return img_root, lab_root


def find_pairs(img_root: Path, lab_root: Path) -> List[Tuple[str, str, Path, Path]]:
    """(scene, stem, image, mask), sorted by stem."""
    images: Dict[str, Tuple[str, Path]] = {}
    for p in sorted(img_root.glob('*/*.tif')):
        if p.stem in images:
            raise PrepareError(f'image stem {p.stem!r} found twice: {str(images[p.stem][1])!r} '
                               f'and {str(p)!r}')
        images[p.stem] = (p.parent.name, p)
    if not images:
        raise PrepareError(f'no .tif images in {str(img_root)!r}/<scene>/; expected UC Merced '
                           f'Images/<scene>/<scene>NN.tif')
    masks = {p.stem: p for p in sorted(lab_root.glob('*/*.png'))}
    require_pairs(
        images, masks,
        no_mask=lambda s: (f'{str(images[s][1])!r} has no {images[s][0]}/{s}.png in '
                           f'{str(lab_root)!r}'),
        no_image=lambda s: f'{str(masks[s])!r} has no UC Merced image in {str(img_root)!r}')
    return [(images[s][0], s, images[s][1], masks[s]) for s in sorted(images)]


def assign_splits(pairs, val_fraction: float, val_list: Optional[str]) -> Dict[str, str]:
    """stem -> 'train' | 'val' (see the module docstring)."""
    stems = {p[1] for p in pairs}
    if val_list:
        wanted = [Path(line.strip()).stem for line in Path(val_list).read_text().splitlines()
                  if line.strip()]
        unknown = [w for w in wanted if w not in stems]
        if unknown:
            raise PrepareError(f'--val-list {val_list!r}: {len(unknown)} stem(s) not in the '
                               f'release, e.g. {unknown[0]!r}')
        val = set(wanted)
        return {s: ('val' if s in val else 'train') for s in stems}
    if not 0 < val_fraction < 1:
        raise PrepareError(f'--val-fraction must be in (0, 1), got {val_fraction}')
    by_scene: Dict[str, List[str]] = {}
    for scene, stem, _, _ in pairs:
        by_scene.setdefault(scene, []).append(stem)
    out = {}
    for scene, names in by_scene.items():
        names = sorted(names, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
        n_val = int(round(len(names) * val_fraction))
        for i, s in enumerate(names):
            out[s] = 'val' if i < n_val else 'train'
    return out


def decode_mask(path: Path) -> np.ndarray:
    return decode_raw_values(
        Image.open(path), get_split('dlrsd').raw_to_id, f'mask {str(path)!r}',
        mode_hint='DLRSD masks are palette (P) PNGs whose pixel values are the class ids 1..17, '
                  'not colours',
        allowed='DLRSD class ids 1..17')


def run(args: argparse.Namespace) -> dict:
    raw, out = Path(args.raw), Path(args.out)
    require_dir(raw, 'raw DLRSD folder (--raw)',
                'Extract UCMerced_LandUse.zip and DLRSD.zip into one folder')
    img_root, lab_root = locate(raw, args.images, args.labels)
    pairs = find_pairs(img_root, lab_root)
    which = assign_splits(pairs, args.val_fraction, args.val_list)  # on the full release
    if args.limit:
        pairs = pairs[:args.limit]
    stats = {s: SplitStats() for s in SPLITS}
    for scene, stem, ip, mp in progress(pairs, len(pairs), 'DLRSD images'):
        split = which[stem]
        st = stats[split]
        oi, oa = out_paths(out, split, stem, '.jpg', '.png')
        if oi.exists() and oa.exists() and not args.force:
            st.add(read_existing_label(oa))
            st.skipped_existing += 1
            continue
        ids = decode_mask(mp)
        img = as_rgb(open_image(ip), ip)
        require_same_size(ip, img.size, mp, (ids.shape[1], ids.shape[0]))
        atomic_save(img, oi, quality=args.jpeg_quality, subsampling=0)
        atomic_save(label_image(ids), oa)
        st.add(ids)
    notes = ['DLRSD has no official split and its release holds 2,100 image/mask pairs; the '
             "paper's 5,601 / 1,401 (7,002) come from processing that is not described, so the "
             'counts cannot match. Ours: per scene class, SHA-256 order of the stem, first '
             f'{args.val_fraction:.0%} -> val' + (f' (--val-list {args.val_list})'
                                                  if args.val_list else '') + '.']
    if args.limit:
        notes.append(f'--limit {args.limit}: only the first {args.limit} images (by stem).')
    params = dict(val_fraction=args.val_fraction, val_list=args.val_list,
                  jpeg_quality=args.jpeg_quality, jpeg_subsampling='4:4:4', limit=args.limit,
                  images=str(img_root), labels=str(lab_root))
    return report('dlrsd', get_split('dlrsd'), stats, PAPER_COUNTS, out, params, notes)

"""OpenEarthMap (without xBD) -> 256 x 256 crops in the processed layout.

Raw input (the official ``OpenEarthMap_wo_xBD`` archive, extracted)::

    <raw>/train.txt, val.txt                   file names (e.g. aachen_1.tif), one per line
    <raw>/xbd_files.csv                        "<xBD png>,<OEM name>" rows: the xBD tiles
    <raw>/<region>/images/<region>_<n>.tif     RGB GeoTIFF
    <raw>/<region>/labels/<region>_<n>.tif     single-band uint8 GeoTIFF, 0 unknown, 1..8

The release without xBD still lists the xBD tiles in the split files and ships their labels
(not their images); the paper excluded xBD, so every name in ``xbd_files.csv`` is dropped.
Counts of the release (bao18/open_earth_map data/*.txt and xbd_files.csv at commit
aedb716ba01f06f4b521ed1f8ded1b3da7b9f7b0): train 3,000 (697 xBD) -> 2,303; val 500 (116
xBD) -> 384.

Conversion: label 0 (unknown) -> 255, v -> v - 1 (``splits.get_split('oem').raw_to_id``); a
value above 8, a multi-band label, a size mismatch, a listed image that is missing or an
image without label is an error naming the file.

Crop size: the paper gives 31,154 / 5,195 crops without the size. 31,154 / 2,303 = 5,195 /
384 = 13.5 crops per tile, while a 1024 x 1024 tile holds 16 tiles of 256 and only 4 of 512,
so the crops are 256 x 256 (our inference), cut on a grid without overlap with partial border
windows dropped (``--edge drop``, which gives fewer than 16 crops for tiles that are not
1024 px; our choice). Every crop is kept (``--min-labelled-pixels 0``).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from ..splits import get_split
from .common import (SPLITS, PrepareError, SplitStats, as_rgb, decode_raw_values, open_image,
                     progress, report, require_dir, require_same_size, reuse_crops, write_crops)

PAPER_COUNTS = {'train': 31154, 'val': 5195}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--crop-size', type=int, default=256, help='crop size (inferred: 256)')
    p.add_argument('--stride', type=int, default=None, help='window stride (default: crop size)')
    p.add_argument('--edge', choices=('drop', 'shift'), default='drop',
                   help="partial border windows: 'drop' (default) or 'shift' back inside")
    p.add_argument('--min-labelled-pixels', type=int, default=0,
                   help='drop crops with fewer pixels of known class (default keeps all)')


def read_list(path: Path) -> List[str]:
    if not path.is_file():
        raise PrepareError(f'split list {str(path)!r} not found; --raw must be the extracted '
                           f'OpenEarthMap_wo_xBD folder (with train.txt, val.txt)')
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_xbd(path: Path) -> set:
    if not path.is_file():
        raise PrepareError(f'{str(path)!r} not found: the official release lists its xBD tiles '
                           f'there and the paper excludes them; use the complete '
                           f'OpenEarthMap_wo_xBD archive')
    names = set()
    with open(path, newline='') as f:
        for n, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not any(row):
                continue
            if len(row) < 2 or not row[1].lower().endswith('.tif'):
                raise PrepareError(f'{str(path)!r} line {n}: expected "<xBD png>,<OEM name>.tif", '
                                   f'got {row}')
            names.add(row[1])
    return names


def index_files(raw: Path, sub: str) -> Dict[str, Path]:
    found: Dict[str, Path] = {}
    for p in sorted(raw.glob(f'*/{sub}/*.tif')):
        if p.name in found:
            raise PrepareError(f'{p.name} found twice: {str(found[p.name])!r} and {str(p)!r}')
        found[p.name] = p
    return found


def decode_label(path: Path) -> np.ndarray:
    return decode_raw_values(
        open_image(path), get_split('oem').raw_to_id, f'label {str(path)!r}',
        mode_hint='OpenEarthMap labels are single-band uint8 GeoTIFFs with values 0..8',
        allowed='OpenEarthMap values 0 (unknown) .. 8')


def find_pairs(raw: Path, split: str, xbd: set, images: Dict[str, Path],
               labels: Dict[str, Path]) -> Tuple[List[Tuple[str, Path, Path]], int]:
    names = read_list(raw / f'{split}.txt')
    kept = [n for n in names if n not in xbd]
    pairs = []
    for n in kept:
        region = '_'.join(Path(n).stem.split('_')[:-1])  # as OEM's data/compile_xbd.py
        if n not in images:
            raise PrepareError(f'{split}.txt lists {n!r} but its image '
                               f'{str(raw / region / "images" / n)!r} is missing (and it is not '
                               f'an xBD tile of xbd_files.csv)')
        if n not in labels:
            raise PrepareError(f'image without label: {str(images[n])!r} has no '
                               f'{str(raw / region / "labels" / n)!r}')
        pairs.append((Path(n).stem, images[n], labels[n]))
    return pairs, len(names) - len(kept)


def run(args: argparse.Namespace) -> dict:
    raw, out = Path(args.raw), Path(args.out)
    require_dir(raw, 'raw OpenEarthMap folder (--raw)',
                'Download OpenEarthMap_wo_xBD.zip (Zenodo record 7223446) and extract it')
    stride = args.stride or args.crop_size
    Image.MAX_IMAGE_PIXELS = 400_000_000
    xbd = read_xbd(raw / 'xbd_files.csv')
    images, labels = index_files(raw, 'images'), index_files(raw, 'labels')
    stats, dropped_xbd = {}, {}
    for split in SPLITS:
        pairs, dropped_xbd[split] = find_pairs(raw, split, xbd, images, labels)
        if args.limit:
            pairs = pairs[:args.limit]
        st = stats[split] = SplitStats()
        for stem, ip, lp in progress(pairs, len(pairs), f'OEM {split} tiles'):
            if not args.force and reuse_crops(out, 'oem', split, stem, st):
                continue
            ids = decode_label(lp)
            img = as_rgb(open_image(ip), ip)
            require_same_size(ip, img.size, lp, (ids.shape[1], ids.shape[0]))
            write_crops(out, 'oem', split, stem, np.asarray(img), ids, args.crop_size, stride,
                        args.edge, args.min_labelled_pixels, st, str(ip))
    notes = [f'xBD tiles dropped (xbd_files.csv): train {dropped_xbd["train"]}, '
             f'val {dropped_xbd["val"]} (release: 697 / 116).',
             f'crops {args.crop_size} x {args.crop_size}, stride {stride}, border windows '
             f'{args.edge}; the paper does not state its crop rule, so counts may differ '
             f'(31,154 / 5,195 expected from 2,303 / 384 tiles).']
    if args.limit:
        notes.append(f'--limit {args.limit}: only the first {args.limit} tiles per split.')
    params = dict(crop_size=args.crop_size, stride=stride, edge=args.edge,
                  min_labelled_pixels=args.min_labelled_pixels, limit=args.limit)
    return report('oem', get_split('oem'), stats, PAPER_COUNTS, out, params, notes)

"""iSAID -> 256 x 256 crops in the processed layout (the paper's iSAID-5i processing).

Raw input: the official iSAID download as it comes, the archives read in place (streamed
member by member, never extracted), as mmsegmentation documents it (mmseg 1.2.2
``docs/en/user_guides/2_dataset_prepare.md`` and ``tools/dataset_converters/isaid.py``, which
reads ``<split>/images/*.zip`` and ``<split>/Semantic_masks/*.zip``, members under ``images/``)::

    <raw>/train/images/part1.zip ... part3.zip         images/P0000.png ...  (DOTA images, RGB)
    <raw>/train/Semantic_masks/images.zip              images/P0000_instance_color_RGB.png ...
    <raw>/val/images/part1.zip, val/Semantic_masks/images.zip

or the same archives extracted (test/ is not used)::

    <raw>/train/**/P0000.png                        DOTA image (RGB)
    <raw>/train/**/P0000_instance_color_RGB.png     8-bit RGB semantic colour mask
    <raw>/val/...                                   same

(``**`` = any sub-folder, in a folder or in any ``*.zip`` under ``<raw>/<split>``: the devkit
keeps both in ``images/``, the download ships the masks in ``Semantic_masks/images/``;
``*_instance_id_RGB.png`` files are ignored.) Both give the same output, byte for byte.

Decoding: every colour must be one of the 15 class colours of the devkit's ``labels.py``
(``splits.get_split('isaid').palette``, read in RGB order as mmseg's converter does) or black
background, which becomes 255. Anything else -- unknown colours, a palette-mode ('P') mask
where an RGB one is expected, a size mismatch, an image without mask -- is an error naming the
file.

Crops: windows of ``--patch-size`` (256, the iSAID-5i size) at stride patch - ``--overlap``
(0), with the devkit's rule at the borders (the last window is shifted back inside the
image). The devkit also skips P1527 and P1530 (``preprocess/split.py``); we do the same
(``--skip``). Crops with fewer than ``--min-labelled-pixels`` (1) non-background pixels
are dropped: an all-ignore crop adds nothing to training or to the confusion matrix.
iSAID-5i (Yao et al., TGRS 2021) is 18,076 / 6,363 crops; its selection rule is not
published (the few-shot benchmark's own download is the only source), so our counts differ;
the report prints both.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path, PurePosixPath
from typing import Dict, Iterator, List, Tuple, Union

import numpy as np
from PIL import Image

from ..splits import get_split
from .common import (IGNORE, SPLITS, PrepareError, SplitStats, ZipMember, as_rgb, open_image,
                     progress, report, require_dir, require_pairs, require_same_size, reuse_crops,
                     write_crops, zip_entries)

Source = Union[Path, ZipMember]  # a file, or a member of one of the release's zips

PAPER_COUNTS = {'train': 18076, 'val': 6363}
DEVKIT_SKIP = ('P1527', 'P1530')  # iSAID_Devkit preprocess/split.py skips these two
_IMG_RE = re.compile(r'^(P\d+)\.png$')
_MASK_RE = re.compile(r'^(P\d+)_instance_color_RGB\.png$')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--patch-size', type=int, default=256, help='crop size (iSAID-5i: 256)')
    p.add_argument('--overlap', type=int, default=0, help='overlap of neighbouring crops')
    p.add_argument('--edge', choices=('shift', 'drop'), default='shift',
                   help="border windows: 'shift' back inside (devkit) or 'drop'")
    p.add_argument('--min-labelled-pixels', type=int, default=1,
                   help='drop crops with fewer non-background pixels')
    p.add_argument('--skip', default=','.join(DEVKIT_SKIP),
                   help='comma-separated image ids to leave out (devkit: P1527,P1530)')


def _files(root: Path) -> Iterator[Tuple[str, Source]]:
    """(file name, source) of every PNG under ``root``: files, then members of its zips."""
    for p in sorted(root.rglob('*.png')):
        yield p.name, p
    for z in sorted(root.rglob('*.zip')):
        for m in zip_entries(z):
            yield PurePosixPath(m.name).name, m


def find_pairs(raw: Path, split: str) -> List[Tuple[str, Source, Source]]:
    """(stem, image, colour mask) of one split, sorted; errors name the offending file."""
    root = require_dir(raw / split, f'iSAID {split} folder',
                       f'--raw must hold the official download with {split}/ inside '
                       f'({split}/images/*.zip and {split}/Semantic_masks/*.zip, or their '
                       f'contents extracted)')
    images: Dict[str, Source] = {}
    masks: Dict[str, Source] = {}
    zips = sorted(str(z) for z in root.rglob('*.zip'))
    for name, src in _files(root):
        for regex, found in ((_IMG_RE, images), (_MASK_RE, masks)):
            m = regex.match(name)
            if m:
                if m.group(1) in found:
                    raise PrepareError(f'{name} found twice: {str(found[m.group(1)])!r} and '
                                       f'{str(src)!r}; keep one copy (the archive or its '
                                       f'extracted files)')
                found[m.group(1)] = src
    if not images:
        hint = f' (nor in {", ".join(zips)})' if zips else ''
        raise PrepareError(f'no iSAID images (P0000.png ...) under {str(root)!r}{hint}; expected '
                           f'{split}/images/part*.zip of the official download or its contents')
    require_pairs(
        images, masks,
        no_mask=lambda s: (f'{str(images[s])!r} has no {s}_instance_color_RGB.png under '
                           f'{str(root)!r}'),
        no_image=lambda s: f'{str(masks[s])!r} has no {s}.png under {str(root)!r}')
    return [(s, images[s], masks[s]) for s in sorted(images)]


def decode_colour_mask(path: Source, rows_per_block: int = 1024) -> np.ndarray:
    """RGB colour mask -> ids (0..14; black background -> 255)."""
    split = get_split('isaid')
    im = open_image(path)
    if im.mode == 'P':
        raise PrepareError(
            f'mask {str(path)!r} is a palette-mode (P) PNG, but iSAID colour masks are 8-bit RGB; '
            f'reading palette indices as classes gives all-zero labels. Use the official '
            f'*_instance_color_RGB.png files, not re-saved or converted ones')
    if im.mode != 'RGB':
        raise PrepareError(f'mask {str(path)!r} has mode {im.mode!r}; expected an 8-bit RGB '
                           f'colour mask')
    rgb = np.asarray(im)
    colours = [(0, 0, 0)] + [tuple(c) for c in split.palette]
    values = [IGNORE] + list(range(split.num_classes))
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], dtype=np.int32)
    order = np.argsort(keys)
    keys, values = keys[order], np.asarray(values, dtype=np.uint8)[order]
    ids = np.empty(rgb.shape[:2], np.uint8)
    bad_codes = []
    for r0 in range(0, rgb.shape[0], rows_per_block):  # bounded memory on 13,000-px images
        blk = rgb[r0:r0 + rows_per_block].astype(np.int32)
        code = (blk[..., 0] << 16) | (blk[..., 1] << 8) | blk[..., 2]
        pos = np.clip(np.searchsorted(keys, code), 0, len(keys) - 1)
        ok = keys[pos] == code
        if not ok.all():
            bad_codes.append(code[~ok])
        ids[r0:r0 + rows_per_block] = values[pos]
    if bad_codes:
        bad, cnt = np.unique(np.concatenate(bad_codes), return_counts=True)
        top = sorted(zip(cnt.tolist(), bad.tolist()), reverse=True)[:5]
        desc = ', '.join(f'({c >> 16}, {(c >> 8) & 255}, {c & 255}) x{n}' for n, c in top)
        raise PrepareError(f'mask {str(path)!r} holds {int(cnt.sum())} pixels of colours that '
                           f'are not iSAID class colours nor black background: {desc}')
    return ids


def process_pair(stem: str, img_path: Source, mask_path: Source, out: Path, split: str,
                 args: argparse.Namespace, st: SplitStats) -> None:
    if not args.force and reuse_crops(out, 'isaid', split, stem, st):
        return
    ids = decode_colour_mask(mask_path)
    img = as_rgb(open_image(img_path), img_path)
    require_same_size(img_path, img.size, mask_path, (ids.shape[1], ids.shape[0]))
    write_crops(out, 'isaid', split, stem, np.asarray(img), ids, args.patch_size,
                args.patch_size - args.overlap, args.edge, args.min_labelled_pixels, st,
                str(img_path))


def run(args: argparse.Namespace) -> dict:
    if not 0 <= args.overlap < args.patch_size:
        raise PrepareError(f'--overlap must be in 0..{args.patch_size - 1}, got {args.overlap}')
    Image.MAX_IMAGE_PIXELS = 400_000_000  # iSAID images reach ~13,000 px on a side
    raw, out = Path(args.raw), Path(args.out)
    require_dir(raw, 'raw iSAID folder (--raw)', 'Download iSAID (images from DOTA-v1.0, '
                'semantic masks from the iSAID site) into train/ and val/ as mmsegmentation '
                'documents it (train/images/part1.zip ..., train/Semantic_masks/images.zip)')
    skip = {s.strip() for s in (args.skip or '').split(',') if s.strip()}
    stats = {}
    for split in SPLITS:
        pairs = [p for p in find_pairs(raw, split) if p[0] not in skip]
        if args.limit:
            pairs = pairs[:args.limit]
        st = stats[split] = SplitStats()
        for stem, ip, mp in progress(pairs, len(pairs), f'iSAID {split} images'):
            process_pair(stem, ip, mp, out, split, args, st)
    params = dict(patch_size=args.patch_size, overlap=args.overlap, edge=args.edge,
                  min_labelled_pixels=args.min_labelled_pixels, skip=sorted(skip),
                  limit=args.limit)
    notes = ['iSAID-5i (Yao et al., TGRS 2021) has 18,076 / 6,363 crops of 256 x 256; its crop '
             'selection is not published, so counts differ; ours: every crop of the grid '
             f'(stride {args.patch_size - args.overlap}, devkit border rule) with at least '
             f'{args.min_labelled_pixels} labelled pixel(s).']
    if args.limit:
        notes.append(f'--limit {args.limit}: only the first {args.limit} images per split.')
    return report('isaid', get_split('isaid'), stats, PAPER_COUNTS, out, params, notes)

"""Segment your own scenes (GeoTIFF of any size, PNG, JPEG) with your own class names.

    python -m aeroseg.infer CONFIG [CHECKPOINT] --images FILE|DIR|GLOB ... \\
        --classes "ship,harbor,oil tank|storage tank,water" --out DIR [options]
    (console script: aeroseg-infer)

Writes per input ``<stem>``, in ``--out``:

* ``<stem>_classes.tif`` (GeoTIFF inputs) or ``<stem>_classes.png`` (PNG / JPEG inputs): one uint8
  band, pixel value i = the i-th class of ``--classes`` (its first name), 255 = nodata. The GeoTIFF
  keeps the input's CRS, transform and size and carries a colour table and the class names in its
  tags (``CLASS_NAMES`` as JSON, ``CLASS_<i>``); the PNG is palette mode with the same text chunks.
* ``<stem>_confidence.tif|png`` with ``--confidence``: the winning class's score, a separate file
  (float32 in [0, 1], NaN = nodata, for GeoTIFF; round(255 * score) 8-bit for PNG).
* ``<stem>_overlay.png`` unless ``--no-overlay``: the image with the class colours over it and a
  legend (at most ``--overlay-size`` pixels a side).

A class entry ``'oil tank|storage tank'`` is one class with two queries, scored by the max
(:func:`aeroseg.apis.class_queries`). The scene is read, predicted and written in strips of
overlapping ``--tile`` tiles blended smoothly (:mod:`aeroseg.tiling`); each tile goes through the
model's ``predict_logits`` (its own whole / sliding-window inference). Raster handling (bands,
stretch, nodata, atomic writes): :mod:`aeroseg.raster`. Without CHECKPOINT the model is built
with the weights its config names, right for training-free methods (SegEarth-OV); a trained
method's head would then be random. Errors the user can fix print one line naming the file and
the fix (the traceback with ``--verbose``); outputs are moved into place only when complete.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from .config import SCALE_RULE
from .raster import (NODATA_LABEL, PIL_SUFFIXES, ClassMapWriter, InputError, check_writable_dir,
                     gdal_env, list_images, open_image, parse_bands, preview_step, publish,
                     read_decimated)
from .tiling import blend_strips, check_tiling, count_tiles

__all__ = ['main', 'parse_classes', 'segment_file', 'build_parser']


def parse_classes(entries: Sequence[str]):
    """``--classes`` values (comma-separated, any number of arguments) -> (names, queries, index, groups)."""
    from .apis import class_queries
    parts = [p.strip() for e in entries for p in str(e).split(',')]
    if not any(parts):
        raise InputError('--classes: the class list is empty; pass e.g. --classes "ship,harbor,water"')
    if not all(parts):
        raise InputError(f'--classes {",".join(entries)!r}: an empty name (stray comma?); pass e.g. '
                         f'--classes "ship,harbor,water"')
    try:
        names, queries, index = class_queries(parts)
    except (ValueError, TypeError) as e:
        raise InputError(f'--classes: {e}; give each class once (synonyms after "|")') from None
    groups = [[q for q, c in zip(queries, index) if c == i] for i in range(len(names))]
    return names, queries, index, groups


def _one_line(e: BaseException) -> str:
    return ' '.join(s.strip() for s in str(e).splitlines() if s.strip())


def _tqdm(**kw):
    from tqdm import tqdm
    return tqdm(file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 5.0, **kw)


def segment_file(model, path: str, out_dir: str, classes: Sequence[str], *, bands=None,
                 stretch: str = 'auto', percentiles=(2.0, 98.0), nodata: Optional[float] = None,
                 tile: int = 512, overlap: int = 64, batch_size: int = 1, confidence: bool = False,
                 overlay: bool = True, overlay_size: int = 1600, tags: Optional[Dict[str, str]] = None,
                 progress: bool = True, stem: Optional[str] = None) -> Dict[str, str]:
    """Segment one image or raster into ``out_dir`` (module docstring); returns kind -> written path."""
    import torch

    from .apis import score_batch
    from .visualize import class_colours
    names, queries, index, groups = parse_classes(classes)
    colours = class_colours(names, [g[1:] for g in groups])
    device = next(model.parameters()).device
    stem = stem or os.path.splitext(os.path.basename(path))[0]

    def predict(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(device)
        return score_batch(model, x, queries, index).float().cpu().numpy()

    with gdal_env(), open_image(path, bands=bands, nodata=nodata, stretch=stretch,
                                percentiles=percentiles) as src:
        geotiff = not path.lower().endswith(PIL_SUFFIXES)
        meta = {'CLASS_QUERIES': json.dumps(groups), 'BANDS': ','.join(map(str, src.bands)),
                'STRETCH': src.stretch, 'TILE': str(tile), 'OVERLAP': str(overlap), **(tags or {})}
        writer = ClassMapWriter(out_dir, stem, src.height, src.width, names, colours, geotiff,
                                src.profile, confidence, meta)
        bar = _tqdm(total=count_tiles(src.height, src.width, tile, overlap), unit='tile',
                    desc=os.path.basename(path), leave=False, disable=not progress)
        try:
            for row0, scores, valid in blend_strips(src.height, src.width, len(names), tile, overlap,
                                                    src.read, predict, batch_size, bar.update):
                labels = scores.argmax(0).astype(np.uint8)
                labels[~valid] = NODATA_LABEL
                conf = None
                if confidence:
                    conf = scores.max(0)
                    conf[~valid] = np.nan
                writer.write(row0, labels, conf)
            paths = writer.commit()
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
        if overlay:
            paths['overlay'] = _write_overlay(src, paths['classes'], out_dir, stem, names, groups,
                                              colours, overlay_size)
    return paths


def _labels_preview(path: str, step: int) -> np.ndarray:
    """Every ``step``-th pixel of the written class map (as the image preview), never loaded whole."""
    if path.endswith('.tif'):
        import rasterio
        with rasterio.open(path) as src:
            return read_decimated(src, 1, step)
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im)[::step, ::step]


def _write_overlay(src, classes_path, out_dir, stem, names, groups, colours, max_side) -> str:
    from .visualize import save_overlay
    rgb, _ = src.preview(max_side)
    rgb = rgb.transpose(1, 2, 0).round().astype(np.uint8)
    labels = _labels_preview(classes_path, preview_step(src.height, src.width, max_side))
    final = os.path.join(out_dir, f'{stem}_overlay.png')
    fd, tmp = tempfile.mkstemp(prefix=f'.{stem}_overlay.', suffix='.part.png', dir=out_dir)
    os.close(fd)
    try:
        legend = [' | '.join(g) for g in groups]
        save_overlay(tmp, rgb, labels, names, colours, title=os.path.basename(src.path),
                     legend_labels=legend)
        publish(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return final


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='aeroseg-infer', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Outputs per input <stem> in --out: <stem>_classes.tif|png (uint8, 255 = nodata), '
               '<stem>_confidence.tif|png (--confidence), <stem>_overlay.png.')
    p.add_argument('config', help='model config, e.g. configs/aeroseg/aeroseg_vitb16_isaid.py')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='trained weights (optional: training-free methods need none)')
    p.add_argument('--images', nargs='+', required=True, help='files, folders or glob patterns')
    p.add_argument('--classes', nargs='+', required=True,
                   help='class names, comma-separated; synonyms after "|", scored by max '
                        '(e.g. "ship,harbor,oil tank|storage tank,water")')
    p.add_argument('--out', required=True, help='output folder (created if missing)')
    p.add_argument('--scale', default=None, choices=('full', 'mini'),
                   help='mini: the tiny mini-world version of CONFIG; ' + SCALE_RULE)
    p.add_argument('--bands', default=None,
                   help='1-based bands as R,G,B (e.g. 3,2,1) or one band as grey; default 1,2,3')
    p.add_argument('--stretch', default='auto', choices=('auto', 'percentile', 'minmax', 'none'),
                   help='map the data to 0..255 per band; auto = none for uint8, percentile otherwise')
    p.add_argument('--percentiles', nargs=2, type=float, default=(2.0, 98.0), metavar=('LO', 'HI'))
    p.add_argument('--nodata', type=float, default=None,
                   help="nodata value (default: the file's own nodata / mask / alpha)")
    p.add_argument('--tile', type=int, default=512, help='tile size in pixels (default 512)')
    p.add_argument('--overlap', type=int, default=64, help='tile overlap in pixels (default 64)')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    p.add_argument('--batch-size', type=int, default=1, help='tiles per forward pass')
    p.add_argument('--confidence', action='store_true', help='also write <stem>_confidence')
    p.add_argument('--no-overlay', action='store_true', help='skip <stem>_overlay.png')
    p.add_argument('--overlay-size', type=int, default=1600, help='overlay: longest side in pixels')
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
                   help='config overrides, e.g. model.test_cfg.mode=whole')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    p.add_argument('--verbose', action='store_true', help='full tracebacks on errors')
    return p


def _cfg_options(items: Optional[List[str]]) -> Optional[dict]:
    if not items:
        return None
    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='o')(None, ns, items)
    return ns.o


def _load_model(args):
    from .apis import init_model
    from .config import ScaleError, choose_scale
    from .utils.checkpoint import CheckpointError, read_checkpoint_meta
    if not os.path.isfile(args.config):
        raise InputError(f'{args.config}: no such config file; pass one under configs/, e.g. '
                         f'configs/catseg/catseg_vitb16_isaid.py')
    if args.checkpoint is None:
        print(f'note: no CHECKPOINT: {args.config} is built with the weights its config names '
              f'(right for training-free methods; a trained method needs its checkpoint)',
              file=sys.stderr)
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        recorded = read_checkpoint_meta(args.checkpoint).get('scale') if args.checkpoint else None
        args.scale = choose_scale(args.scale, recorded, checkpoint=args.checkpoint)
        return init_model(args.config, args.checkpoint, device=device, scale=args.scale,
                          cfg_options=_cfg_options(args.cfg_options))
    except ScaleError as e:
        raise InputError(_one_line(e)) from e
    except CheckpointError as e:
        if 'truncated or corrupt' in str(e) or 'is a folder' in str(e):
            raise InputError(_one_line(e)) from e
        raise InputError(f'{_one_line(e)} Fix: pass the CHECKPOINT trained with {args.config} '
                         f'(and the same --scale, {args.scale!r} now).') from e


def run(args) -> List[Dict[str, str]]:
    """The command's work for parsed ``args``; returns the written paths per input."""
    parse_classes(args.classes)                  # fail fast, before the model loads
    parse_bands(args.bands)
    try:
        check_tiling(args.tile, args.overlap)
    except ValueError as e:
        raise InputError(str(e)) from None
    if args.batch_size < 1:
        raise InputError(f'--batch-size {args.batch_size}: use 1 or more')
    files = list_images(args.images)
    stems: Dict[str, str] = {}
    for f in files:
        s = os.path.splitext(os.path.basename(f))[0]
        if s in stems:
            raise InputError(f'{f}: has the same name as {stems[s]}, so their outputs would collide; '
                             f'segment them into different --out folders')
        stems[s] = f
    check_writable_dir(args.out)
    model = _load_model(args)
    tags = {'AEROSEG_CONFIG': args.config, 'AEROSEG_CHECKPOINT': str(args.checkpoint),
            'AEROSEG_SCALE': args.scale}
    results = []
    for f in _tqdm(iterable=files, unit='file', desc='files', disable=args.no_progress or len(files) < 2):
        paths = segment_file(model, f, args.out, args.classes, bands=args.bands, stretch=args.stretch,
                             percentiles=tuple(args.percentiles), nodata=args.nodata, tile=args.tile,
                             overlap=args.overlap, batch_size=args.batch_size,
                             confidence=args.confidence, overlay=not args.no_overlay,
                             overlay_size=args.overlay_size, tags=tags, progress=not args.no_progress)
        print(f'{f} -> ' + ', '.join(paths.values()))
        results.append(paths)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m aeroseg.infer`` / ``aeroseg-infer``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except InputError as e:
        if args.verbose:
            raise
        print(f'aeroseg-infer: error: {_one_line(e)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('aeroseg-infer: interrupted (unfinished outputs were removed)', file=sys.stderr)
        return 130
    except Exception as e:  # not one we foresaw: still one line unless --verbose
        if args.verbose:
            raise
        print(f'aeroseg-infer: error: {type(e).__name__}: {_one_line(e)} '
              f'(rerun with --verbose for the traceback)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    from aeroseg.utils.malloc import retain_freed_memory
    from aeroseg.utils.process import exit_now
    retain_freed_memory()  # freed tensors' pages reused, not faulted in again (its docstring)
    exit_now(main())

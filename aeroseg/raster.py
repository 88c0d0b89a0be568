"""Raster I/O for inference on a user's scenes: read windows, pick bands, stretch, nodata; write.

Reading (:func:`open_image`): GeoTIFF and any other raster GDAL reads go through rasterio, window
by window (a scene is never loaded whole); PNG / JPEG go through PIL and are held in memory (those
formats are decoded whole anyway). Either way a reader gives

* ``read(row0, rows) -> (rgb (3, rows, W) float32 in 0..255, valid (rows, W) bool)``: the chosen
  bands (``bands``, 1-based as in GDAL; one band is repeated as grey), stretched to the 0..255 the
  encoders expect, and where the pixel holds data;
* ``preview(max_side)``: the same at reduced size, for the overlay.

Stretch (``stretch='auto'``: none for uint8, ``percentile`` otherwise): per band, ``lo..hi`` ->
0..255 and clipped, ``lo, hi`` taken once per scene from a decimated read (at most
``STATS_PIXELS`` pixels, nodata left out) so every window gets the same mapping: per-window
statistics would change the brightness from tile to tile and put seams in the prediction.

Nodata: a pixel is nodata when every chosen band is nodata there (the file's nodata value / masks
as rasterio reports them, alpha = 0 in a PNG, NaN, or ``nodata=V`` given by the user). Nodata
pixels are filled with 0 before the model sees them and written as 255 (unlabelled).

Writing (:class:`ClassMapWriter`): a single-band uint8 class map (GeoTIFF with the input's CRS,
transform and size, a colour table, the class names in its tags, nodata 255; PNG for PNG / JPEG
inputs, palette mode with the names in a text chunk) and, optionally, the per-pixel confidence
(max class score) as its own file: float32 GeoTIFF in [0, 1] with nodata NaN, or an 8-bit PNG of
round(255 * score). Rows arrive strip by strip; files are written to a temporary name in the
output folder and moved into place with ``os.replace`` only when complete, and removed on error.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['InputError', 'open_image', 'parse_bands', 'ClassMapWriter', 'check_writable_dir',
           'PIL_SUFFIXES', 'RASTER_SUFFIXES', 'STATS_PIXELS', 'NODATA_LABEL', 'compute_stretch',
           'apply_stretch', 'list_images', 'publish', 'gdal_env', 'preview_step',
           'read_decimated', 'read_raster']

PIL_SUFFIXES = ('.png', '.jpg', '.jpeg')
RASTER_SUFFIXES = ('.tif', '.tiff', '.vrt', '.img', '.jp2')
STATS_PIXELS = 1 << 20      # pixels per band read for the stretch statistics
NODATA_LABEL = 255
GDAL_CACHE_MB = 128
STRETCHES = ('auto', 'percentile', 'minmax', 'none')


class InputError(ValueError):
    """A problem with the user's input that they can fix; the message names the file and the fix."""


def parse_bands(spec) -> Optional[Tuple[int, ...]]:
    """``'3,2,1'`` or ``(3, 2, 1)`` -> (3, 2, 1); ``None`` -> None (:func:`open_image` picks)."""
    if spec is None:
        return None
    try:
        bands = tuple(int(b) for b in (str(spec).split(',') if isinstance(spec, str) else spec))
    except ValueError:
        raise InputError(f'--bands {spec!r}: give 1-based band numbers separated by commas, '
                         f'e.g. --bands 3,2,1') from None
    if len(bands) not in (1, 3):
        raise InputError(f'--bands {spec!r}: give 3 bands (R,G,B order, e.g. --bands 3,2,1) or '
                         f'one band (used as grey)')
    return bands


def _default_bands(path: str, count: int) -> Tuple[int, ...]:
    if count >= 3:
        return (1, 2, 3)
    if count == 1:
        return (1,)
    raise InputError(f'{path}: {count} bands; say which to use as R,G,B with --bands '
                     f'(e.g. --bands 1,2,2), or one band as grey (--bands 1)')


def _check_bands(path: str, bands: Tuple[int, ...], count: int) -> None:
    bad = [b for b in bands if not 1 <= b <= count]
    if bad:
        example = '3,2,1' if count >= 3 else '1'
        raise InputError(f'{path}: band {bad[0]} is out of range: the file has {count} band'
                         f'{"s" if count != 1 else ""} (1..{count}); pass e.g. --bands {example}')


def compute_stretch(sample: np.ndarray, valid: np.ndarray, stretch: str,
                    percentiles: Tuple[float, float] = (2.0, 98.0)) -> Optional[np.ndarray]:
    """Per-band (lo, hi) as a (C, 2) array from a sample (C, h, w); None = no stretch."""
    if stretch == 'none':
        return None
    out = np.zeros((sample.shape[0], 2), np.float64)
    for c, band in enumerate(sample):
        v = band[valid & np.isfinite(band)]
        if v.size == 0:
            out[c] = (0.0, 255.0)
            continue
        lo, hi = (np.percentile(v, percentiles) if stretch == 'percentile'
                  else (float(v.min()), float(v.max())))
        out[c] = (lo, hi if hi > lo else lo + 1.0)
    return out


def apply_stretch(data: np.ndarray, lohi: Optional[np.ndarray]) -> np.ndarray:
    """(C, h, w) -> float32 0..255: ``(x - lo) / (hi - lo) * 255`` per band, clipped."""
    x = data.astype(np.float32, copy=False)
    if lohi is not None:
        lo = lohi[:, 0].astype(np.float32)[:, None, None]
        hi = lohi[:, 1].astype(np.float32)[:, None, None]
        x = (x - lo) * (255.0 / (hi - lo))
    return np.clip(np.nan_to_num(x, nan=0.0), 0.0, 255.0)


class _Reader:
    """Shared part of the two readers: band choice, nodata rule, stretch, grey -> RGB."""

    georeferenced = False
    profile: Dict = {}

    def __init__(self, path: str, count: int, dtype: str, bands, nodata, stretch, percentiles):
        self.path = path
        self.count = count
        self.dtype = np.dtype(dtype)
        self.bands = parse_bands(bands) or _default_bands(path, count)
        _check_bands(path, self.bands, count)
        self.user_nodata = nodata
        if stretch not in STRETCHES:
            raise InputError(f'--stretch {stretch!r}: choose one of {", ".join(STRETCHES)}')
        if stretch == 'auto':
            stretch = 'none' if self.dtype == np.uint8 else 'percentile'
        self.stretch = stretch
        sample, valid = self._raw_preview(int(np.sqrt(STATS_PIXELS)))
        self.lohi = compute_stretch(sample, valid, stretch, tuple(percentiles))

    # subclasses: _raw(row0, rows) / _raw_preview(max_side) -> (data (C,h,w), valid (h,w))
    def _valid(self, data: np.ndarray, masks: Optional[np.ndarray]) -> np.ndarray:
        bad = np.isnan(data) if data.dtype.kind == 'f' else np.zeros(data.shape, bool)
        if self.user_nodata is not None:
            bad |= data == self.user_nodata
        elif masks is not None:
            bad |= masks == 0
        return ~bad.all(axis=0)

    def _finish(self, data: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        rgb = apply_stretch(data, self.lohi)
        if rgb.shape[0] == 1:
            rgb = np.repeat(rgb, 3, axis=0)
        rgb[:, ~valid] = 0.0
        return rgb, valid

    def read(self, row0: int, rows: int) -> Tuple[np.ndarray, np.ndarray]:
        """Rows ``row0 .. row0 + rows`` as (rgb (3, rows, W) float32 0..255, valid (rows, W))."""
        return self._finish(*self._raw(row0, rows))

    def preview(self, max_side: int) -> Tuple[np.ndarray, np.ndarray]:
        """The whole scene decimated to at most ``max_side`` pixels a side (for overlays)."""
        return self._finish(*self._raw_preview(max_side))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def preview_step(h: int, w: int, max_side: int) -> int:
    """Subsampling step that brings the longer side to at most ``max_side``."""
    return max(1, -(-max(h, w) // max_side))


def read_decimated(src, indexes, step: int, masks: bool = False, strip: int = 512) -> np.ndarray:
    """Every ``step``-th row and column of an open rasterio dataset, read strip by strip.

    GDAL's own decimated read (``out_shape``) took 40 s for a 3,000 x 3,000 tiled deflate GeoTIFF
    here; full-resolution strips subsampled in numpy take a fraction of a second and hold one strip.
    """
    from rasterio.windows import Window
    rows = step * max(1, strip // step)
    read = src.read_masks if masks else src.read
    parts = [read(indexes, window=Window(0, r0, src.width, min(rows, src.height - r0)))[..., ::step, ::step]
             for r0 in range(0, src.height, rows)]
    return np.concatenate(parts, axis=-2)


class _RasterioReader(_Reader):
    def __init__(self, path, bands, nodata, stretch, percentiles):
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', NotGeoreferencedWarning)
                self.src = rasterio.open(path)
        except RasterioIOError as e:
            raise InputError(f'{path}: not an image or raster GDAL can read ({str(e).splitlines()[0]}); '
                             f'pass a GeoTIFF, PNG or JPEG') from None
        self.height, self.width = self.src.height, self.src.width
        self.georeferenced = self.src.crs is not None or not self.src.transform.is_identity
        self.profile = dict(crs=self.src.crs, transform=self.src.transform)
        try:
            super().__init__(path, self.src.count, self.src.dtypes[0], bands, nodata, stretch,
                             percentiles)
        except Exception:
            self.src.close()
            raise

    def _read(self, window=None, step=None):
        idx = list(self.bands)
        if step is None:
            data = self.src.read(idx, window=window)
            masks = None if self.user_nodata is not None else self.src.read_masks(idx, window=window)
        else:
            data = read_decimated(self.src, idx, step)
            masks = None if self.user_nodata is not None else read_decimated(self.src, idx, step, True)
        return data, self._valid(data, masks)

    def _raw(self, row0, rows):
        from rasterio.windows import Window
        return self._read(Window(0, row0, self.width, rows))

    def _raw_preview(self, max_side):
        return self._read(step=preview_step(self.height, self.width, max_side))

    def close(self):
        self.src.close()


class _PilReader(_Reader):
    def __init__(self, path, bands, nodata, stretch, percentiles):
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode in ('P', 'PA', 'CMYK', 'YCbCr', 'LAB', 'HSV', '1'):
                    im = im.convert('RGBA' if 'transparency' in im.info or im.mode == 'PA' else 'RGB')
                arr = np.asarray(im)
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise InputError(f'{path}: not an image or raster that can be read ({e}); '
                             f'pass a GeoTIFF, PNG or JPEG') from None
        arr = arr[..., None] if arr.ndim == 2 else arr
        self.alpha = None
        if arr.shape[2] in (2, 4):  # LA / RGBA: the last channel is alpha, not a band
            self.alpha, arr = arr[..., -1], arr[..., :-1]
        self.arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
        self.height, self.width = self.arr.shape[1:]
        super().__init__(path, self.arr.shape[0], str(self.arr.dtype), bands, nodata, stretch,
                         percentiles)

    def _sel(self, rows: slice, step: int = 1):
        data = self.arr[[b - 1 for b in self.bands], rows, ::step][:, ::step]
        masks = None
        if self.alpha is not None and self.user_nodata is None:
            masks = np.broadcast_to(self.alpha[rows, ::step][::step], data.shape)
        return data, self._valid(data, masks)

    def _raw(self, row0, rows):
        return self._sel(slice(row0, row0 + rows))

    def _raw_preview(self, max_side):
        return self._sel(slice(None), preview_step(self.height, self.width, max_side))


def open_image(path: str, bands=None, nodata: Optional[float] = None, stretch: str = 'auto',
               percentiles: Sequence[float] = (2.0, 98.0)) -> _Reader:
    """A reader for ``path`` (module docstring): PIL for PNG / JPEG, rasterio for the rest."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f'{path}: no such file; check the path given to --images')
    if os.path.isdir(path):
        raise InputError(f'{path}: is a folder; pass it to --images as a folder, not as a file')
    cls = _PilReader if path.lower().endswith(PIL_SUFFIXES) else _RasterioReader
    return cls(path, bands, nodata, stretch, percentiles)


def read_raster(path) -> np.ndarray:
    """Every band of a raster GDAL reads (GeoTIFF with any compression, tiling or interleave GDAL
    supports), whole: ``(bands, H, W)`` in the file's dtype. For files small enough to hold, e.g.
    the tiles and labels the dataset preparation reads; a scene goes through :func:`open_image`."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.read()
    except RasterioIOError as e:
        raise InputError(f'{path}: not a raster GDAL can read ({str(e).splitlines()[0]}); the file '
                         f'may be damaged: download it again') from None


def gdal_env(cache_mb: int = GDAL_CACHE_MB):
    """A rasterio environment with GDAL's block cache capped (its default, 5% of RAM, holds the
    partly written blocks of a large output and would make the memory grow with the scene)."""
    import rasterio
    return rasterio.Env(GDAL_CACHEMAX=int(cache_mb))


def check_writable_dir(path: str) -> None:
    """Create ``path`` if needed and prove a file can be written there (InputError if not)."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.aeroseg-write-test-', dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise InputError(f'{path}: the output folder cannot be written ({e.strerror or e}); '
                         f'pass a writable folder with --out') from None


def publish(tmp: str, final: str) -> None:
    """Move a finished temporary file into place, with the permissions a new file gets (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, final)


def _colour_map(colours: Sequence[Tuple[int, int, int]]) -> Dict[int, Tuple[int, int, int, int]]:
    cmap = {i: (0, 0, 0, 255) for i in range(256)}
    cmap.update({i: (int(r), int(g), int(b), 255) for i, (r, g, b) in enumerate(colours)})
    cmap[NODATA_LABEL] = (0, 0, 0, 0)
    return cmap


class ClassMapWriter:
    """Writes a class map (and optionally the confidence) strip by strip, atomically (module docstring).

    ``geotiff=True`` needs ``profile`` (crs, transform) of the input; the outputs are
    ``<out_dir>/<stem>_classes.{tif,png}`` and ``<stem>_confidence.{tif,png}``.
    """

    def __init__(self, out_dir: str, stem: str, height: int, width: int, class_names: Sequence[str],
                 colours: Sequence[Tuple[int, int, int]], geotiff: bool, profile: Optional[dict] = None,
                 confidence: bool = False, tags: Optional[Dict[str, str]] = None):
        if len(class_names) > 255:
            raise InputError(f'{len(class_names)} classes: at most 255 fit a uint8 class map '
                             f'(255 = nodata); pass fewer --classes')
        self.height, self.width, self.geotiff = height, width, geotiff
        ext = '.tif' if geotiff else '.png'
        self.paths = {'classes': os.path.join(out_dir, f'{stem}_classes{ext}')}
        if confidence:
            self.paths['confidence'] = os.path.join(out_dir, f'{stem}_confidence{ext}')
        self._tmp: Dict[str, str] = {}
        for k, p in self.paths.items():
            fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(p)}.', suffix='.part' + ext, dir=out_dir)
            os.close(fd)
            self._tmp[k] = tmp
        self.class_names = list(class_names)
        self.colours = list(colours)
        self.tags = {'CLASS_NAMES': json.dumps(self.class_names), 'NODATA_LABEL': str(NODATA_LABEL),
                     **{f'CLASS_{i}': n for i, n in enumerate(self.class_names)}, **(tags or {})}
        self._dst: Dict[str, object] = {}
        self._mem: Dict[str, np.ndarray] = {}
        self._pending: list = []            # GeoTIFF rows not yet written (see write)
        self._block = 256
        try:
            if geotiff:
                self._open_geotiff(profile or {})
            else:
                self._mem['classes'] = np.full((height, width), NODATA_LABEL, np.uint8)
                if confidence:
                    self._mem['confidence'] = np.zeros((height, width), np.uint8)
        except Exception:
            self.abort()
            raise

    def _open_geotiff(self, profile: dict) -> None:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning
        warnings.filterwarnings('ignore', category=NotGeoreferencedWarning)  # a plain TIFF input
        big = self.height >= 256 and self.width >= 256
        base = dict(driver='GTiff', height=self.height, width=self.width, count=1,
                    crs=profile.get('crs'), transform=profile.get('transform'), compress='deflate',
                    tiled=big, **(dict(blockxsize=256, blockysize=256) if big else {}),
                    BIGTIFF='IF_SAFER')
        dst = rasterio.open(self._tmp['classes'], 'w', dtype='uint8', nodata=NODATA_LABEL, **base)
        self._dst['classes'] = dst
        dst.write_colormap(1, _colour_map(self.colours))
        dst.update_tags(**self.tags)
        dst.set_band_description(1, 'class index (tags CLASS_<i>); 255 = nodata')
        if 'confidence' in self.paths:
            c = rasterio.open(self._tmp['confidence'], 'w', dtype='float32', nodata=float('nan'),
                              predictor=1, **base)
            self._dst['confidence'] = c
            c.update_tags(**self.tags)
            c.set_band_description(1, 'max class score in [0, 1]; NaN = nodata')

    def write(self, row0: int, labels: np.ndarray, confidence: Optional[np.ndarray] = None) -> None:
        """Rows ``row0 .. row0 + len(labels)``: labels uint8 (255 = nodata), confidence float (NaN = nodata).

        Rows come in order. GeoTIFF rows are held until whole rows of blocks are complete, so each
        compressed block is written once (a block written in two parts is read back, recompressed
        and stored again: several times the CPU and a larger file).
        """
        if self.geotiff:
            if confidence is not None and 'confidence' in self._dst:
                confidence = confidence.astype(np.float32)
            self._pending.append((row0, labels, confidence))
            self._flush(final=False)
            return
        rows = labels.shape[0]
        self._mem['classes'][row0:row0 + rows] = labels
        if 'confidence' in self._mem and confidence is not None:
            self._mem['confidence'][row0:row0 + rows] = np.round(
                np.nan_to_num(confidence, nan=0.0) * 255).astype(np.uint8)

    def _flush(self, final: bool) -> None:
        from rasterio.windows import Window
        if not self._pending:
            return
        start = self._pending[0][0]
        end = self._pending[-1][0] + self._pending[-1][1].shape[0]
        cut = end if final or end == self.height else start + (end - start) // self._block * self._block
        if cut == start:
            return
        labels = np.concatenate([p[1] for p in self._pending])
        conf = ([p[2] for p in self._pending] if 'confidence' in self._dst else None)
        conf = np.concatenate(conf) if conf and all(c is not None for c in conf) else None
        n = cut - start
        win = Window(0, start, self.width, n)
        self._dst['classes'].write(labels[None, :n], window=win)
        if conf is not None:
            self._dst['confidence'].write(conf[None, :n], window=win)
        self._pending = [] if n == labels.shape[0] else [
            (cut, labels[n:], None if conf is None else conf[n:])]

    def _save_png(self) -> None:
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo
        info = PngInfo()
        for k, v in self.tags.items():
            info.add_text(k, v)
        im = Image.fromarray(self._mem['classes'], mode='P')
        pal = np.zeros((256, 3), np.uint8)
        pal[:len(self.colours)] = np.asarray(self.colours, np.uint8).reshape(-1, 3)
        im.putpalette(pal.flatten().tolist())
        im.save(self._tmp['classes'], format='PNG', pnginfo=info, transparency=NODATA_LABEL)
        if 'confidence' in self._mem:
            Image.fromarray(self._mem['confidence'], mode='L').save(
                self._tmp['confidence'], format='PNG', pnginfo=info)

    def commit(self) -> Dict[str, str]:
        """Finish the files and move them into place; returns kind -> final path."""
        try:
            if self.geotiff:
                self._flush(final=True)
                for d in self._dst.values():
                    d.close()
                self._dst.clear()
            else:
                self._save_png()
            for k, tmp in self._tmp.items():
                publish(tmp, self.paths[k])
            self._tmp.clear()
        except Exception:
            self.abort()
            raise
        return dict(self.paths)

    def abort(self) -> None:
        """Close and delete the temporary files (nothing half-written stays)."""
        for d in self._dst.values():
            try:
                d.close()
            except Exception:
                pass
        self._dst.clear()
        for tmp in self._tmp.values():
            for p in (tmp, tmp + '.aux.xml'):
                if os.path.exists(p):
                    os.remove(p)
        self._tmp.clear()
        self._mem.clear()


def list_images(specs: Sequence[str]) -> List[str]:
    """Files from ``--images`` entries: a file, a folder (its rasters / images, sorted) or a glob."""
    import glob
    out: List[str] = []
    for s in specs:
        if os.path.isdir(s):
            found = sorted(os.path.join(s, f) for f in os.listdir(s)
                           if f.lower().endswith(PIL_SUFFIXES + RASTER_SUFFIXES)
                           and not f.startswith('.'))
            if not found:
                raise InputError(f'{s}: folder holds no .tif/.tiff/.png/.jpg images; '
                                 f'point --images at the files or at the right folder')
            out += found
        elif os.path.exists(s):
            out.append(s)
        elif glob.has_magic(s):
            found = sorted(p for p in glob.glob(s) if os.path.isfile(p))
            if not found:
                raise InputError(f'{s}: the pattern matches no file; check --images')
            out += found
        else:
            raise InputError(f'{s}: no such file or folder; check --images')
    return list(dict.fromkeys(out))

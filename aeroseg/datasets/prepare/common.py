"""Shared pieces of the preparation tools: checks that fail loudly, atomic writes, tiling,
label statistics and the final report (counts vs the paper's, label histogram)."""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
from PIL import Image

from ..splits import Split

SPLITS = ('train', 'val')
IGNORE = 255


class PrepareError(RuntimeError):
    """A problem with the raw release; the message names the file and the fix."""


# ------------------------------------------------------------------------------ checks
def require_dir(path: Path, what: str, hint: str = '') -> Path:
    if not Path(path).is_dir():
        raise PrepareError(f'{what} {str(path)!r} not found. {hint}'.strip())
    return Path(path)


def require_same_size(img_path: Path, img_size: Tuple[int, int], lab_path: Path,
                      lab_size: Tuple[int, int]) -> None:
    if tuple(img_size) != tuple(lab_size):
        raise PrepareError(
            f'size mismatch: image {str(img_path)!r} is {img_size[0]}x{img_size[1]} (WxH) but '
            f'its label {str(lab_path)!r} is {lab_size[0]}x{lab_size[1]}; the pair does not '
            f'belong together or one file is damaged')


def require_pairs(images: Mapping[str, object], masks: Mapping[str, object],
                  no_mask: Callable[[str], str], no_image: Callable[[str], str]) -> None:
    """Every image stem has a mask and every mask stem an image. Else fail on the first stem
    (sorted) with how many there are; ``no_mask(stem)`` / ``no_image(stem)`` say which file
    lacks what (each release names its files its own way)."""
    missing = sorted(set(images) - set(masks))
    if missing:
        raise PrepareError(f'image without mask: {no_mask(missing[0])} '
                           f'({len(missing)} such images)')
    missing = sorted(set(masks) - set(images))
    if missing:
        raise PrepareError(f'mask without image: {no_image(missing[0])} '
                           f'({len(missing)} such masks)')


def decode_raw_values(im: Image.Image, raw_to_id: Mapping[int, int], what: str,
                      mode_hint: str, allowed: str) -> np.ndarray:
    """A single-band (L / P) label image whose pixel values are raw class values -> uint8 ids
    through the split's ``raw_to_id``. Another mode, or a value ``raw_to_id`` does not list, is
    an error naming ``what`` (e.g. ``"mask '<path>'"``) with ``mode_hint`` / ``allowed``."""
    if im.mode not in ('P', 'L'):
        raise PrepareError(f'{what} has mode {im.mode!r}; {mode_hint}')
    raw = np.asarray(im)
    lut = np.full(256, -1, dtype=np.int16)
    for v, i in raw_to_id.items():
        lut[v] = i
    ids = lut[raw]
    if (ids < 0).any():
        bad = np.unique(raw[ids < 0]).tolist()
        raise PrepareError(f'{what} holds value(s) {bad[:10]} outside the {allowed}')
    return ids.astype(np.uint8)


@dataclass(frozen=True)
class ZipMember:
    """A file inside a zip archive of a raw release, read in place (never extracted)."""
    zip: Path
    name: str

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def __str__(self) -> str:
        return f'{self.zip}!{self.name}'


def zip_entries(zip_path: Path) -> List[ZipMember]:
    """The file members of ``zip_path`` (sorted); a damaged archive is an error naming it."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise PrepareError(f'{str(zip_path)!r} is not a readable zip archive ({e}); download it '
                           f'again') from None
    return [ZipMember(Path(zip_path), n) for n in sorted(names) if not n.endswith('/')]


def open_image(path) -> Image.Image:
    """Open one image of a raw release: GeoTIFF / TIFF through rasterio (``aeroseg.raster``:
    whatever compression, tiling or interleave GDAL reads), PNG / JPEG through PIL, from a file
    or a :class:`ZipMember` (streamed from the archive)."""
    from aeroseg.raster import InputError, read_raster
    try:
        if isinstance(path, ZipMember):
            with zipfile.ZipFile(path.zip) as zf, zf.open(path.name) as f:
                im = Image.open(f)
                im.load()
            return im
        if str(path).lower().endswith(('.tif', '.tiff')):
            arr = read_raster(path)
            if arr.dtype != np.uint8 or arr.shape[0] not in (1, 3, 4):
                raise PrepareError(f'{str(path)!r}: {arr.shape[0]} band(s) of {arr.dtype}; expected '
                                   f'uint8 with 1 (label), 3 or 4 (image) bands')
            # (bands, H, W) -> PIL's L / RGB / RGBA of the same values
            return Image.fromarray(arr[0] if arr.shape[0] == 1 else np.ascontiguousarray(np.moveaxis(arr, 0, -1)))
        im = Image.open(path)
        im.load()
        return im
    except PrepareError:
        raise
    except InputError as e:
        raise PrepareError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise PrepareError(f'cannot read {str(path)!r}: {e}') from None


def as_rgb(im: Image.Image, path: Path) -> Image.Image:
    """RGB image; greyscale is expanded (as mmseg's converters do); other modes fail."""
    if im.mode == 'RGB':
        return im
    if im.mode in ('L', 'P', 'RGBA', 'I;16', 'LA'):
        if im.mode == 'RGBA':
            alpha = np.asarray(im)[..., 3]
            if alpha.min() < 255:
                raise PrepareError(f'image {str(path)!r} has a transparent alpha channel; '
                                   f'expected an RGB image')
        return im.convert('RGB')
    raise PrepareError(f'image {str(path)!r} has mode {im.mode!r}; expected an RGB image')


# ------------------------------------------------------------------------------ writing
def atomic_save(im: Image.Image, path: Path, **save_kwargs) -> None:
    """Write ``im`` to ``path`` via a temporary file in the same folder + ``os.replace``, so
    an interrupted run never leaves a half-written file that a later run would skip."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = save_kwargs.pop('format', None) or Image.registered_extensions()[path.suffix.lower()]
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            im.save(f, format=fmt, **save_kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def label_image(ids: np.ndarray) -> Image.Image:
    """Single-channel uint8 PNG image of a label map (ids 0..K-1, 255)."""
    return Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8), mode='L')


def out_paths(out: Path, split: str, stem: str, img_suffix: str, seg_suffix: str
              ) -> Tuple[Path, Path]:
    return (Path(out) / 'img_dir' / split / f'{stem}{img_suffix}',
            Path(out) / 'ann_dir' / split / f'{stem}{seg_suffix}')


def read_existing_label(path: Path) -> np.ndarray:
    """A label written by an earlier run (for the statistics of skipped outputs)."""
    im = Image.open(path)
    if im.mode != 'L':
        raise PrepareError(f'existing output {str(path)!r} has mode {im.mode!r}, not a label '
                           f'written by this tool; re-run with --force')
    return np.asarray(im)


# ------------------------------------------------------------------------------ tiling
def tile_starts(length: int, size: int, stride: int, edge: str) -> List[int]:
    """Start offsets of windows of ``size`` along an axis of ``length``.

    edge='shift': windows at 0, stride, 2*stride, ... while the start is inside the image;
        a window that would run past the end is shifted back to end at the border (the iSAID
        devkit's ``preprocess/split.py`` and mmseg's ``tools/dataset_converters/isaid.py``).
        An axis shorter than ``size`` gives one window at 0 (padded by the caller).
    edge='drop': only windows that fit entirely (partial border windows are dropped).
    """
    if size <= 0 or stride <= 0:
        raise ValueError(f'crop size and stride must be positive, got {size}, {stride}')
    if edge == 'drop':
        return list(range(0, length - size + 1, stride)) if length >= size else []
    if edge != 'shift':
        raise ValueError(f"edge must be 'shift' or 'drop', got {edge!r}")
    if length <= size:
        return [0]
    starts = []
    for s in range(0, length, stride):
        s = min(s, length - size)
        if not starts or s != starts[-1]:
            starts.append(s)
    return starts


def tile_boxes(h: int, w: int, size: int, stride: int, edge: str
               ) -> List[Tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) windows; y1 - y0 = x1 - x0 = size except on axes shorter than size
    with edge='shift' (then the window is the whole axis and the caller pads)."""
    ys, xs = tile_starts(h, size, stride, edge), tile_starts(w, size, stride, edge)
    return [(y, min(y + size, h), x, min(x + size, w)) for x in xs for y in ys]


def pad_to(arr: np.ndarray, size: int, value: int) -> np.ndarray:
    h, w = arr.shape[:2]
    if h >= size and w >= size:
        return arr
    out = np.full((max(h, size), max(w, size)) + arr.shape[2:], value, dtype=arr.dtype)
    out[:h, :w] = arr
    return out


# ------------------------------------------------------------------------------ statistics
@dataclass
class SplitStats:
    """Counts of one split: written pairs and per-value pixel histogram (0..255)."""
    images: int = 0
    skipped_existing: int = 0
    dropped: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    files_per_class: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))

    def add(self, ids: np.ndarray) -> None:
        counts = np.bincount(ids.ravel(), minlength=256)
        self.hist += counts
        self.files_per_class += counts > 0
        self.images += 1


def check_ids(ids: np.ndarray, split: Split, where: str) -> None:
    k = split.num_classes
    counts = np.bincount(ids.ravel(), minlength=256)
    counts[:k] = 0
    counts[IGNORE] = 0
    bad = np.flatnonzero(counts)
    if bad.size:
        raise PrepareError(f'{where}: label values {bad.tolist()} outside the {k} class ids '
                           f'0..{k - 1} and {IGNORE} after conversion')


def report(name: str, split: Split, stats: Dict[str, SplitStats], paper: Dict[str, int],
           out: Path, params: dict, notes: Sequence[str] = ()) -> dict:
    """Print counts vs the paper and the label histogram; fail on degenerate label sets;
    write ``<out>/prepare_report.json``."""
    k = split.num_classes
    lines = [f'== {split.display}: processed layout in {out}']
    total = SplitStats()
    for s in SPLITS:
        st = stats.get(s)
        if st is None:
            continue
        total.hist += st.hist
        total.files_per_class += st.files_per_class
        total.images += st.images
        diff = '' if st.images == paper.get(s) else '  (differs, see notes)'
        lines.append(f'{s:>5}: {st.images:,} image/label pairs, paper {paper.get(s, 0):,}{diff}'
                     + (f'; {st.skipped_existing:,} kept from an earlier run'
                        if st.skipped_existing else '')
                     + (f'; {st.dropped:,} crops dropped (no labelled pixel)'
                        if st.dropped else ''))
    if total.images == 0:
        raise PrepareError(f'{split.display}: no image/label pair was written to {out}; check '
                           f'--raw and --limit')
    valid = int(total.hist[:k].sum())
    if valid == 0:
        raise PrepareError(
            f'{split.display}: every label pixel is ignore ({IGNORE}) after conversion -- '
            f'an all-zero / all-background label set; the masks were probably decoded wrongly '
            f'(e.g. colour masks read through a palette)')
    present = np.flatnonzero(total.hist[:k])
    if total.images >= 2 and present.size == 1:
        raise PrepareError(
            f'{split.display}: all {total.images} labels hold only class '
            f'{present[0]} ({split.classes[present[0]]}); a single-class label set means the '
            f'masks were decoded wrongly')
    all_px = int(total.hist.sum())
    lines.append(f'label histogram ({all_px:,} pixels; % of all pixels, files containing):')
    for i, c in enumerate(split.classes):
        tag = 'seen' if i in split.seen else 'unseen'
        lines.append(f'  {i:>3} {c:<22} {tag:<6} {100.0 * total.hist[i] / all_px:7.3f}%  '
                     f'{int(total.files_per_class[i]):>7,}')
    lines.append(f'  {IGNORE:>3} {"(ignore)":<22} {"":<6} '
                 f'{100.0 * total.hist[IGNORE] / all_px:7.3f}%  '
                 f'{int(total.files_per_class[IGNORE]):>7,}')
    absent = [split.classes[i] for i in range(k) if total.hist[i] == 0]
    if absent:
        lines.append(f'WARNING: classes without any pixel: {", ".join(absent)}')
    for n in notes:
        lines.append(f'note: {n}')
    print('\n'.join(lines), flush=True)
    rep = dict(dataset=name, out=str(out), params=params,
               counts={s: stats[s].images for s in stats}, paper_counts=dict(paper),
               histogram={str(i): int(v) for i, v in enumerate(total.hist) if v},
               notes=list(notes))
    atomic_write_text(Path(out) / 'prepare_report.json', json.dumps(rep, indent=1) + '\n')
    return rep


_BARS: list = []


def progress(it: Iterable, total: int, what: str):
    """``it`` with a tqdm bar on stderr (redrawn in place on a terminal; in a log, a line about
    every 30 s). :func:`close_bars` ends the bars still open, e.g. before an error line."""
    from tqdm import tqdm
    bar = tqdm(it, total=total, desc=f'  {what}', unit='file', dynamic_ncols=True,
               mininterval=0.5 if os.isatty(2) else 30)
    _BARS.append(bar)
    return bar


def close_bars() -> None:
    while _BARS:
        _BARS.pop().close()


# ------------------------------------------------------------------------------ crops
def _marker(out: Path, tool: str, split: str, stem: str) -> Path:
    return Path(out) / '.prepare' / tool / split / f'{stem}.json'


def reuse_crops(out: Path, tool: str, split: str, stem: str, st: SplitStats) -> bool:
    """True (and statistics updated) if an earlier run wrote all crops of ``stem``.

    A per-source marker, written atomically after its crops, lists them; a crop that is gone
    makes the source be processed again."""
    marker = _marker(out, tool, split, stem)
    if not marker.exists():
        return False
    crops = json.loads(marker.read_text())['crops']
    paths = [out_paths(out, split, c, '.png', '.png') for c in crops]
    if not all(i.exists() and a.exists() for i, a in paths):
        return False
    for _, a in paths:
        st.add(read_existing_label(a))
    st.skipped_existing += len(paths)
    return True


def write_crops(out: Path, tool: str, split: str, stem: str, img: np.ndarray, ids: np.ndarray,
                size: int, stride: int, edge: str, min_labelled: int, st: SplitStats,
                source: str) -> List[str]:
    """Cut ``img`` / ``ids`` into windows (see ``tile_boxes``), pad short axes (image 0,
    label 255), drop windows with fewer than ``min_labelled`` labelled pixels, write the PNG
    pairs ``<stem>_<y0>_<y1>_<x0>_<x1>.png`` and the marker."""
    names = []
    for y0, y1, x0, x1 in tile_boxes(ids.shape[0], ids.shape[1], size, stride, edge):
        lab = pad_to(ids[y0:y1, x0:x1], size, IGNORE)
        if int((lab != IGNORE).sum()) < min_labelled:
            st.dropped += 1
            continue
        name = f'{stem}_{y0}_{y1}_{x0}_{x1}'
        ip, ap = out_paths(out, split, name, '.png', '.png')
        atomic_save(Image.fromarray(pad_to(img[y0:y1, x0:x1], size, 0)), ip)
        atomic_save(label_image(lab), ap)
        st.add(lab)
        names.append(name)
    atomic_write_text(_marker(out, tool, split, stem),
                      json.dumps({'source': source, 'crops': names}) + '\n')
    return names

"""On disk: file formats, the regeneration stamp, :func:`generate_mini` and :func:`ensure_mini`.

``GENERATOR_VERSION`` is defined here; ``benchmarks/common.py`` reads it from this file's source
(with ``ast``, no import) so that bumping it makes finished mini results stale.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import PIL
from PIL import Image

from ..datasets.splits import get_split
from .canvas import DEFAULT_IMG_SIZE
from .concepts import MINI_DATASETS
from .scenes import SCENES, render_scene

GENERATOR_VERSION = 1
# (image suffix, label suffix) of the processed real datasets (README, "Datasets").
FORMATS = {'isaid': ('.png', '.png'), 'dlrsd': ('.jpg', '.png'), 'oem': ('.png', '.png')}
JPEG_QUALITY = 75  # Pillow's default; the paper's DLRSD images are JPEG re-encodings.
_DS_CODE = {'isaid': 1, 'dlrsd': 2, 'oem': 3}
_SPLIT_CODE = {'train': 0, 'val': 1}
DEFAULT_SEED = 0
DEFAULT_SIZES = {'train': 400, 'val': 100}
_PACKAGE = Path(__file__).resolve().parent


def source_sha256() -> str:
    """sha256 over every ``.py`` file of :mod:`aeroseg.mini` (sorted by relative path; each path and
    the digest of its bytes enter), so an edit to any module of the generator counts."""
    h = hashlib.sha256()
    for rel in sorted(p.relative_to(_PACKAGE).as_posix() for p in _PACKAGE.rglob('*.py')):
        h.update(f'{rel}\0{hashlib.sha256((_PACKAGE / rel).read_bytes()).hexdigest()}\n'.encode())
    return h.hexdigest()


def _cache_root() -> Path:
    env = os.environ.get('AEROSEG_CACHE')
    return Path(env) if env else _PACKAGE.parents[1] / '.cache'


def mini_stamp(name: str, seed: int = DEFAULT_SEED, num_train: int = DEFAULT_SIZES['train'],
               num_val: int = DEFAULT_SIZES['val'], img_size: int = DEFAULT_IMG_SIZE) -> dict:
    """What the generated data depends on; a different stamp on disk triggers regeneration."""
    sp = get_split(name)
    return {'generator_version': GENERATOR_VERSION,
            'source_sha256': source_sha256()[:16],
            'dataset': name, 'classes': list(sp.classes), 'seen': list(sp.seen),
            'unseen': list(sp.unseen), 'seed': seed, 'num_train': num_train, 'num_val': num_val,
            'img_size': img_size, 'numpy': np.__version__, 'pillow': PIL.__version__,
            'formats': list(FORMATS[name])}


def _check_name(name: str) -> str:
    key = name.lower().replace('-', '').replace('_', '')
    key = {'openearthmap': 'oem'}.get(key, key)
    if key not in MINI_DATASETS:
        raise KeyError(f'unknown mini dataset {name!r}; choose one of {", ".join(MINI_DATASETS)}')
    return key


def generate_mini(name: str, out_dir, seed: int = DEFAULT_SEED, num_train: int = DEFAULT_SIZES['train'],
                  num_val: int = DEFAULT_SIZES['val'], img_size: int = DEFAULT_IMG_SIZE) -> Path:
    """Write the mini dataset ``name`` into ``out_dir`` (processed layout) and its stamp."""
    name = _check_name(name)
    out = Path(out_dir)
    img_suffix, seg_suffix = FORMATS[name]
    fn, ntypes = SCENES[name]
    for split, n in (('train', num_train), ('val', num_val)):
        (out / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (out / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, _DS_CODE[name], _SPLIT_CODE[split], i])
            img, _, lab = render_scene(name, rng, scene_type=i % ntypes, size=img_size)
            stem = f'mini_{name}_{split}_{i:04d}'
            im = Image.fromarray(img)
            if img_suffix == '.jpg':
                im.save(out / 'img_dir' / split / (stem + img_suffix), quality=JPEG_QUALITY)
            else:
                im.save(out / 'img_dir' / split / (stem + img_suffix), compress_level=1)
            Image.fromarray(lab).save(out / 'ann_dir' / split / (stem + seg_suffix),
                                                compress_level=1)
    stamp = mini_stamp(name, seed, num_train, num_val, img_size)
    (out / 'mini_stamp.json').write_text(json.dumps(stamp, indent=1))
    return out


def _read_stamp(root: Path) -> Optional[dict]:
    try:
        return json.loads((root / 'mini_stamp.json').read_text())
    except (OSError, ValueError):
        return None


def ensure_mini(name: str, root=None, *, seed: int = DEFAULT_SEED,
                num_train: int = DEFAULT_SIZES['train'], num_val: int = DEFAULT_SIZES['val'],
                img_size: int = DEFAULT_IMG_SIZE) -> Path:
    """Path to the mini dataset ``name`` ('isaid' | 'dlrsd' | 'oem'), generating it on first use.

    ``root`` defaults to ``$AEROSEG_CACHE/mini/<name>`` (``$AEROSEG_CACHE`` = ``<repo>/.cache``).
    Regenerates when the stamp differs (generator source, classes or parameters changed). Safe
    against concurrent callers: data is written to a temporary sibling and renamed into place.
    """
    name = _check_name(name)
    root = Path(root) if root is not None else _cache_root() / 'mini' / name
    want = mini_stamp(name, seed, num_train, num_val, img_size)
    if _read_stamp(root) == want:
        return root
    if root.exists() and any(root.iterdir()) and _read_stamp(root) is None:
        raise FileExistsError(f'{root} exists, is not empty and holds no mini_stamp.json; refusing to '
                              f'overwrite it. Pass another root or remove the folder.')
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f'.{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        generate_mini(name, tmp, seed, num_train, num_val, img_size)
        if _read_stamp(root) == want:  # another process finished first
            return root
        if root.exists():
            old = root.parent / f'.{root.name}.old-{uuid.uuid4().hex[:8]}'
            try:
                os.replace(root, old)
                shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.replace(tmp, root)
        except OSError:
            if _read_stamp(root) != want:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root

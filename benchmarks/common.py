"""Helpers shared by the runner and the per-config entry points.

* :func:`load_config` - the one way a config is turned into the run's ``mmengine.Config``
  (full or mini scale); it forwards to the lead's ``aeroseg.config.load_config``.
* :func:`config_hash` - identity of a job's configuration, recorded next to every result so a
  finished job is skipped only while its config is unchanged.
* :func:`atomic_write_text` / :func:`atomic_write_json` - every result file is written to a
  temporary file in the same folder and moved into place with ``os.replace``, so a reader (or a
  resumed run) never sees half a file.
* :func:`environment` - git commit, package versions, device: stored with each result.
* :func:`prepare_run` - the common start of ``benchmarks.train`` and ``benchmarks.test``
  (registries, config at its scale, config hash, launcher, work dir).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]

__all__ = ['REPO_ROOT', 'load_config', 'config_hash', 'file_sha', 'mini_world_identity',
           'atomic_write_text', 'atomic_write_json', 'read_json', 'environment', 'git_commit', 'peak_memory', 'device_name',
           'ConfigError', 'register_all', 'setup_work_dir', 'prepare_run']


class ConfigError(RuntimeError):
    """A config that cannot be loaded for the requested scale."""


def _lead_load_config():
    """``aeroseg.config.load_config`` when the lead's module exists, else ``None``."""
    try:
        from aeroseg.config import load_config as lc  # noqa: WPS433
    except ModuleNotFoundError as e:
        if e.name in ('aeroseg.config', 'aeroseg'):
            return None
        raise
    return lc


def _set_data_root(cfg, data_root: str) -> None:
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(key)
        if not dl:
            continue
        ds = dl.get('dataset')
        while ds is not None and 'dataset' in ds and 'data_root' not in ds:  # wrappers
            ds = ds['dataset']
        if ds is not None:
            ds['data_root'] = data_root


def load_config(path: str | os.PathLike, scale: str = 'full', data_root: Optional[str] = None,
                cfg_options: Optional[Mapping[str, Any]] = None):
    """Load ``path`` as the run will use it.

    Uses ``aeroseg.config.load_config`` (the contract: it applies the mini overlay - tiny widths,
    mini data root via ``aeroseg.mini.ensure_mini`` - for ``scale='mini'``). Until that
    module exists, falls back to ``mmengine.Config.fromfile`` + ``cfg_options`` + ``data_root``,
    which can only serve ``scale='full'``.
    """
    path = os.fspath(path)
    if scale not in ('full', 'mini'):
        raise ConfigError(f'scale must be "full" or "mini", got {scale!r}')
    if not os.path.isfile(path):
        raise ConfigError(f'config not found: {path!r} (run from the repository root, or check the '
                          f'path in benchmarks/tables.py)')
    lc = _lead_load_config()
    if lc is not None:
        return lc(path, scale=scale, data_root=data_root, cfg_options=dict(cfg_options or {}))
    # Fallback until aeroseg/config.py lands (contract: switch to it, nothing else to change).
    if scale == 'mini':
        raise ConfigError(f'{path}: scale "mini" needs aeroseg.config.load_config (the mini overlay); '
                          f'it is not importable yet. Use --scale full, or update the repository.')
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    if data_root:
        _set_data_root(cfg, data_root)
    return cfg


def _jsonable(obj: Any):
    """Stable text for objects a config may hold (types in lazy configs, functions)."""
    if isinstance(obj, (set, frozenset)):
        return sorted(map(repr, obj))
    qual = getattr(obj, '__qualname__', None)
    if qual is not None:
        return f'{getattr(obj, "__module__", "?")}.{qual}'
    return repr(obj)


def read_config(path: str | os.PathLike):
    """The config file as mmengine resolves it, without importing ``custom_imports``."""
    from mmengine.config import Config
    return Config.fromfile(os.fspath(path), import_custom_modules=False)


def config_hash(path: str | os.PathLike, scale: str = 'full', data_root: Optional[str] = None,
                cfg_options: Optional[Mapping[str, Any]] = None, raw=None) -> str:
    """sha256 (16 hex) of the config as mmengine resolves it (``_base_`` inheritance, environment
    placeholders, ``cfg_options`` merged) plus ``scale`` and ``data_root``.

    Reads config files (and, at mini scale, ``aeroseg/config.py`` on its own): no data is touched
    and neither torch nor the model packages are imported, so the dry-run can tell finished jobs
    from stale ones quickly. At ``scale='mini'`` it is the hash of the
    config with the mini overlay applied (so rows that coincide at mini scale share a job) plus
    :func:`mini_world_identity` (tiny weight files, generator version); paths inside the checkout
    enter relative to it. Code is not hashed: ``--force`` reruns after changing a model.
    ``raw``: the result of :func:`read_config` for ``path``, when already at hand (not modified).
    """
    import copy
    cfg = read_config(path) if raw is None else copy.deepcopy(raw)
    if scale == 'mini':
        cfg = _mini_overlaid(cfg, data_root)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    try:
        d = cfg.to_dict()
    except AttributeError:  # older mmengine
        d = cfg._cfg_dict.to_dict()
    d.pop('work_dir', None)
    d.pop('launcher', None)
    d = _repo_relative(d)
    ident = {'cfg': d, 'scale': scale, 'data_root': data_root}
    if scale == 'mini':
        ident['mini_world'] = mini_world_identity(generated=data_root is None)
    blob = json.dumps(ident, sort_keys=True, default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _repo_relative(obj):
    """Paths inside the checkout written relative to it (the overlay resolves asset paths), so a
    job's hash does not depend on where the repository is cloned."""
    root = str(REPO_ROOT) + os.sep
    if isinstance(obj, str):
        return obj[len(root):] if obj.startswith(root) else obj
    if isinstance(obj, dict):
        return {k: _repo_relative(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_repo_relative(v) for v in obj)
    return obj


def _mini_overlaid(cfg, data_root: Optional[str]):
    """``cfg`` with the mini overlay applied as ``aeroseg.config.apply_mini_scale`` applies it, so
    configs that coincide at mini scale (every CLIP is the one tiny CLIP, every SAM the tiny SAM)
    hash equal and share one job. ``aeroseg/config.py`` is loaded on its own (mmengine only), not
    through the ``aeroseg`` package, which would import torch and every model. Configs without a
    ``model`` (and trees without that file) are hashed as they are."""
    src = REPO_ROOT / 'aeroseg' / 'config.py'
    if 'model' not in cfg or not src.is_file():
        return cfg
    # a stand-in data root: the generated data are identified by GENERATOR_VERSION instead
    return _standalone_module(str(src)).apply_mini_scale(cfg, data_root or '<generated mini data>')


@functools.lru_cache(maxsize=None)
def _standalone_module(path: str):
    """A source file executed as a module of its own (once per process: the runner hashes every
    job of the plan)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('_standalone_' + Path(path).stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def file_sha(path: str | os.PathLike, n: int = 16) -> Optional[str]:
    """sha256 (``n`` hex) of a file's bytes; ``None`` when there is no such file."""
    if not path or not os.path.isfile(path):
        return None
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()[:n]


def mini_world_identity(generated: bool = True) -> dict:
    """What a mini-scale result depends on beyond its config file: the mini overlay
    (``configs/_base_/scale/mini.py``, resolved), the bytes of the tiny weights it names (CLIP,
    SAM, SAM 2) and, for generated data, the mini generator's ``GENERATOR_VERSION``. Retraining
    the tiny CLIP or bumping the generator thus makes every finished mini job stale. Read from
    files only (no package import); not memoised, so an edit between two calls always counts."""
    import ast
    overlay = REPO_ROOT / 'configs' / '_base_' / 'scale' / 'mini.py'
    gen = REPO_ROOT / 'aeroseg' / 'mini' / 'io.py'
    raw = read_config(overlay)
    weights = {}
    for key, field in (('clip', 'pretrained'), ('sam', 'checkpoint'), ('sam2', 'checkpoint')):
        p = (raw.get(key) or {}).get(field)
        if p:
            weights[key] = os.path.join(REPO_ROOT, p) if not os.path.isabs(p) else p
    version = None
    if generated and gen.exists():
        for node in ast.parse(gen.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'GENERATOR_VERSION'
                                                    for t in node.targets):
                version = ast.literal_eval(node.value)
    return {'overlay': raw.to_dict(), 'weights': {k: file_sha(p) for k, p in weights.items()},
            'generator_version': version}


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8', newline='') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + '\n')


def read_json(path: str | os.PathLike) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path``, or ``None`` when absent or unreadable (e.g. hand-truncated)."""
    try:
        with open(path, encoding='utf-8') as f:
            obj = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
        return None
    return obj if isinstance(obj, dict) else None


def git_commit(root: Path = REPO_ROOT) -> str:
    """``<sha>`` of HEAD, ``+dirty`` when the work tree differs; ``'none'`` without commits/git."""
    try:
        sha = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return 'none'
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ('+dirty' if dirty.stdout.strip() else '')
    except (OSError, subprocess.SubprocessError):
        return 'none'


def _version(mod: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(mod)
    except Exception:  # not installed
        return None


def package_versions() -> Dict[str, Optional[str]]:
    names = {'torch': 'torch', 'torchvision': 'torchvision', 'mmcv': 'mmcv', 'mmengine': 'mmengine',
             'mmseg': 'mmsegmentation', 'open_clip': 'open_clip_torch',
             'segment_anything': 'segment-anything', 'sam2': 'sam2', 'aeroseg': 'aeroseg-bench'}
    out = {k: _version(v) for k, v in names.items()}
    out['python'] = platform.python_version()
    return out


def device_name() -> str:
    try:
        import torch
        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            return f'{n}x {torch.cuda.get_device_name(0)}'
    except Exception:
        pass
    return f'cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)'


def peak_memory() -> Dict[str, Optional[float]]:
    """Peak GPU memory allocated by torch (MiB, this process) and peak RSS (MiB)."""
    out: Dict[str, Optional[float]] = {'peak_gpu_mem_mb': None, 'peak_rss_mb': None}
    try:
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out['peak_gpu_mem_mb'] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception:
        pass
    try:
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out['peak_rss_mb'] = round(kb / 1024 if sys.platform != 'darwin' else kb / 2**20, 1)
    except Exception:
        pass
    return out


def environment() -> Dict[str, Any]:
    return {'git_commit': git_commit(), 'versions': package_versions(), 'device': device_name(),
            'host': platform.node()}


def register_all() -> None:
    """Import the packages whose import registers models, datasets, transforms and metrics."""
    import aeroseg  # noqa: F401
    try:
        import baselines  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != 'baselines':
            raise


def setup_work_dir(cfg, work_dir, config_path) -> str:
    """``--work-dir``, else the config's ``work_dir``, else ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = os.path.join('./work_dirs',
                                    os.path.splitext(os.path.basename(config_path))[0])
    return cfg.work_dir


def prepare_run(args):
    """The start shared by ``benchmarks.train`` and ``benchmarks.test``: register the modules,
    load ``args.config`` at ``args.scale`` (with ``--data-root`` / ``--cfg-options``), hash it,
    set the launcher and the work dir. Returns ``(cfg, config_hash, work_dir)``."""
    register_all()
    cfg = load_config(args.config, scale=args.scale, data_root=args.data_root,
                      cfg_options=args.cfg_options)
    h = config_hash(args.config, args.scale, args.data_root, args.cfg_options)
    cfg.launcher = args.launcher
    work_dir = setup_work_dir(cfg, args.work_dir, args.config)
    return cfg, h, work_dir

"""Helpers shared by the runner and the per-config entry points.

* :func:`load_config` - the one way a config is turned into the run's ``mmengine.Config``
  (full or mini scale): ``aeroseg.config.load_config`` with the model packages registered.
* :func:`config_hash` - identity of a job's configuration, recorded next to every result so a
  finished job is skipped only while its config is unchanged (the one config digest).
* :func:`atomic_write_text` / :func:`atomic_write_json` - every result file is written to a
  temporary file in the same folder and moved into place with ``os.replace``, so a reader (or a
  resumed run) never sees half a file.
* :func:`environment` - git commit, package versions, device: stored with each result.
* :func:`prepare_run` - the common start of ``benchmarks.train`` and ``benchmarks.test``
  (registries, config at its scale, config hash, launcher, work dir).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]

__all__ = ['REPO_ROOT', 'load_config', 'config_hash', 'config_digest', 'resolved_config',
           'option_args', 'parse_options', 'file_sha', 'mini_world_identity', 'mini_generator_version',
           'atomic_write_text', 'atomic_write_json', 'read_json', 'environment', 'git_commit', 'peak_memory', 'device_name',
           'ConfigError', 'register_all', 'setup_work_dir', 'prepare_run', 'run_cli', 'scale_help']


class ConfigError(RuntimeError):
    """A config that cannot be loaded for the requested scale."""


def load_config(path: str | os.PathLike, scale: str = 'full', data_root: Optional[str] = None,
                cfg_options: Optional[Mapping[str, Any]] = None):
    """Load ``path`` as the run will use it: ``aeroseg.config.load_config`` (mini overlay at
    ``scale='mini'``, data root, then ``cfg_options``) after :func:`register_all` (the mini
    overlay asks each model class for its hook)."""
    path = os.fspath(path)
    if scale not in ('full', 'mini'):
        raise ConfigError(f'scale must be "full" or "mini", got {scale!r}')
    register_all()
    from aeroseg.config import load_config as aeroseg_load_config
    try:
        return aeroseg_load_config(path, scale, data_root, dict(cfg_options or {}))
    except FileNotFoundError as e:
        if os.path.isfile(path):  # something else the config names is missing
            raise
        raise ConfigError(f'config not found: {path!r} (run from the repository root, or check the '
                          f'path in benchmarks/tables.py)') from e


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


def resolved_config(path: str | os.PathLike, scale: str = 'full', data_root: Optional[str] = None,
                    cfg_options: Optional[Mapping[str, Any]] = None, raw=None):
    """The config a job's hash is taken of: as mmengine resolves it (``_base_`` inheritance,
    environment placeholders), at ``scale='mini'`` with the mini overlay applied
    (``aeroseg.config.apply_mini_scale``, with a stand-in data root: no data are generated),
    then ``cfg_options`` merged. ``raw``: :func:`read_config` of ``path`` when at hand (not
    modified). Configs without a ``model`` are taken as they are."""
    import copy
    cfg = read_config(path) if raw is None else copy.deepcopy(raw)
    if scale == 'mini' and 'model' in cfg:
        register_all()
        from aeroseg.config import apply_mini_scale
        # the generated data are identified by mini_world_identity() instead of a path
        cfg = apply_mini_scale(cfg, data_root or '<generated mini data>')
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return cfg


def config_digest(cfg, scale: str = 'full', data_root: Optional[str] = None,
                  amp: Optional[str] = None) -> str:
    """sha256 (16 hex) of a resolved config (``work_dir`` / ``launcher`` left out, paths inside
    the checkout relative to it) plus ``scale``, ``data_root`` and, at mini scale,
    :func:`mini_world_identity`."""
    try:
        d = cfg.to_dict()
    except AttributeError:  # older mmengine
        d = cfg._cfg_dict.to_dict()
    d.pop('work_dir', None)
    d.pop('launcher', None)
    ident = {'cfg': _repo_relative(d), 'scale': scale, 'data_root': data_root}
    if amp:  # autocast (--amp) changes the numbers; absent when off, so fp32 hashes stay as they were
        ident['amp'] = amp
    if scale == 'mini':
        ident['mini_world'] = mini_world_identity(generated=data_root is None)
    blob = json.dumps(ident, sort_keys=True, default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_hash(path: str | os.PathLike, scale: str = 'full', data_root: Optional[str] = None,
                cfg_options: Optional[Mapping[str, Any]] = None, raw=None,
                amp: Optional[str] = None) -> str:
    """Identity of a job's configuration: :func:`config_digest` of :func:`resolved_config`.

    Recorded next to every result, so a finished job is skipped only while its config (as the
    run uses it, plus the mini world's weights and generator at mini scale) is unchanged.
    Configs that resolve to the same content hash equal and share one job. Code is not hashed:
    ``--force`` reruns after changing a model. At full scale only config files are read; at
    mini scale the model packages are imported once per process (the overlay asks each model
    class for its hook).
    """
    return config_digest(resolved_config(path, scale, data_root, cfg_options, raw), scale, data_root, amp)


def _option_text(v) -> str:
    if v is None or isinstance(v, (bool, int, float)):
        return str(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        inner = ','.join(_option_text(x) for x in v)
        return f'[{inner}]' if isinstance(v, list) else f'({inner}{"," if len(v) == 1 else ""})'
    raise ConfigError(f'config override value {v!r} ({type(v).__name__}) has no --cfg-options '
                      f'form: use None, a bool, a number, a string, a list or a tuple')


def option_args(options: Mapping[str, Any]) -> List[str]:
    """``options`` as ``--cfg-options`` words (``key=value``, mmengine DictAction syntax)."""
    return [f'{k}={_option_text(v)}' for k, v in options.items()]


def parse_options(words: Sequence[str]) -> Dict[str, Any]:
    """``key=value`` words as ``benchmarks.train`` / ``benchmarks.test`` parse ``--cfg-options``
    (mmengine's DictAction), so a job's hash is taken of exactly what its commands pass."""
    if not words:
        return {}
    import argparse
    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='o')(None, ns, list(words))
    return dict(ns.o)


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
    SAM, SAM 2, SimFeatUp) and, for generated data, the mini generator's ``GENERATOR_VERSION``. Retraining
    the tiny CLIP or bumping the generator thus makes every finished mini job stale. Read from
    files only (no package import); not memoised, so an edit between two calls always counts."""
    overlay = REPO_ROOT / 'configs' / '_base_' / 'scale' / 'mini.py'
    raw = read_config(overlay)
    weights = {}
    for key, field in (('clip', 'pretrained'), ('sam', 'checkpoint'), ('sam2', 'checkpoint'),
                       ('simfeatup', 'checkpoint')):
        p = (raw.get(key) or {}).get(field)
        if p:
            weights[key] = os.path.join(REPO_ROOT, p) if not os.path.isabs(p) else p
    return {'overlay': raw.to_dict(), 'weights': {k: file_sha(p) for k, p in weights.items()},
            'generator_version': mini_generator_version() if generated else None}


# The mini generator (its GENERATOR_VERSION stamps generated data); the only place the
# benchmarks name that module.
MINI_GENERATOR = 'aeroseg/mini/io.py'  # defines GENERATOR_VERSION


def mini_generator_version():
    """``GENERATOR_VERSION`` of :data:`MINI_GENERATOR` under ``REPO_ROOT``, read from the file
    (``None`` without it), so a checkout's own generator counts."""
    import ast
    gen = REPO_ROOT / MINI_GENERATOR
    if not gen.is_file():
        return None
    for node in ast.parse(gen.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'GENERATOR_VERSION'
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    return None


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
    from aeroseg.utils.malloc import malloc_policy
    return {'git_commit': git_commit(), 'versions': package_versions(), 'device': device_name(),
            'host': platform.node(), 'malloc': malloc_policy()}


def scale_help(what: str = '') -> str:
    """The ``--scale`` help of every entry point: the one rule (``aeroseg.config.SCALE_RULE``)."""
    from aeroseg.config import SCALE_RULE
    return f'"mini": tiny widths on the generated mini data (CPU-sized){what}; {SCALE_RULE}'


def run_cli(prog: str, verbose: bool, fn) -> int:
    """``fn()``'s exit status; an error the user can fix (a config, checkpoint, scale, class list
    or image) as one line ``<prog>: error: ...`` and exit 2, its traceback only with ``verbose``."""
    from aeroseg.config import ScaleError
    from aeroseg.datasets.splits import ClassListError
    from aeroseg.utils.checkpoint import CheckpointError
    try:
        return fn()
    except (ConfigError, CheckpointError, ScaleError, ClassListError, FileNotFoundError,
            IsADirectoryError) as e:
        if verbose:
            raise
        line = ' '.join(x.strip() for x in str(e).splitlines() if x.strip())
        print(f'{prog}: error: {line} (--verbose for the traceback)', file=sys.stderr)
        return 2


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


def amp_of(args) -> Optional[str]:
    """The autocast dtype an entry point runs with (``--amp --amp-dtype X``), None when off: part
    of the run's identity (:func:`config_digest`)."""
    return getattr(args, 'amp_dtype', 'bf16') if getattr(args, 'amp', False) else None


def prepare_run(args):
    """The start shared by ``benchmarks.train`` and ``benchmarks.test``: register the modules,
    load ``args.config`` at ``args.scale`` (with ``--data-root`` / ``--cfg-options``), hash it,
    set the launcher and the work dir. Returns ``(cfg, config_hash, work_dir)``."""
    register_all()
    cfg = load_config(args.config, scale=args.scale, data_root=args.data_root,
                      cfg_options=args.cfg_options)
    h = config_hash(args.config, args.scale, args.data_root, args.cfg_options, amp=amp_of(args))
    cfg.launcher = args.launcher
    work_dir = setup_work_dir(cfg, args.work_dir, args.config)
    return cfg, h, work_dir

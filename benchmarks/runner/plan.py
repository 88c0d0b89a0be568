"""Jobs and where they stand: the spec's job specs turned into jobs with their config hash and
state, configs that resolve to the same content merged, read-only (the dry-run uses only this).

A job is one config (with its row's overrides) x seed, run in ``<work>/<scale>/<name>/seed<K>``
(``<name>`` = the config path without ``configs/`` and ``.py``, ``@<variant>`` for a row with
overrides); the files it holds are described in ``docs/run_dir.md``.
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from benchmarks.common import (REPO_ROOT, config_digest, option_args, parse_options, read_config,
                               read_json, register_all, resolved_config)
from benchmarks.tables import JobSpec
from benchmarks.test import METRICS
from benchmarks.train import FINAL_WEIGHTS, TRAIN_DONE

__all__ = ['JOB_JSON', 'METRICS', 'TRAIN_DONE', 'FINAL_WEIGHTS', 'RUN_LOG', 'JobState', 'RunStatus',
           'Job', 'job_name', 'load_spec', 'load_cross_spec', 'has_final_weights', 'data_root_for', 'assess', 'build_jobs',
           'merge_identical', 'seed_dirs', 'raw_config', 'weight_options', 'resolved', 'config_iters']

JOB_JSON = 'job.json'
RUN_LOG = 'run.log'


class JobState(Enum):
    """Where a job stands before the run (value: the plan's wording)."""
    MISSING = 'missing config'
    CONFIG_ERROR = 'config error'
    DONE = 'done (skip)'
    STALE = 'rerun (config changed)'
    FORCED = 'rerun (--force)'
    RESUME = 'resume'
    TEST = 'test only'
    WAIT = 'test after its source'   # test only, once the source job's weights exist (Table 9)
    TODO = 'train+test'

    @property
    def text(self) -> str:
        return self.value

    @property
    def runnable(self) -> bool:
        return self not in (JobState.MISSING, JobState.CONFIG_ERROR, JobState.DONE)


class RunStatus(StrEnum):
    """``status`` of a job's record (``job.json``) and of its ``runs.csv`` row."""
    RUNNING = 'running'
    OK = 'ok'
    FAILED = 'failed'
    INTERRUPTED = 'interrupted'
    PENDING = 'pending'                  # runs.csv only: not run (yet) with this config
    MISSING_CONFIG = 'missing-config'    # runs.csv only
    CONFIG_ERROR = 'config-error'        # runs.csv only


@dataclass
class Job:
    spec: JobSpec
    name: str                      # config path without configs/ and .py (+ @variant)
    path: Path                     # absolute config path
    dir: Path                      # work dir of this job (one seed)
    data_root: Optional[str]
    exists: bool
    hash: Optional[str] = None
    error: Optional[str] = None    # config could not be read
    state: JobState = JobState.TODO
    cfg_options: Optional[Dict[str, Any]] = None   # exactly what the commands pass
    est_train_s: float = 0.0
    est_test_s: float = 0.0
    basis: str = ''
    iters: Optional[int] = None
    weights_from: Optional['Job'] = None  # test only, with this job's final_weights.pth (Table 9)

    def __post_init__(self):
        if self.cfg_options is None:
            self.cfg_options = {'randomness.seed': self.spec.seed, **self.spec.cfg_options}

    @property
    def label(self) -> str:
        return f'{self.name} seed{self.spec.seed}'


def job_name(spec: JobSpec) -> str:
    """``<method>/<config stem>`` for a config under ``configs/``, ``ext/<stem>`` for one outside
    the checkout; ``@<variant>`` appended for a row with overrides."""
    p = Path(spec.config)
    s = None
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(REPO_ROOT)
        except ValueError:
            s = 'ext/' + p.stem
    if s is None:
        s = p.with_suffix('').as_posix()
        s = s[len('configs/'):] if s.startswith('configs/') else s
    return s + (f'@{spec.variant}' if spec.variant else '')


def _abs_config(config: str) -> Path:
    p = Path(config)
    return p if p.is_absolute() else REPO_ROOT / p


def load_spec(spec: str):
    """The TABLES of a spec module (``benchmarks.tables`` by default, any importable module) or
    of a ``.py`` file anywhere. The module runs first, so its ``register_method`` calls count."""
    mod = spec_module(spec)
    if not hasattr(mod, 'TABLES'):
        raise SystemExit(f'spec {spec} defines no TABLES')
    return tuple(mod.TABLES)


def load_cross_spec(spec: str):
    """The spec's ``CROSS_TABLES`` (cross-dataset tables, e.g. Table 9); empty when it has none."""
    return tuple(getattr(spec_module(spec), 'CROSS_TABLES', ()))


_SPEC_MODULES: Dict[str, Any] = {}


def spec_module(spec: str):
    """The spec module, executed once per process."""
    if spec not in _SPEC_MODULES:
        _SPEC_MODULES[spec] = _import_spec(spec)
    return _SPEC_MODULES[spec]


def _import_spec(spec: str):
    if spec.endswith('.py'):
        path = Path(spec).resolve()
        name = '_bench_spec_' + re.sub(r'\W', '_', path.stem)
        s = importlib.util.spec_from_file_location(name, path)
        if s is None or s.loader is None or not path.is_file():
            raise SystemExit(f'cannot load spec file {spec}')
        mod = importlib.util.module_from_spec(s)
        sys.modules[name] = mod  # dataclasses and pickling look their module up here
        s.loader.exec_module(mod)
    else:
        mod = importlib.import_module(spec)
    return mod


def data_root_for(root: Optional[str], dataset: str) -> Optional[str]:
    return None if not root else str(Path(root) / dataset)


def has_checkpoint(d: Path) -> bool:
    """mmengine's resume marker: ``last_checkpoint`` naming an existing file."""
    lc = d / 'last_checkpoint'
    try:
        target = lc.read_text().strip()
    except OSError:
        return False
    return bool(target) and Path(target).is_file()


def has_final_weights(job: Job) -> bool:
    """Training finished with the job's current config: ``train_done.json`` with its hash and
    ``final_weights.pth``."""
    td = read_json(job.dir / TRAIN_DONE)
    return bool(job.hash and td and td.get('config_hash') == job.hash
                and (job.dir / FINAL_WEIGHTS).is_file())


def assess(job: Job, force: bool = False) -> JobState:
    """Where a job stands, from what its work dir holds (read only)."""
    if not job.exists:
        return JobState.MISSING
    if job.hash is None:
        return JobState.CONFIG_ERROR
    m = read_json(job.dir / METRICS)
    if m and m.get('config_hash') == job.hash and isinstance(m.get('metrics'), dict) and not force:
        return JobState.DONE
    td = read_json(job.dir / TRAIN_DONE)
    stored = {x.get('config_hash') for x in (read_json(job.dir / JOB_JSON), td, m) if x}
    stored.discard(None)
    if stored and stored != {job.hash}:
        return JobState.STALE
    if force and job.dir.exists():
        return JobState.FORCED
    if job.weights_from is not None:
        return JobState.TEST if has_final_weights(job.weights_from) else JobState.WAIT
    if not job.spec.train or has_final_weights(job):
        return JobState.TEST
    if has_checkpoint(job.dir):
        return JobState.RESUME
    return JobState.TODO


_RAW: Dict[Tuple[str, float], object] = {}
_BASE: Dict[Tuple[str, float, str, Optional[str]], object] = {}


def raw_config(path: Path):
    """Parsed config, cached per (path, mtime) within this process (plan + estimate + tables)."""
    key = (str(path), path.stat().st_mtime)
    if key not in _RAW:
        _RAW[key] = read_config(path)
    return _RAW[key]


def _base_config(path: Path, scale: str, data_root: Optional[str]):
    """The resolved config before the job's options (mini overlay applied once per config)."""
    key = (str(path), path.stat().st_mtime, scale, data_root)
    if key not in _BASE:
        _BASE[key] = resolved_config(path, scale, data_root, raw=raw_config(path))
    return _BASE[key]


def weight_options(cfg, weights: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """A row's symbolic outside-weight overrides (role -> value, e.g. ``{'vl': None}``) as config
    keys of ``cfg``'s model, through the model's own hook (``aeroseg.hooks.weight_fields``)."""
    if not weights:
        return {}
    register_all()
    from aeroseg.hooks import weight_fields
    fields = weight_fields(cfg.model)
    unknown = sorted(set(weights) - set(fields))
    if unknown:
        raise ValueError(f'{where}: the row overrides outside weight(s) {unknown}, but this '
                         f'config\'s model has only {sorted(fields) or "none"}')
    return {f'model.{fields[role]}': v for role, v in weights.items()}


def _options_and_hash(job: Job, scale: str, amp: Optional[str] = None) -> Tuple[Dict[str, Any], str]:
    """The job's ``--cfg-options`` (seed, the row's options, its resolved weight overrides;
    parsed as the entry points parse them) and the hash the entry points will record."""
    base = _base_config(job.path, scale, job.data_root)
    opts = dict(job.cfg_options)
    opts.update(weight_options(base, job.spec.weights, job.spec.config))
    opts = parse_options(option_args(opts))
    cfg = copy.deepcopy(base)
    cfg.merge_from_dict(opts)
    return opts, config_digest(cfg, scale, job.data_root, amp)


def resolved(job: Job, scale: str):
    """The job's config as its hash sees it (mini overlay and the job's options applied)."""
    cfg = copy.deepcopy(_base_config(job.path, scale, job.data_root))
    cfg.merge_from_dict(dict(job.cfg_options))
    return cfg


def build_jobs(specs: Sequence[JobSpec], work_dir: Path, scale: str,
               data_root: Optional[str], force: bool = False, amp: Optional[str] = None) -> List[Job]:
    """The jobs of ``specs``; ``amp``: the autocast dtype the runner passes (``--amp``), part of
    each job's hash as the entry points record it."""
    jobs = []
    for s in specs:
        path = _abs_config(s.config)
        name = job_name(s)
        j = Job(s, name, path, work_dir / scale / name / f'seed{s.seed}',
                data_root_for(data_root, s.dataset), path.is_file())
        if j.exists:
            try:
                j.cfg_options, j.hash = _options_and_hash(j, scale, amp)
            except Exception as e:  # a config being written, a syntax error, a bad override...
                j.error = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
        j.state = assess(j, force)
        jobs.append(j)
    return jobs


def merge_identical(jobs: Sequence[Job]) -> List[Job]:
    """Jobs whose configs resolve to the same content (equal config hash) for the same seed run
    once: the first keeps the later ones' cells. E.g. Table 3's Baseline is, by the paper's
    definition, the OVRS model: at full scale that saves three training runs."""
    first: Dict[Tuple[str, int], Job] = {}
    out: List[Job] = []
    for j in jobs:
        p = first.get((j.hash, j.spec.seed)) if j.hash else None
        if p is None or (p.spec.train, p.spec.dataset) != (j.spec.train, j.spec.dataset):
            if j.hash:
                first.setdefault((j.hash, j.spec.seed), j)
            out.append(j)
            continue
        p.spec.cells.extend(c for c in j.spec.cells if c not in p.spec.cells)
    return out


def seed_dirs(root: Path) -> List[Path]:
    """Job folders (``.../seed<K>``) under ``root``, without descending into them (they hold
    checkpoints and logs)."""
    out = []
    for d, subdirs, _ in os.walk(root):
        keep = []
        for s in subdirs:
            if re.fullmatch(r'seed\d+', s):
                out.append(Path(d) / s)
            elif not s.startswith('.') and not s.endswith('.prev'):
                keep.append(s)
        subdirs[:] = keep
    return sorted(out)


def _config_int(path: Path, section: str, key: str) -> Optional[int]:
    try:
        v = (raw_config(path).get(section) or {}).get(key)
        return int(v) if v else None
    except Exception:
        return None


def config_batch(path: Path) -> Optional[int]:
    """``train_dataloader.batch_size`` of a config (``None`` when unreadable or unset)."""
    return _config_int(path, 'train_dataloader', 'batch_size')


def config_iters(path: Path) -> Optional[int]:
    """``train_cfg.max_iters`` of a config (``None`` when unreadable or unset)."""
    return _config_int(path, 'train_cfg', 'max_iters')

"""Regenerate the paper's Tables 2-8 as leaderboards, resumably.

    python -m benchmarks.run [--tables 2 3 ...] [--methods ...] [--datasets ...]
        [--scale mini|full] [--data-root DIR] [--work-dir DIR] [--seeds 0 1 ..] [--gpus N]
        [--launcher none|pytorch|slurm --partition P ...] [--parallel K [--devices 0,1,..]]
        [--dry-run] [--force]

Flow: the spec (:mod:`benchmarks.tables`) gives cells; cells are de-duplicated into jobs
(config x seed; a config shared by several tables runs once, and so do two configs that resolve
to the same content, see :func:`merge_identical`); each job runs through the same
entry points a user would type, as subprocesses:

    python -m benchmarks.train CONFIG --work-dir JOB --scale S [--data-root R/ds]
        --cfg-options randomness.seed=K [--resume]
    python -m benchmarks.test  CONFIG JOB/final_weights.pth --work-dir JOB ...

(``torch.distributed.run --nproc_per_node N`` with ``--gpus N``; ``srun`` with
``--launcher slurm``). Each job's exact commands go to the console, ``JOB/commands.sh``,
``JOB/job.json`` and runs.csv; its output to ``JOB/run.log``. Tables are rewritten after every
job from every finished result in the work dir (see :mod:`benchmarks.results`).

Safe to interrupt and rerun: a job whose ``metrics.json`` carries the current config hash is
skipped; an interrupted job resumes from its last checkpoint (``--resume``); a job whose config
changed starts afresh (the old folder is kept as ``<job>.prev``); ``--force`` reruns selected
jobs from scratch. One runner per work dir: a lock file with the owner's pid; a stale lock (dead
pid) is taken over with a message.

``--parallel K`` runs K jobs at once, each in its own slot: slot i sees only its own GPUs
(``CUDA_VISIBLE_DEVICES``, ``--gpus`` of them from ``--devices`` or 0..K*gpus-1) and, on CPU, its
share of the cores (``OMP_NUM_THREADS`` = cores // K unless already set). The runner stays the
only writer of the tables (results are collected in its main thread).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import results as R
from benchmarks.common import (REPO_ROOT, atomic_write_json, atomic_write_text, config_hash,
                               read_config, read_json)
from benchmarks.tables import (DATASETS, VAL_IMAGES, JobSpec, cells, paper_iterations,
                               plan_jobs, select_tables)

LOCK_NAME = '.runner.lock'
JOB_JSON = 'job.json'
METRICS = 'metrics.json'
TRAIN_DONE = 'train_done.json'
FINAL_WEIGHTS = 'final_weights.pth'

# ---------------------------------------------------------------------------------------------
# GPU-time estimate (dry-run). These per-method numbers are ASSUMED order-of-magnitude guesses for
# one A100-80GB at each method's own batch size (paper Sec. 4.2: one A100, batch 4), NOT
# measurements. They are replaced by measured ones as soon as a job of the same method (same
# scale) has finished in the work dir: s/iter = train wall time / iterations, test s/image =
# test wall time / validation images.
#   method folder: (train s/iter, test s/image)
ASSUMED_FULL = {
    'san': (0.35, 0.05),         # ViT-B/16 side adapter, 640 crops
    'scan': (0.90, 0.10),        # Mask2Former + CLIP, batch 32
    'sed': (0.60, 0.10),         # ConvNeXt-B at 768
    'catseg': (0.45, 0.15),      # ViT-B/16 at 384, sliding-window test
    'ovrs': (1.20, 0.50),        # CAT-Seg x 4 rotations
    'aeroseg': (1.40, 0.60),     # 4 rotations + frozen SAM ViT-L at 1024
    'segearthov': (0.0, 0.15),   # training-free
}
ASSUMED_FULL_VARIANT = [          # (regex on the config path, factor on the method's numbers)
    (r't6_sam-vith', 1.3), (r'vitl14', 1.8),
]
ASSUMED_DEFAULT = (1.0, 0.3)
ASSUMED_MINI = (240.0, 20.0)      # CPU seconds per mini job (train, test): tiny widths, mini data


# ---------------------------------------------------------------------------------------------
@dataclass
class Job:
    spec: JobSpec
    name: str                      # config path without configs/ and .py
    path: Path                     # absolute config path
    dir: Path                      # work dir of this job (one seed)
    data_root: Optional[str]
    exists: bool
    hash: Optional[str] = None
    error: Optional[str] = None    # config could not be read
    state: str = 'todo'            # missing | config-error | done | stale | forced | resume | test | todo
    est_train_s: float = 0.0
    est_test_s: float = 0.0
    basis: str = ''
    iters: Optional[int] = None

    @property
    def label(self) -> str:
        return f'{self.name} seed{self.spec.seed}'

    @property
    def cfg_options(self) -> Dict[str, int]:
        return {'randomness.seed': self.spec.seed}


def job_name(config: str) -> str:
    p = Path(config)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(REPO_ROOT)
        except ValueError:
            return 'ext/' + p.stem
    s = p.with_suffix('').as_posix()
    return s[len('configs/'):] if s.startswith('configs/') else s


def _abs_config(config: str) -> Path:
    p = Path(config)
    return p if p.is_absolute() else REPO_ROOT / p


def load_spec(spec: str):
    """The TABLES of a spec module (``benchmarks.tables`` by default) or of a ``.py`` file."""
    if spec.endswith('.py'):
        s = importlib.util.spec_from_file_location('_bench_spec', spec)
        if s is None or s.loader is None:
            raise SystemExit(f'cannot load spec file {spec}')
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
    else:
        mod = importlib.import_module(spec)
    if not hasattr(mod, 'TABLES'):
        raise SystemExit(f'spec {spec} defines no TABLES')
    return tuple(mod.TABLES)


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


def assess(job: Job, force: bool = False) -> str:
    """Where a job stands, from what its work dir holds (read only)."""
    if not job.exists:
        return 'missing'
    if job.hash is None:
        return 'config-error'
    m = read_json(job.dir / METRICS)
    if m and m.get('config_hash') == job.hash and isinstance(m.get('metrics'), dict) and not force:
        return 'done'
    td = read_json(job.dir / TRAIN_DONE)
    stored = {x.get('config_hash') for x in (read_json(job.dir / JOB_JSON), td, m) if x}
    stored.discard(None)
    if stored and stored != {job.hash}:
        return 'stale'
    if force and job.dir.exists():
        return 'forced'
    if not job.spec.train:
        return 'test'
    if td and td.get('config_hash') == job.hash and (job.dir / FINAL_WEIGHTS).is_file():
        return 'test'
    if has_checkpoint(job.dir):
        return 'resume'
    return 'todo'


_RAW: Dict[Tuple[str, float], object] = {}


def _raw_config(path: Path):
    """Parsed config, cached per (path, mtime) within this process (plan + estimate + tables)."""
    key = (str(path), path.stat().st_mtime)
    if key not in _RAW:
        _RAW[key] = read_config(path)
    return _RAW[key]


def build_jobs(specs: Sequence[JobSpec], work_dir: Path, scale: str,
               data_root: Optional[str], force: bool = False) -> List[Job]:
    jobs = []
    hashes: Dict[Tuple[str, int], Tuple[Optional[str], Optional[str]]] = {}
    for s in specs:
        path = _abs_config(s.config)
        name = job_name(s.config)
        j = Job(s, name, path, work_dir / scale / name / f'seed{s.seed}',
                data_root_for(data_root, s.dataset), path.is_file())
        if j.exists:
            k = (str(path), s.seed)
            if k not in hashes:
                try:
                    hashes[k] = (config_hash(path, scale, j.data_root, j.cfg_options,
                                             raw=_raw_config(path)), None)
                except Exception as e:  # a config being written, a syntax error...
                    hashes[k] = (None, f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}')
            j.hash, j.error = hashes[k]
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


# --------------------------------------------------------------------------------- estimate ---
def _config_iters(path: Path) -> Optional[int]:
    try:
        cfg = _raw_config(path)
        it = (cfg.get('train_cfg') or {}).get('max_iters')
        return int(it) if it else None
    except Exception:
        return None


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


def _measured(jobs: Sequence[Job], work_dir: Path, scale: str) -> Dict[str, Tuple[Optional[float], Optional[float]]]:
    """Per method folder: measured (train s/iter or s/job at mini, test s/image or s/job)."""
    out: Dict[str, List[List[float]]] = {}
    root = work_dir / scale
    if not root.is_dir():
        return {}
    for d in seed_dirs(root):
        rel = d.relative_to(root).parts          # (<method>, ..., <config name>, seed<K>)
        method = rel[0] if len(rel) > 1 else ''
        ds = next((k for k in DATASETS if rel[-2].endswith('_' + k)), None) if len(rel) > 1 else None
        td = read_json(d / TRAIN_DONE) or {}
        rec = read_json(d / JOB_JSON) or {}
        if td.get('wall_s') and td.get('iter'):
            wall = rec.get('train_wall_s') or td['wall_s']  # all attempts of a resumed job
            out.setdefault(method, [[], []])[0].append(wall if scale == 'mini' else wall / td['iter'])
        m = read_json(d / METRICS) or {}
        if m.get('wall_s'):
            v = m['wall_s'] if scale == 'mini' or ds is None else m['wall_s'] / VAL_IMAGES[ds]
            out.setdefault(method, [[], []])[1].append(v)
    return {k: (sum(a) / len(a) if a else None, sum(b) / len(b) if b else None)
            for k, (a, b) in out.items()}


def estimate(jobs: Sequence[Job], work_dir: Path, scale: str) -> None:
    """Fill est_train_s / est_test_s / basis per job (see the ASSUMED_* notes above)."""
    measured = _measured(jobs, work_dir, scale)
    for j in jobs:
        method = j.spec.method
        meas = measured.get(method, (None, None))
        if scale == 'mini':
            tr, te = ASSUMED_MINI
            src = ['assumed']
            if meas[0] is not None:
                tr, src[0] = meas[0], 'measured'
            if meas[1] is not None:
                te = meas[1]
                src.append('measured test')
            j.est_train_s = tr if j.spec.train else 0.0
            j.est_test_s = te
            j.basis = f'{"/".join(src)} CPU s per mini job'
            continue
        a_tr, a_te = ASSUMED_FULL.get(method, ASSUMED_DEFAULT)
        for pat, fac in ASSUMED_FULL_VARIANT:
            if re.search(pat, j.spec.config):
                a_tr, a_te = a_tr * fac, a_te * fac
        spi, src = (meas[0], 'measured') if meas[0] is not None else (a_tr, 'assumed')
        spimg = meas[1] if meas[1] is not None else a_te
        iters = _config_iters(j.path) if j.exists else None
        it_src = 'train_cfg.max_iters'
        if iters is None:
            iters, it_src = paper_iterations(j.spec.dataset), 'paper iters'
        j.iters = iters if j.spec.train else 0
        j.est_train_s = iters * spi if j.spec.train else 0.0
        j.est_test_s = VAL_IMAGES.get(j.spec.dataset, 1000) * spimg
        j.basis = (f'{iters} it ({it_src}) x {spi:.2f} s/it ({src})' if j.spec.train
                   else 'test only') + f' + {VAL_IMAGES.get(j.spec.dataset, 1000)} img x {spimg:.2f} s'


# --------------------------------------------------------------------------------- commands ---
def _wrap(module: str, args: List[str], opts) -> List[str]:
    py = opts.python
    n = max(1, int(opts.gpus))
    if opts.launcher == 'slurm':
        per_node = min(n, opts.gpus_per_node)
        return (['srun', '-p', opts.partition, f'--job-name={opts.job_name}', f'--gres=gpu:{per_node}',
                 f'--ntasks={n}', f'--ntasks-per-node={per_node}', f'--cpus-per-task={opts.cpus_per_task}',
                 '--kill-on-bad-exit=1', *shlex.split(opts.srun_args or '')]
                + [py, '-u', '-m', module, *args, '--launcher', 'slurm'])
    if n > 1 or opts.launcher == 'pytorch':
        return [py, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={n}',
                '-m', module, *args, '--launcher', 'pytorch']
    return [py, '-m', module, *args, '--launcher', 'none']


def _common_args(job: Job, opts) -> List[str]:
    a = ['--work-dir', str(job.dir), '--scale', opts.scale]
    if job.data_root:
        a += ['--data-root', job.data_root]
    a += ['--cfg-options', f'randomness.seed={job.spec.seed}']
    return a


def _config_arg(job: Job) -> str:
    try:
        return job.path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(job.path)


def train_command(job: Job, opts, resume: bool) -> List[str]:
    return _wrap('benchmarks.train', [_config_arg(job), *_common_args(job, opts), '--no-validate']
                 + (['--resume'] if resume else []), opts)


def test_command(job: Job, opts) -> List[str]:
    ckpt = [str(job.dir / FINAL_WEIGHTS)] if job.spec.train else []
    return _wrap('benchmarks.test', [_config_arg(job), *ckpt, *_common_args(job, opts)], opts)


def shell(cmd: Sequence[str]) -> str:
    return ' '.join(shlex.quote(c) for c in cmd)


# ------------------------------------------------------------------------------------- lock ---
class LockedError(RuntimeError):
    pass


def _proc_start(pid: int) -> Optional[str]:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]  # field 22: start time in clock ticks
    except (OSError, IndexError):
        return None


def _alive(info: dict) -> bool:
    if info.get('host') != platform.node():
        return True  # another machine: cannot check, assume alive
    pid = int(info.get('pid', -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, ValueError):
        return False
    start = info.get('proc_start')
    return not (start and _proc_start(pid) not in (None, start))


class RunLock:
    """One runner per work dir: ``<work_dir>/.runner.lock`` holds the owner's pid, host, start
    time and command. Created atomically (``os.link`` of a complete temp file). A lock whose
    process is gone (same host; pid dead or reused) is stale and taken over with a message."""

    def __init__(self, work_dir: Path):
        self.path = Path(work_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        info = {'pid': os.getpid(), 'host': platform.node(), 'proc_start': _proc_start(os.getpid()),
                'started': datetime.now(timezone.utc).isoformat(timespec='seconds'),
                'argv': sys.argv}
        tmp = self.path.with_name(f'{LOCK_NAME}.{os.getpid()}.tmp')
        tmp.write_text(json.dumps(info, indent=2) + '\n')
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    self.held = True
                    return
                except FileExistsError:
                    other = read_json(self.path)
                    if other is None:
                        time.sleep(0.2)  # being written, or garbage
                        other = read_json(self.path)
                    if other is not None and _alive(other):
                        raise LockedError(
                            f'another benchmark runner holds {self.path} (pid {other.get("pid")} on '
                            f'{other.get("host")}, started {other.get("started")}: '
                            f'{" ".join(map(str, other.get("argv", [])))}). Wait for it to finish, use '
                            f'another --work-dir, or delete the lock file if that process is gone.')
                    print(f'[bench] taking over a stale lock {self.path} (pid '
                          f'{(other or {}).get("pid", "?")} is gone)', flush=True)
                    try:
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
            raise LockedError(f'could not acquire {self.path} (contended); try again')
        finally:
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            info = read_json(self.path)
            if info and info.get('pid') == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


# ---------------------------------------------------------------------------------- running ---
def _hms(s: Optional[float]) -> str:
    if s is None:
        return '?'
    s = int(round(s))
    return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'


def _pdeathsig():  # the child dies with the runner (no orphan training into a taken-over dir)
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# Child processes of all slots, so that an interrupt stops every running job, not only one.
_RUNNING: set = set()
_RUNNING_LOCK = threading.Lock()
_STOP = threading.Event()


def stop_all_children() -> None:
    """Ask every running job's process to stop (SIGTERM; the job resumes on the next run)."""
    _STOP.set()
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()


def run_logged(cmd: Sequence[str], log_path: Path, verbose: bool,
               env_extra: Optional[Dict[str, str]] = None) -> int:
    """Run ``cmd`` from the repo root, appending its output to ``log_path`` (and the console
    when ``verbose``), with ``env_extra`` (a slot's devices / threads) added to the environment.
    Returns the exit code; raises KeyboardInterrupt when the runner is being stopped."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env.setdefault('PYTHONUNBUFFERED', '1')
    env.update(env_extra or {})
    if _STOP.is_set():
        raise KeyboardInterrupt
    with open(log_path, 'ab') as log:
        log.write(f'\n[bench {datetime.now().isoformat(timespec="seconds")}] $ {shell(cmd)}\n'.encode())
        log.flush()
        proc = subprocess.Popen(list(cmd), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                preexec_fn=_pdeathsig if sys.platform.startswith('linux') else None)
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if verbose:
                    sys.stdout.write(line.decode('utf-8', 'replace'))
                    sys.stdout.flush()
            rc = proc.wait()
            if _STOP.is_set():
                raise KeyboardInterrupt
            return rc
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)


def error_from_log(log_path: Path, rc: int) -> str:
    """The most telling line of a failed step's log (the last exception line), with rc."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors='replace').splitlines() if ln.strip()]
    except OSError:
        lines = []
    exc = [ln for ln in lines if re.match(r'^[\w.]*(Error|Exception)\b', ln)]
    # torchrun / srun wrap the worker's exception: prefer the worker's own line
    real = [ln for ln in exc if 'ChildFailedError' not in ln]
    pick = (real or exc or [None])[-1]
    pick = pick or (lines[-1] if lines else '')
    return f'exit {rc}: {pick[:300]}'


def move_aside(d: Path) -> None:
    """Keep one previous copy of a job folder (``<job>.prev``) instead of deleting results."""
    if not d.exists():
        return
    prev = d.with_name(d.name + '.prev')
    if prev.exists():
        shutil.rmtree(prev)
    os.replace(d, prev)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='seconds')


def _env_prefix(env_extra: Optional[Dict[str, str]]) -> str:
    return ''.join(f'{k}={shlex.quote(v)} ' for k, v in sorted((env_extra or {}).items()))


def slot_envs(opts) -> List[Dict[str, str]]:
    """One environment per parallel slot: its own GPUs and, on CPU, its share of the cores.
    Empty dicts when running one job at a time (the runner's environment is used as is)."""
    k = opts.parallel
    if k <= 1:
        return [{}]
    if opts.devices is not None:
        devices = opts.devices
    elif os.environ.get('CUDA_VISIBLE_DEVICES'):
        devices = [d for d in os.environ['CUDA_VISIBLE_DEVICES'].split(',') if d.strip()]
    else:
        devices = [str(i) for i in range(_cuda_count())]
    need = k * opts.gpus
    if devices and len(devices) < need:
        raise ValueError(f'--parallel {k} x --gpus {opts.gpus} needs {need} GPUs, found {len(devices)} '
                         f'({",".join(devices)}); lower --parallel or pass --devices')
    envs = []
    for i in range(k):
        env: Dict[str, str] = {}
        if devices:
            env['CUDA_VISIBLE_DEVICES'] = ','.join(devices[i * opts.gpus:(i + 1) * opts.gpus])
        if 'OMP_NUM_THREADS' not in os.environ:
            env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // k))
        envs.append(env)
    return envs


def _cuda_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def execute(job: Job, opts, env_extra: Optional[Dict[str, str]] = None) -> dict:
    """Run one job to completion (train unless done, then test) with its slot's environment.
    Returns its job.json record."""
    if job.state in ('stale', 'forced'):
        move_aside(job.dir)
        job.state = 'todo'
    job.dir.mkdir(parents=True, exist_ok=True)
    rec = read_json(job.dir / JOB_JSON) or {}
    if rec.get('config_hash') != job.hash:
        rec = {}
    rec.update({'config': job.spec.config, 'dataset': job.spec.dataset, 'seed': job.spec.seed,
                'scale': opts.scale, 'config_hash': job.hash, 'fills': job.spec.fills(),
                'status': 'running', 'error': None, 'started': rec.get('started') or _now(),
                'log': str(job.dir / 'run.log')})
    rec['slot_env'] = dict(env_extra or {})
    rec.setdefault('train_wall_s', 0.0)
    rec.setdefault('attempts', 0)
    rec['attempts'] += 1
    log = job.dir / 'run.log'
    tcmd = test_command(job, opts)
    trcmd = train_command(job, opts, resume=job.state == 'resume') if job.spec.train else None
    rec['train_cmd'] = shell(trcmd) if trcmd else ''
    rec['test_cmd'] = shell(tcmd)
    atomic_write_text(job.dir / 'commands.sh', '#!/usr/bin/env bash\n# reproduce this job by hand\n'
                      f'set -e\ncd {shlex.quote(str(REPO_ROOT))}\n'
                      + (f'{rec["train_cmd"]}\n' if trcmd and job.state != 'test' else '')
                      + f'{rec["test_cmd"]}\n')
    atomic_write_json(job.dir / JOB_JSON, rec)
    try:
        if trcmd and job.state != 'test':
            print(f'    $ {_env_prefix(env_extra)}{rec["train_cmd"]}', flush=True)
            t0 = time.time()
            try:
                rc = run_logged(trcmd, log, opts.verbose, env_extra)
            finally:
                rec['train_wall_s'] = round(rec['train_wall_s'] + time.time() - t0, 2)
            if rc != 0:
                rec.update(status='failed', error='train ' + error_from_log(log, rc), finished=_now())
                return rec
        print(f'    $ {_env_prefix(env_extra)}{rec["test_cmd"]}', flush=True)
        t0 = time.time()
        rc = run_logged(tcmd, log, opts.verbose, env_extra)
        rec['test_wall_s'] = round(time.time() - t0, 2)
        m = read_json(job.dir / METRICS)
        if rc != 0:
            rec.update(status='failed', error='test ' + error_from_log(log, rc), finished=_now())
        elif not m or m.get('config_hash') != job.hash:
            rec.update(status='failed', error=f'test wrote no metrics with hash {job.hash} '
                       f'to {job.dir / METRICS}', finished=_now())
        else:
            rec.update(status='ok', finished=_now())
        return rec
    except KeyboardInterrupt:
        rec.update(status='interrupted', error='interrupted by the user', finished=_now())
        raise
    finally:
        atomic_write_json(job.dir / JOB_JSON, rec)


# ---------------------------------------------------------------------------------- results ---
def _metric(metrics: dict, name: str) -> Optional[float]:
    """A metric by name, tolerating an evaluator prefix (``test/h-mIoU``)."""
    if name in metrics:
        return metrics[name]
    for k, v in metrics.items():
        if k.split('/')[-1] == name:
            return v
    return None


def collect(all_jobs: Sequence[Job], opts, tables) -> Tuple[dict, dict, List[dict]]:
    """Cell values over finished seeds, notes for empty cells, and runs.csv rows."""
    values: Dict[Tuple[str, str, str], Dict[str, List[float]]] = {}
    notes: Dict[Tuple[str, str, str], str] = {}
    runs: List[dict] = []
    env_keys = ('git_commit', 'versions', 'device', 'peak_gpu_mem_mb', 'peak_rss_mb')
    for j in all_jobs:
        rec = read_json(j.dir / JOB_JSON) or {}
        m = read_json(j.dir / METRICS)
        td = read_json(j.dir / TRAIN_DONE) or {}
        ok = bool(j.hash and m and m.get('config_hash') == j.hash and isinstance(m.get('metrics'), dict))
        if ok:
            status = 'ok'
        elif not j.exists:
            status = 'missing-config'
        elif j.hash is None:
            status = 'config-error'
        else:
            status = rec.get('status') if rec.get('config_hash') == j.hash else None
            status = {None: 'pending', 'running': 'interrupted', 'ok': 'pending'}.get(status, status)
        mets = m['metrics'] if ok else {}
        for c in j.spec.cells:
            key = (c.table, c.row, c.dataset)
            if ok:
                for name in c.metrics:
                    v = _metric(mets, name)
                    if v is not None:
                        values.setdefault(key, {}).setdefault(name, []).append(float(v))
        row = {'job': j.name, 'config': j.spec.config, 'dataset': DATASETS.get(j.spec.dataset, j.spec.dataset),
               'seed': j.spec.seed, 'scale': opts.scale, 'status': status,
               'error': (j.error if status == 'config-error' else
                         f'config file not found: {j.spec.config} (method not implemented)'
                         if status == 'missing-config' else rec.get('error') if status != 'ok' else None),
               'fills': '; '.join(j.spec.fills()), 'config_hash': j.hash,
               'iou_per_class': {k.split('/')[-1][4:]: v for k, v in mets.items() if k.split('/')[-1].startswith('IoU.')} or None,
               'train_wall_s': rec.get('train_wall_s') if rec.get('config_hash') == j.hash else None,
               'test_wall_s': rec.get('test_wall_s') if ok else None,
               'iters': td.get('iter') if td.get('config_hash') == j.hash else None,
               'started': rec.get('started'), 'finished': rec.get('finished') if ok else None,
               'work_dir': str(j.dir), 'log': rec.get('log'),
               'train_cmd': rec.get('train_cmd'), 'test_cmd': rec.get('test_cmd')}
        for name in ('mIoU', 's-mIoU', 'u-mIoU', 'h-mIoU'):
            row[name] = _metric(mets, name)
        other = {k: v for k, v in mets.items() if k.split('/')[-1] not in
                 ('mIoU', 's-mIoU', 'u-mIoU', 'h-mIoU') and not k.split('/')[-1].startswith('IoU.')}
        row['other_metrics'] = other or None
        src = m if ok else td
        for k in env_keys:
            row[k] = (src or {}).get(k)
        if ok and td.get('peak_gpu_mem_mb') is not None:  # training peaks above testing
            row['peak_gpu_mem_mb'] = max(td['peak_gpu_mem_mb'], m.get('peak_gpu_mem_mb') or 0)
        if ok and td.get('peak_rss_mb') is not None:
            row['peak_rss_mb'] = max(td['peak_rss_mb'], m.get('peak_rss_mb') or 0)
        runs.append(row)
    # mean / std over the seeds of each config, on every row of that config
    by_config: Dict[str, List[dict]] = {}
    for row in runs:
        by_config.setdefault(row['config'], []).append(row)
    for rows in by_config.values():
        done = [r for r in rows if r['status'] == 'ok']
        for r in rows:
            r['n_seeds_ok'] = len(done)
            for name in ('mIoU', 's-mIoU', 'u-mIoU', 'h-mIoU'):
                mean, std, n = R.mean_std([d[name] for d in done if d[name] is not None])
                r[f'{name} mean'] = None if mean is None else round(mean, 4)
                r[f'{name} std'] = None if std is None else round(std, 4)
    # notes: why a cell group is empty
    by_cell: Dict[Tuple[str, str, str], List[dict]] = {}
    for j, row in zip(all_jobs, runs):
        for c in j.spec.cells:
            by_cell.setdefault((c.table, c.row, c.dataset), []).append(row)
    for key, rows in by_cell.items():
        if key in values:
            continue
        st = {r['status'] for r in rows}
        if 'missing-config' in st:
            notes[key] = f'not implemented (config file missing: {rows[0]["config"]})'
        elif 'config-error' in st:
            notes[key] = f'config cannot be read: {rows[0]["error"]}'
        elif 'failed' in st:
            notes[key] = f'failed: {next(r["error"] for r in rows if r["status"] == "failed")}'
        else:
            notes[key] = 'not run yet'
    return values, notes, runs


def write_results(all_jobs: Sequence[Job], opts, tables) -> Path:
    values, notes, runs = collect(all_jobs, opts, tables)
    out = Path(opts.results_dir) / opts.scale
    R.write_all(out, tables, values, R.load_paper(opts.paper_csv), runs, notes, opts.scale)
    return out


def all_result_jobs(tables, opts, planned: Sequence[Job]) -> List[Job]:
    """Every job of the whole spec (for the tables), for the requested seeds and any other seed
    already present in the work dir."""
    seeds = set(opts.seeds)
    root = Path(opts.work_dir) / opts.scale
    if root.is_dir():
        seeds.update(int(d.name[4:]) for d in seed_dirs(root))
    specs = plan_jobs(cells(tables), sorted(seeds))
    known = {(j.spec.config, j.spec.seed): j for j in planned}
    todo = [s for s in specs if (s.config, s.seed) not in known]
    extra = build_jobs(todo, Path(opts.work_dir), opts.scale, opts.data_root)
    extra_by = {(j.spec.config, j.spec.seed): j for j in extra}
    out = []
    for s in specs:
        j = known.get((s.config, s.seed)) or extra_by[(s.config, s.seed)]
        j = Job(s, j.name, j.path, j.dir, j.data_root, j.exists, j.hash, j.error, j.state)
        out.append(j)
    # keep only seeds that hold something, plus the requested ones
    return [j for j in merge_identical(out) if j.spec.seed in opts.seeds or j.dir.exists()]


# ------------------------------------------------------------------------------------ plan ---
STATE_TEXT = {'missing': 'missing config', 'config-error': 'config error', 'done': 'done (skip)',
              'stale': 'rerun (config changed)', 'forced': 'rerun (--force)', 'resume': 'resume',
              'test': 'test only',
              'todo': 'train+test'}


def print_plan(jobs: Sequence[Job], opts, tables) -> None:
    n_run = [j for j in jobs if j.state not in ('missing', 'config-error', 'done')]
    print(f'Plan: {len(jobs)} jobs (scale {opts.scale}, seeds {list(opts.seeds)}, tables '
          f'{" ".join(t.id for t in tables)}) -> work dir {Path(opts.work_dir) / opts.scale}')
    unit = 'GPU-h' if opts.scale == 'full' else 'CPU-h'
    w = max([len(j.name) for j in jobs] + [10])
    print(f'  {"#":>3}  {"state":<22} {"job":<{w}} {"seed":>4}  {"est " + unit:>9}  fills')
    for i, j in enumerate(jobs, 1):
        est = (j.est_train_s + j.est_test_s) / 3600
        print(f'  {i:>3}  {STATE_TEXT[j.state]:<22} {j.name:<{w}} {j.spec.seed:>4}  '
              f'{"-" if j.state == "done" else f"{est:.2f}":>9}  {", ".join(j.spec.fills())}')
    miss = {j.spec.config: j for j in jobs if j.state == 'missing'}
    if miss:
        print(f'\nNot implemented yet (config file missing; their cells stay empty): {len(miss)} configs')
        for c, j in miss.items():
            print(f'  - {c}  ({", ".join(j.spec.fills())})')
    same = [(c, j) for j in jobs for c in dict.fromkeys(c.config for c in j.spec.cells) if c != j.spec.config]
    if same:
        print(f'\nConfigs resolving to the same content as another job\'s (run once, cells shared): {len(same)}')
        for c, j in same:
            print(f'  - {c} = {j.spec.config}')
    bad = [j for j in jobs if j.state == 'config-error']
    if bad:
        print(f'\nConfigs that cannot be read ({len(bad)}):')
        for j in bad:
            print(f'  - {j.spec.config}: {j.error}')
    now = sum(j.est_train_s + j.est_test_s for j in n_run) / 3600
    allj = sum(j.est_train_s + j.est_test_s for j in jobs if j.state != 'done') / 3600
    print(f'\nEstimate: {now:.1f} {unit} for the {len(n_run)} runnable jobs; {allj:.1f} {unit} once every '
          f'config exists ({len([j for j in jobs if j.state != "done"])} jobs)'
          + (f', i.e. ~{now / (opts.parallel * opts.gpus):.1f} h wall with {opts.parallel} job(s) at once'
             + (f' on {opts.gpus} GPUs each' if opts.gpus > 1 else '')
             if opts.parallel * opts.gpus > 1 else '') + '.')
    if opts.scale == 'full':
        print('Basis per job: train iterations (the config\'s train_cfg.max_iters, else the paper\'s '
              '10k/5k/15k for iSAID/DLRSD/OEM) x s/iter, + validation images x s/image; s/iter and '
              's/image are ASSUMED guesses for one A100-80GB (benchmarks/run.py ASSUMED_FULL), replaced '
              'by measured values of the same method once one has run in this work dir.')
    else:
        print('Basis per job: ASSUMED ~4 min train + 20 s test on CPU (benchmarks/run.py ASSUMED_MINI), '
              'replaced by measured values of the same method once one has run in this work dir.')
    if opts.verbose_plan:
        print('\nPer-job basis and commands:')
        for i, j in enumerate(jobs, 1):
            print(f'  [{i}] {j.label}: {j.basis}')
            if j.spec.train:
                print(f'      $ {shell(train_command(j, opts, resume=j.state == "resume"))}')
            print(f'      $ {shell(test_command(j, opts))}')


def progress(done: int, total: int, t_start: float, est_done: float, est_left: float,
             parallel: int = 1) -> str:
    """The bar over all jobs; the ETA scales the estimate by the measured pace so far (which
    already includes running jobs at once), or by 1 / parallel before any job has finished."""
    width = 24
    fill = int(width * done / max(1, total))
    elapsed = time.time() - t_start
    ratio = elapsed / est_done if est_done > 0 and elapsed > 0 else 1.0 / max(1, parallel)
    eta = est_left * ratio if done < total else 0.0
    return (f'[{"#" * fill}{"." * (width - fill)}] {done}/{total} jobs | elapsed {_hms(elapsed)} | '
            f'ETA {_hms(eta)}')


# ------------------------------------------------------------------------------------- main ---
def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='python -m benchmarks.run',
                                description='Regenerate the paper\'s tables (benchmarks/tables.py), resumably.')
    p.add_argument('--tables', nargs='+', help='table numbers (2 3 ... or T2 ...); default: all')
    p.add_argument('--methods', nargs='+', help='row labels (SAN, Config-A, ...) or method folders '
                   '(aeroseg = every configs/aeroseg/ config); default: all')
    p.add_argument('--datasets', nargs='+', help='isaid dlrsd oem (or iSAID DLRSD OEM); default: all')
    p.add_argument('--scale', choices=['full', 'mini'], default='full')
    p.add_argument('--data-root', default=os.environ.get('AEROSEG_DATA') or None,
                   help='folder holding isaid/ dlrsd/ oem/ (default $AEROSEG_DATA, else each '
                   'config\'s own data_root; at mini scale the generated mini data)')
    p.add_argument('--work-dir', default='work_dirs/bench')
    p.add_argument('--results-dir', default=str(REPO_ROOT / 'results'),
                   help='tables go to <results-dir>/<scale>/')
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--gpus', type=int, default=1, help='GPUs per job (torchrun, or srun tasks)')
    p.add_argument('--parallel', type=int, default=1, metavar='K',
                   help='run K jobs at once, each on its own --gpus GPUs (or cores // K CPU threads)')
    p.add_argument('--devices', type=lambda v: [d.strip() for d in v.split(',') if d.strip()],
                   help='GPU ids the slots share out (default $CUDA_VISIBLE_DEVICES, else all)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--partition', help='Slurm partition (with --launcher slurm)')
    p.add_argument('--gpus-per-node', type=int, default=8)
    p.add_argument('--cpus-per-task', type=int, default=5)
    p.add_argument('--srun-args', default='', help='extra srun arguments, one quoted string')
    p.add_argument('--job-name', default='aeroseg-bench')
    p.add_argument('--dry-run', action='store_true', help='print the plan and time estimate; run nothing')
    p.add_argument('--commands', dest='verbose_plan', action='store_true',
                   help='with --dry-run: print each job\'s estimate basis and commands')
    p.add_argument('--force', action='store_true', help='rerun the selected jobs from scratch')
    p.add_argument('--verbose', action='store_true', help='stream each job\'s output to the console')
    p.add_argument('--spec', default='benchmarks.tables', help='module (or .py file) defining TABLES')
    p.add_argument('--paper-csv', default=str(R.PAPER_CSV))
    p.add_argument('--check-expected', metavar='CSV',
                   help='after the run, compare the tables with this reference (CI regression)')
    p.add_argument('--tolerance', type=float, default=1.0, help='for --check-expected (IoU points)')
    p.add_argument('--write-expected', metavar='CSV',
                   help='after the run, freeze the selected cells\' values as a regression '
                   'reference (e.g. results/mini/expected.csv)')
    p.add_argument('--python', default=sys.executable, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.launcher == 'slurm' and not args.partition:
        p.error('--launcher slurm needs --partition')
    if args.gpus < 1:
        p.error('--gpus must be >= 1')
    if args.parallel < 1:
        p.error('--parallel must be >= 1')
    args.work_dir = str(Path(args.work_dir).resolve())
    args.seeds = list(dict.fromkeys(args.seeds))
    return args


def main(argv=None) -> int:
    opts = parse_args(argv)
    all_tables = load_spec(opts.spec)
    try:
        tables = select_tables(all_tables, opts.tables)
        specs = plan_jobs(cells(tables, opts.methods, opts.datasets), opts.seeds)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if not specs:
        print('error: nothing selected (check --tables / --methods / --datasets)', file=sys.stderr)
        return 2
    work = Path(opts.work_dir)
    if opts.dry_run:  # read-only: no lock, no folders, no data
        jobs = merge_identical(build_jobs(specs, work, opts.scale, opts.data_root, opts.force))
        estimate(jobs, work, opts.scale)
        print_plan(jobs, opts, tables)
        return 0

    def _term(signum, frame):  # kill / scancel: stop like Ctrl-C (job marked, tables, lock freed)
        raise KeyboardInterrupt
    if threading_main():
        signal.signal(signal.SIGTERM, _term)
    try:
        envs = slot_envs(opts)
        lock = RunLock(work)
        lock.acquire()
    except (LockedError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    failures: List[Tuple[Job, str]] = []
    rc = 0
    jobs: List[Job] = []
    try:
        jobs = merge_identical(build_jobs(specs, work, opts.scale, opts.data_root, opts.force))
        estimate(jobs, work, opts.scale)
        print_plan(jobs, opts, tables)
        print(flush=True)
        t_start = time.time()
        total = len(jobs)
        est_done = 0.0
        est_left = sum(j.est_train_s + j.est_test_s for j in jobs if j.state not in ('done', 'missing', 'config-error'))
        free_slots = list(range(len(envs)))
        todo = list(enumerate(jobs, 1))
        running = {}  # future -> (index, job, slot, t0)
        finished = 0
        _STOP.clear()
        pool = ThreadPoolExecutor(max_workers=len(envs), thread_name_prefix='job')
        try:
            while todo or running:
                while todo and (free_slots or todo[0][1].state in ('done', 'missing', 'config-error')):
                    i, j = todo.pop(0)
                    tag = f'[{i}/{total}]'
                    if j.state in ('done', 'missing', 'config-error'):
                        msg = {'done': 'SKIP  done', 'missing': 'MISS  config file missing (not implemented)',
                               'config-error': f'FAIL  config error: {j.error}'}[j.state]
                        print(f'{tag} {msg}: {j.label}', flush=True)
                        if j.state == 'config-error':
                            failures.append((j, f'config error: {j.error}'))
                        finished += 1
                        print(progress(finished, total, t_start, est_done, est_left, len(envs)), flush=True)
                        continue
                    slot = free_slots.pop(0)
                    where = f'; slot {slot}: {_env_prefix(envs[slot]).strip()}' if len(envs) > 1 else ''
                    print(f'{tag} RUN   {j.label} ({STATE_TEXT[j.state]}; fills {", ".join(j.spec.fills())}{where})',
                          flush=True)
                    running[pool.submit(execute, j, opts, envs[slot])] = (i, j, slot, time.time())
                if not running:
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    i, j, slot, t0 = running.pop(fut)
                    free_slots.append(slot)
                    free_slots.sort()
                    tag = f'[{i}/{total}]'
                    try:
                        rec = fut.result()
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:  # the runner's own trouble with one job must not stop the others
                        rec = {'status': 'failed', 'error': f'runner: {type(e).__name__}: {e}'}
                    est = j.est_train_s + j.est_test_s
                    est_done += est
                    est_left -= est
                    finished += 1
                    if rec['status'] == 'ok':
                        m = (read_json(j.dir / METRICS) or {}).get('metrics', {})
                        shown = ', '.join(f'{k} {m[k]:.2f}' for k in ('s-mIoU', 'u-mIoU', 'h-mIoU', 'mIoU')
                                          if isinstance(m.get(k), (int, float)))
                        print(f'{tag} OK    {j.label} in {_hms(time.time() - t0)}: {shown}', flush=True)
                    else:
                        failures.append((j, rec.get('error') or '?'))
                        print(f'{tag} FAIL  {j.label} in {_hms(time.time() - t0)}: {rec.get("error")} '
                              f'(log: {j.dir / "run.log"})', flush=True)
                    write_results(all_result_jobs(all_tables, opts, jobs), opts, all_tables)
                    print(progress(finished, total, t_start, est_done, est_left, len(envs)), flush=True)
        except BaseException:
            stop_all_children()  # every slot's job stops (marked interrupted) before tables are written
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        print('\ninterrupted: rerun the same command to resume.', file=sys.stderr)
        rc = 130
    finally:
        try:
            out = write_results(all_result_jobs(all_tables, opts, jobs), opts, all_tables)
            print(f'\nTables written to {out}/ (table<N>.csv/.md, runs.csv, leaderboard.md)')
        finally:
            lock.release()
    if failures:
        print(f'\nFailures ({len(failures)}):')
        for j, err in failures:
            print(f'  - {j.label}: {err}\n    log: {j.dir / "run.log"}')
        rc = rc or 1
    miss = [j for j in jobs if j.state == 'missing']
    if miss:
        print(f'\nNot implemented ({len(miss)} jobs, config missing): '
              + ', '.join(sorted({j.spec.config for j in miss})))
    if opts.write_expected:
        keys = {(c.table, c.row, c.dataset_label, m)
                for c in cells(tables, opts.methods, opts.datasets) for m in c.metrics}
        if rc:
            print(f'\nNot writing {opts.write_expected}: some jobs did not finish')
        else:
            n = R.write_expected(Path(opts.results_dir) / opts.scale, opts.write_expected, keys)
            print(f'\nWrote {n} reference values to {opts.write_expected}')
    if opts.check_expected:
        bad = R.compare_expected(Path(opts.results_dir) / opts.scale, opts.check_expected, opts.tolerance)
        if bad:
            print(f'\nRegression check against {opts.check_expected} FAILED ({len(bad)}):')
            for b in bad:
                print(f'  - {b}')
            rc = rc or 3
        else:
            print(f'\nRegression check against {opts.check_expected}: OK (tolerance {opts.tolerance})')
    return rc


if __name__ == '__main__':
    sys.exit(main())

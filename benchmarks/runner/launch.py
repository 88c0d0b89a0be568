"""Running jobs: their commands, the work-dir lock, parallel slots and the scheduler, one job's
execution (train unless done, then test) and stopping every running job on Ctrl-C.

Each job runs through the entry points a user would type, as subprocesses from the repo root::

    python -m benchmarks.train CONFIG --work-dir JOB --scale S [--data-root R/ds]
        --cfg-options randomness.seed=K [row options] --no-validate [--resume]
    python -m benchmarks.test  CONFIG JOB/final_weights.pth --work-dir JOB ...

(``torch.distributed.run --nproc_per_node N`` with ``--gpus N``; ``srun`` with
``--launcher slurm``). What a job writes is described in ``docs/run_dir.md``.
"""
from __future__ import annotations

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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from benchmarks.common import REPO_ROOT, atomic_write_json, atomic_write_text, option_args, read_json
from benchmarks.runner.plan import (FINAL_WEIGHTS, JOB_JSON, METRICS, RUN_LOG, Job, JobState,
                                    RunStatus, has_final_weights)

__all__ = ['LOCK_NAME', 'train_command', 'test_command', 'checkpoint_of', 'shell', 'LockedError', 'RunLock',
           'stop_all_children', 'run_logged', 'error_from_log', 'slot_threads', 'slot_envs', 'execute',
           'schedule', 'parse_progress', 'job_progress', 'format_progress', 'progress_printer']

LOCK_NAME = '.runner.lock'
THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')


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
    if getattr(opts, 'amp', None):
        a += ['--amp', '--amp-dtype', opts.amp]
    if job.data_root:
        a += ['--data-root', job.data_root]
    return a + ['--cfg-options', *option_args(job.cfg_options)]


def _config_arg(job: Job) -> str:
    try:
        return job.path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(job.path)


def train_command(job: Job, opts, resume: bool) -> List[str]:
    return _wrap('benchmarks.train', [_config_arg(job), *_common_args(job, opts), '--no-validate']
                 + (['--resume'] if resume else []), opts)


def checkpoint_of(job: Job) -> Optional[Path]:
    """The weights the job's test loads: its own ``final_weights.pth``, its source job's for a
    cross-dataset job (``weights_from``), none for a training-free one."""
    if job.weights_from is not None:
        return job.weights_from.dir / FINAL_WEIGHTS
    return job.dir / FINAL_WEIGHTS if job.spec.train else None


def test_command(job: Job, opts) -> List[str]:
    ckpt = [str(p) for p in (checkpoint_of(job),) if p is not None]
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
                'started': _now(), 'argv': sys.argv}
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
def hms(s: Optional[float]) -> str:
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


# ------------------------------------------------------------------------ job progress ---
# mmengine's LoggerHook line, e.g. "... - INFO - Iter(train) [ 20/200]  base_lr: ... eta: 0:11:18
# time: 4.2262 ..." (mmengine/runner/log_processor.py: "Iter(mode) [cur/max]" and "eta: " +
# str(timedelta)); the same for Iter(test) / Iter(val).
_ITER_RE = re.compile(r'Iter\((train|val|test)\)\s*\[\s*(\d+)/(\d+)\]')
_ETA_RE = re.compile(r'\beta: ((?:\d+ days?, )?\d+:\d\d:\d\d)')
# The latest progress of each running step, by its log path (written by run_logged's reader
# thread, read by the scheduler's thread: one dict assignment each, so no lock is needed).
_PROGRESS: Dict[str, dict] = {}


def parse_progress(line: str) -> Optional[dict]:
    """``{'mode', 'iter', 'max_iters', 'eta'}`` from one mmengine log line, else None."""
    m = _ITER_RE.search(line)
    if not m:
        return None
    eta = _ETA_RE.search(line)
    return {'mode': m.group(1), 'iter': int(m.group(2)), 'max_iters': int(m.group(3)),
            'eta': eta.group(1) if eta else None}


def job_progress(job: Job) -> Optional[dict]:
    """The latest progress of ``job``'s running step (None before its first log line):
    ``step`` (train / test), and from mmengine's last ``Iter(...)`` line ``iter``, ``max_iters``,
    ``eta`` (mmengine's estimate for that step), ``at`` (when it was seen)."""
    return _PROGRESS.get(str(job.dir / RUN_LOG))


def format_progress(p: Optional[dict]) -> str:
    """``train 120/200 (60%), ETA 0:01:20`` (or ``train starting`` before the first line)."""
    if not p:
        return 'starting'
    if p.get('iter') is None:
        return f'{p["step"]} starting'
    pct = 100 * p['iter'] // max(1, p['max_iters'])
    eta = f', ETA {p["eta"]}' if p.get('eta') else ''
    return f'{p["step"]} {p["iter"]}/{p["max_iters"]} ({pct}%){eta}'


def progress_printer(total: int, name: Callable[[Job], str] = lambda j: j.label,
                     prefix: str = '') -> Callable[[List[tuple]], None]:
    """A ``schedule`` ``on_tick``: one line per running job whose progress moved since its last
    line, e.g. ``[3/28] ...   aeroseg/aeroseg_vitb16_isaid seed0: train 120/200 (60%), ETA
    0:01:20 (running 0:03:12)``."""
    seen: Dict[str, tuple] = {}

    def on_tick(running: List[tuple]) -> None:
        for i, j, _slot, t0 in running:
            p = job_progress(j)
            key = (p or {}).get('step'), (p or {}).get('iter')
            if seen.get(j.label) != key:
                seen[j.label] = key
                print(f'{prefix}[{i}/{total}] ...   {name(j)}: {format_progress(p)} '
                      f'(running {hms(time.time() - t0)})', flush=True)
    return on_tick


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
        key = str(log_path)
        step = 'train' if 'benchmarks.train' in cmd else 'test'
        _PROGRESS[key] = {'step': step, 'iter': None, 'at': time.time()}
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                p = parse_progress(line.decode('utf-8', 'replace'))
                if p is not None:
                    _PROGRESS[key] = dict(p, step=step, at=time.time())
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
            _PROGRESS.pop(key, None)
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


def env_prefix(env_extra: Optional[Dict[str, str]]) -> str:
    return ''.join(f'{k}={shlex.quote(v)} ' for k, v in sorted((env_extra or {}).items()))


def slot_threads(opts) -> int:
    """CPU threads one job gets: $OMP_NUM_THREADS when set, else the cores // ``--parallel``
    (what :func:`slot_envs` gives each slot; the dry-run reads the speed file of that count)."""
    if os.environ.get('OMP_NUM_THREADS', '').isdigit():
        return max(1, int(os.environ['OMP_NUM_THREADS']))
    return max(1, (os.cpu_count() or 1) // max(1, opts.parallel))


def slot_envs(opts, threads: Optional[int] = None) -> List[Dict[str, str]]:
    """One environment per parallel slot (``opts.parallel``): its own GPUs and, on CPU, its
    share of the cores; with ``threads``, exactly that many OpenMP / MKL / OpenBLAS threads per
    job. Empty dicts when running one job at a time without ``threads`` (the runner's
    environment is used as is)."""
    k = opts.parallel
    if k <= 1:
        return [{v: str(threads) for v in THREAD_VARS} if threads else {}]
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
        if threads:
            env.update({v: str(threads) for v in THREAD_VARS})
        elif 'OMP_NUM_THREADS' not in os.environ:
            env['OMP_NUM_THREADS'] = str(slot_threads(opts))
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
    if job.state in (JobState.STALE, JobState.FORCED):
        move_aside(job.dir)
        job.state = JobState.TODO
    job.dir.mkdir(parents=True, exist_ok=True)
    rec = read_json(job.dir / JOB_JSON) or {}
    if rec.get('config_hash') != job.hash:
        rec = {}
    rec.update({'config': job.spec.config, 'dataset': job.spec.dataset, 'seed': job.spec.seed,
                'method': job.spec.method, 'scale': opts.scale, 'config_hash': job.hash,
                'fills': job.spec.fills(), 'status': RunStatus.RUNNING, 'error': None,
                'started': rec.get('started') or _now(), 'log': str(job.dir / RUN_LOG)})
    rec['slot_env'] = dict(env_extra or {})
    rec.setdefault('train_wall_s', 0.0)
    rec.setdefault('attempts', 0)
    rec['attempts'] += 1
    log = job.dir / RUN_LOG
    tcmd = test_command(job, opts)
    train = job.spec.train and job.state != JobState.TEST
    trcmd = train_command(job, opts, resume=job.state == JobState.RESUME) if job.spec.train else None
    rec['train_cmd'] = shell(trcmd) if trcmd else ''
    rec['test_cmd'] = shell(tcmd)
    src = job.weights_from
    if src is not None:
        rec['weights_from'] = {'job': src.label, 'checkpoint': str(checkpoint_of(job)),
                               'config_hash': src.hash}
    atomic_write_text(job.dir / 'commands.sh', '#!/usr/bin/env bash\n# reproduce this job by hand\n'
                      f'set -e\ncd {shlex.quote(str(REPO_ROOT))}\n'
                      + (f'{rec["train_cmd"]}\n' if train else '')
                      + f'{rec["test_cmd"]}\n')
    atomic_write_json(job.dir / JOB_JSON, rec)
    try:
        if src is not None:
            if not has_final_weights(src):
                rec.update(status=RunStatus.FAILED, finished=_now(),
                           error=f'no checkpoint to test: {checkpoint_of(job)} (its job {src.label} '
                           f'has not finished training with its current config)')
                return rec
            note = f'reusing checkpoint {checkpoint_of(job)} (trained by {src.label}; no training)'
            print(f'    {note}', flush=True)
            with open(log, 'a') as f:
                f.write(f'\n[bench {datetime.now().isoformat(timespec="seconds")}] {note}\n')
        if train:
            print(f'    $ {env_prefix(env_extra)}{rec["train_cmd"]}', flush=True)
            t0 = time.time()
            try:
                rc = run_logged(trcmd, log, opts.verbose, env_extra)
            finally:
                rec['train_wall_s'] = round(rec['train_wall_s'] + time.time() - t0, 2)
            if rc != 0:
                rec.update(status=RunStatus.FAILED, error='train ' + error_from_log(log, rc), finished=_now())
                return rec
        print(f'    $ {env_prefix(env_extra)}{rec["test_cmd"]}', flush=True)
        t0 = time.time()
        rc = run_logged(tcmd, log, opts.verbose, env_extra)
        rec['test_wall_s'] = round(time.time() - t0, 2)
        m = read_json(job.dir / METRICS)
        if rc != 0:
            rec.update(status=RunStatus.FAILED, error='test ' + error_from_log(log, rc), finished=_now())
        elif not m or m.get('config_hash') != job.hash:
            rec.update(status=RunStatus.FAILED, error=f'test wrote no metrics with hash {job.hash} '
                       f'to {job.dir / METRICS}', finished=_now())
        else:
            rec.update(status=RunStatus.OK, finished=_now())
        return rec
    except KeyboardInterrupt:
        rec.update(status=RunStatus.INTERRUPTED, error='interrupted by the user', finished=_now())
        raise
    finally:
        atomic_write_json(job.dir / JOB_JSON, rec)


# ------------------------------------------------------------------------------- scheduler ---
def schedule(jobs: Sequence[Job], envs: Sequence[Dict[str, str]],
             run: Callable[[Job, Dict[str, str]], Any],
             on_skip: Callable[[int, Job], None],
             on_start: Callable[[int, Job, int], None],
             on_done: Callable[[int, Job, Any, Optional[Exception], float], None],
             on_tick: Optional[Callable[[List[tuple]], None]] = None,
             tick_s: float = 60.0) -> None:
    """Run ``jobs`` in order, each in a free slot (slot i runs with ``envs[i]``).

    A job that cannot run (done, missing config, config error) goes to ``on_skip(index, job)``
    in its turn. A job testing another job's weights (``weights_from``) starts after that job
    has finished; later jobs may take the free slots meanwhile. ``run(job, env)`` executes in a worker thread; ``on_start(index, job, slot)``
    and ``on_done(index, job, result, error, t0)`` (``error``: what ``run`` raised) run in the
    calling thread, which thus stays the only writer of shared files. With ``on_tick``, every
    ``tick_s`` seconds while jobs run, ``on_tick([(index, job, slot, t0), ...])`` gets the running
    ones (in the calling thread too). A KeyboardInterrupt (Ctrl-C,
    or ``run`` stopped by one) stops every slot's job, then propagates.
    """
    free = list(range(len(envs)))
    todo = list(enumerate(jobs, 1))
    running: Dict[Any, tuple] = {}  # future -> (index, job, slot, t0)
    _STOP.clear()
    pool = ThreadPoolExecutor(max_workers=len(envs), thread_name_prefix='job')
    def waits(j: Job) -> bool:  # its source job is still to run or running
        src = j.weights_from
        return src is not None and (any(x is src for _, x in todo)
                                    or any(x is src for _, x, _, _ in running.values()))

    def next_index() -> Optional[int]:  # in order; a job waiting on its source lets later ones by
        for n, (_, x) in enumerate(todo):
            if not x.state.runnable:
                return n
            if not free:
                return None
            if not waits(x):
                return n
        return None

    try:
        while todo or running:
            while (n := next_index()) is not None:
                i, j = todo.pop(n)
                if not j.state.runnable:
                    on_skip(i, j)
                    continue
                slot = free.pop(0)
                on_start(i, j, slot)
                running[pool.submit(run, j, envs[slot])] = (i, j, slot, time.time())
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED,
                           timeout=tick_s if on_tick is not None else None)
            if not done:
                on_tick(sorted(running.values(), key=lambda r: r[0]))
                continue
            for fut in done:
                i, j, slot, t0 = running.pop(fut)
                free.append(slot)
                free.sort()
                try:
                    result, error = fut.result(), None
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # the trouble of one job must not stop the others
                    result, error = None, e
                on_done(i, j, result, error, t0)
    except BaseException:
        stop_all_children()  # every slot's job stops (marked interrupted) before the caller goes on
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

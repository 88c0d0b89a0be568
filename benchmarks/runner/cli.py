"""``python -m benchmarks.run``: arguments, the plan with its time estimate, and the run of the
whole plan (lock, slots, a line per job, tables rewritten after every job)."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import results as R
from benchmarks.common import REPO_ROOT, read_json, run_cli, scale_help
from benchmarks.methods import get_method
from benchmarks.runner.collect import all_result_jobs, finished_metrics, write_results
from benchmarks.runner.launch import (LockedError, RunLock, env_prefix, execute, hms,
                                      progress_printer, schedule, shell, slot_envs, slot_threads,
                                      test_command, train_command)
from benchmarks.runner.preflight import format_report, preflight
from benchmarks.runner.cross import (add_cross_jobs, cross_result_jobs, has_cross_runs,
                                     print_cross_plan, split_selection)
from benchmarks.runner.plan import (JOB_JSON, METRICS, RUN_LOG, TRAIN_DONE, Job, JobState,
                                    RunStatus, build_jobs, config_batch, config_iters, load_cross_spec, load_spec,
                                    merge_identical, seed_dirs)
from benchmarks.tables import (DATASETS, VAL_IMAGES, cells, cross_cells, paper_iterations,
                               plan_jobs, select_tables)

__all__ = ['parse_args', 'main', 'print_plan', 'estimate', 'progress']

# ---------------------------------------------------------------------------------------------
# GPU-time estimate (dry-run). Per method: its ASSUMED (train s/iter, test s/image) on one
# A100-80GB (benchmarks/methods.py, Method.assumed_full; guesses, NOT measurements), replaced by
# measured ones as soon as a job of the same method (same scale) has finished in the work dir:
# s/iter = train wall time / iterations, test s/image = test wall time / validation images.
ASSUMED_FULL_VARIANT = [          # (regex on the config path, factor on the method's numbers)
    (r't6_sam-vith', 1.3), (r'vitl14', 1.8),
]
ASSUMED_DEFAULT = (1.0, 0.3)      # a method without assumed numbers
ASSUMED_MINI = (240.0, 20.0)      # CPU seconds per mini job (train, test): tiny widths, mini data
# Between the two: `python -m benchmarks.speed` figures of THIS machine's device
# (results/speed/<device>.csv: s per training step, s per test image, per method and scale),
# model compute only (no data loading, checkpoints or evaluation). Full: s/iter = the step time
# scaled linearly from the measured batch to the config's batch; mini: the mini schedule's
# iterations x CPU s/step + the mini val images x CPU s/image, from the row of the job's dataset
# when the file has one (its class count), else the iSAID row (the file's CPU seconds: a mini job
# runs on one thread per slot, and a CPU-h is what the plan's total counts) + the file's
# process_train_s / process_test_s (else MINI_PROCESS_S) for the job's two processes. On CPU the
# file measured at a slot's threads (launch.slot_threads; e.g. `python -m benchmarks.speed
# --threads 1 --scales mini` for `--parallel 2` on 2 cores) is read when there is one: on the
# AVX-512 EPYC a 2-thread file's CPU seconds per mini step are 13-32% above a 1-thread run's wall
# for five methods, 8% below for SAN (docs/measurements.md, 2026-12-04).
MINI_VAL_IMAGES = 100             # aeroseg/mini/io.py DEFAULT_SIZES['val']
MINI_ITERS = 200                  # configs/_base_/scale/mini.py iters (every dataset)
# Seconds of a mini job's process outside its steps: start (imports), config, model and data
# build, checkpoint loads and saves, exit. The speed file's process_train_s / process_test_s, per
# method, where it has them (benchmarks.process_cost, measured by `python -m benchmarks.speed`
# on this machine at the slot's threads); else this constant, measured 2026-12-02 on the AVX2 AMD
# EPYC 2-core box, ./run_all.sh --parallel 2: the runner's wall per process minus its loop, 16-45 s
# over the SAN and SCAN jobs (docs/measurements.md, "The whole mini suite, measured").
MINI_PROCESS_S = 25.0


def _speed_figures(speed_file: Optional[Path] = None, threads: Optional[int] = None):
    """(rows, file) of the speed CSV for this device (benchmarks.speed.load_speed; on CPU the
    file measured at ``threads``, a job's threads, when there is one), or ({}, None)."""
    try:
        from benchmarks.speed import load_speed
        if speed_file is not None:
            return load_speed(root=speed_file.parent, device=speed_file.stem, slug=True)
        return load_speed(threads=threads)
    except ImportError:  # no torch here: nothing to read the device from
        return {}, None


def _from_speed(rows, path, method: str, scale: str, config: Path, train: bool,
                dataset: Optional[str] = None):
    """(train s per iter or per mini job, test s per image or per mini job, source, basis) from
    the speed file's row of ``method`` at ``scale`` on ``dataset`` (else its iSAID row), or None
    when it has no figures for them."""
    r = rows.get((method, scale, dataset)) or rows.get((method, scale))
    if not r or r.get('infer_s') is None or (train and r.get('train_s') is None):
        return None
    name = f'{path.parent.name}/{path.name}'
    if r.get('dataset') and r['dataset'] != 'isaid':
        name += f" ({r['dataset']} row)"
    if scale == 'mini':
        base = rows.get((method, scale)) or {}  # the process cost is measured on the iSAID rows

        def cpu(k):  # CPU s (all threads) when the file has them, else the wall time
            return r.get(f'{k}_cpu_s') or r[f'{k}_s']

        def proc(k):  # s a process costs beyond its compute: measured (here, else iSAID), or None
            v = r.get(f'process_{k}_s')
            return base.get(f'process_{k}_s') if v is None else v
        used = [proc(k) for k in (('train', 'test') if train else ('test',))]
        p_tr, p_te = (MINI_PROCESS_S if v is None else v for v in (proc('train'), proc('test')))
        tr = MINI_ITERS * cpu('train') + p_tr if train else 0.0
        te = MINI_VAL_IMAGES * cpu('infer') + p_te
        per = (f'{p_tr:.0f} / {p_te:.0f} s per train / test process' if train
               else f'{p_te:.0f} s per test process')
        how = (f'{MINI_ITERS} it x CPU s/step + ' if train else 'test only: ') + \
            f'{MINI_VAL_IMAGES} img x CPU s/image + ' + \
            (f'{per} (measured)' if None not in used else
             f'{MINI_PROCESS_S:.0f} s per process (assumed)' if set(used) == {None} else
             f'{per} (measured where the file has it, else {MINI_PROCESS_S:.0f} s)')
        return tr, te, f'speed file {name}', how
    tr, note = None, ''
    if train:
        b = int(r.get('train_batch') or 1)
        want = config_batch(config) or b
        tr = r['train_s'] * want / b
        note = f', batch {b} -> {want}' if want != b else ''
    return tr, r['infer_s'], f'speed file {name}{note}', ''


def _assumed_full(method: str) -> Tuple[float, float]:
    try:
        return get_method(method).assumed_full
    except KeyError:
        return ASSUMED_DEFAULT


def _measured(work_dir: Path, scale: str) -> Dict[str, Tuple[Optional[float], Optional[float]]]:
    """Per method: measured (train s/iter or s/job at mini, test s/image or s/job)."""
    out: Dict[str, List[List[float]]] = {}
    root = work_dir / scale
    if not root.is_dir():
        return {}
    for d in seed_dirs(root):
        rel = d.relative_to(root).parts          # (<method>, ..., <config name>, seed<K>)
        rec = read_json(d / JOB_JSON) or {}
        method = rec.get('method') or (rel[0] if len(rel) > 1 else '')
        if not method:
            continue
        name = rel[-2].split('@')[0] if len(rel) > 1 else ''
        ds = rec.get('dataset') or next((k for k in DATASETS if name.endswith('_' + k)), None)
        td = read_json(d / TRAIN_DONE) or {}
        if td.get('wall_s') and td.get('iter'):
            wall = rec.get('train_wall_s') or td['wall_s']  # all attempts of a resumed job
            out.setdefault(method, [[], []])[0].append(wall if scale == 'mini' else wall / td['iter'])
        m = read_json(d / METRICS) or {}
        if m.get('wall_s'):
            if scale == 'mini':  # the whole test process, as the runner timed it (else the loop's)
                v = rec.get('test_wall_s') or m['wall_s']
            else:
                v = m['wall_s'] / VAL_IMAGES[ds] if ds in VAL_IMAGES else m['wall_s']
            out.setdefault(method, [[], []])[1].append(v)
    return {k: (sum(a) / len(a) if a else None, sum(b) / len(b) if b else None)
            for k, (a, b) in out.items()}


def estimate(jobs: Sequence[Job], work_dir: Path, scale: str, speed_file: Optional[Path] = None,
             threads: Optional[int] = None) -> None:
    """Fill est_train_s / est_test_s / basis per job: finished jobs of the method in the work dir,
    else the speed file of this device (at ``threads`` a job when there is one), else the ASSUMED
    numbers (notes above)."""
    measured = _measured(work_dir, scale)
    speed_rows, speed_path = _speed_figures(speed_file, threads)
    for j in jobs:
        meas = measured.get(j.spec.method, (None, None)) if j.spec.method else (None, None)
        sp = _from_speed(speed_rows, speed_path, j.spec.method, scale, j.path, j.spec.train,
                         j.spec.dataset) \
            if speed_rows and j.spec.method and meas == (None, None) else None
        if sp is not None:
            tr, te, src, how = sp
            if scale == 'mini':
                j.est_train_s, j.est_test_s = tr, te
                j.basis = f'{src}: {how} (CPU s per mini job)'
                continue
            iters = (config_iters(j.path) if j.exists else None) or paper_iterations(j.spec.dataset)
            n_img = VAL_IMAGES.get(j.spec.dataset, 1000)
            j.iters = iters if j.spec.train else 0
            j.est_train_s = iters * tr if j.spec.train else 0.0
            j.est_test_s = n_img * te
            j.basis = (f'{iters} it x {tr:.2f} s/it' if j.spec.train else 'test only') + \
                f' + {n_img} img x {te:.2f} s ({src})'
            continue
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
        a_tr, a_te = _assumed_full(j.spec.method)
        for pat, fac in ASSUMED_FULL_VARIANT:
            if re.search(pat, j.spec.config):
                a_tr, a_te = a_tr * fac, a_te * fac
        spi, src = (meas[0], 'measured') if meas[0] is not None else (a_tr, 'assumed')
        spimg = meas[1] if meas[1] is not None else a_te
        iters = config_iters(j.path) if j.exists else None
        it_src = 'train_cfg.max_iters'
        if iters is None:
            iters, it_src = paper_iterations(j.spec.dataset), 'paper iters'
        j.iters = iters if j.spec.train else 0
        j.est_train_s = iters * spi if j.spec.train else 0.0
        j.est_test_s = VAL_IMAGES.get(j.spec.dataset, 1000) * spimg
        j.basis = (f'{iters} it ({it_src}) x {spi:.2f} s/it ({src})' if j.spec.train
                   else 'test only') + f' + {VAL_IMAGES.get(j.spec.dataset, 1000)} img x {spimg:.2f} s'


# ------------------------------------------------------------------------------------ plan ---
def _hours(h: float) -> str:
    """Device-hours to print: two decimals under 1 h (a subset of the mini suite), else one."""
    return f'{h:.2f}' if h < 1 else f'{h:.1f}'


def _wall(h: float) -> str:
    """A wall time to print: minutes under 2 h, else hours."""
    return f'{h * 60:.0f} min' if h < 2 else f'{h:.1f} h'


def print_plan(jobs: Sequence[Job], opts, tables) -> None:
    n_run = [j for j in jobs if j.state.runnable]
    amp = f', autocast {opts.amp}' if getattr(opts, 'amp', None) else ''
    print(f'Plan: {len(jobs)} jobs (scale {opts.scale}, seeds {list(opts.seeds)}, tables '
          f'{" ".join(t.id for t in tables)}{amp}) -> work dir {Path(opts.work_dir) / opts.scale}')
    unit = 'GPU-h' if opts.scale == 'full' else 'CPU-h'
    w = max([len(j.name) for j in jobs] + [10])
    print(f'  {"#":>3}  {"state":<22} {"job":<{w}} {"seed":>4}  {"est " + unit:>9}  fills')
    for i, j in enumerate(jobs, 1):
        est = (j.est_train_s + j.est_test_s) / 3600
        print(f'  {i:>3}  {j.state.text:<22} {j.name:<{w}} {j.spec.seed:>4}  '
              f'{"-" if j.state == JobState.DONE else f"{est:.2f}":>9}  {", ".join(j.spec.fills())}')
    miss = {j.spec.config: j for j in jobs if j.state == JobState.MISSING}
    if miss:
        print(f'\nNot implemented yet (config file missing; their cells stay empty): {len(miss)} configs')
        for c, j in miss.items():
            print(f'  - {c}  ({", ".join(j.spec.fills())})')
    same = [(c, j) for j in jobs for c in dict.fromkeys(c.config for c in j.spec.cells) if c != j.spec.config]
    if same:
        print(f'\nConfigs resolving to the same content as another job\'s (run once, cells shared): {len(same)}')
        for c, j in same:
            print(f'  - {c} = {j.spec.config}')
    bad = [j for j in jobs if j.state == JobState.CONFIG_ERROR]
    if bad:
        print(f'\nConfigs that cannot be read ({len(bad)}):')
        for j in bad:
            print(f'  - {j.spec.config}: {j.error}')
    pending = [j for j in jobs if j.state != JobState.DONE]
    now = sum(j.est_train_s + j.est_test_s for j in n_run) / 3600
    allj = sum(j.est_train_s + j.est_test_s for j in pending) / 3600
    print(f'\nEstimate: {_hours(now)} {unit} for the {len(n_run)} runnable jobs; {_hours(allj)} {unit} '
          f'once every config exists ({len(pending)} jobs)'
          + (f', i.e. ~{_wall(now / (opts.parallel * opts.gpus))} wall with {opts.parallel} job(s) at once'
             + (f' on {opts.gpus} GPUs each' if opts.gpus > 1 else '')
             if opts.parallel * opts.gpus > 1 else '') + '.')
    if opts.scale == 'full':
        print('Basis per job: train iterations (the config\'s train_cfg.max_iters, else the paper\'s '
              '10k/5k/15k for iSAID/DLRSD/OEM) x s/iter, + validation images x s/image; s/iter and '
              's/image are, in this order, measured values of the same method once one has run in '
              'this work dir, the speed file of this device (python -m benchmarks.speed), or ASSUMED '
              'guesses for one A100-80GB (benchmarks/methods.py assumed_full).')
    else:
        print('Basis per job: measured values of the same method once one has run in this work dir, '
              'else the speed file of this device (python -m benchmarks.speed: CPU s of the model\'s '
              'compute + the s per train / test process it measured, or '
              f'{MINI_PROCESS_S:.0f} s per process where it has none), '
              'else ASSUMED ~4 min train + 20 s test on CPU (benchmarks/runner/cli.py ASSUMED_MINI).')
    kinds: Dict[str, set] = {}
    for j in pending:
        b = j.basis
        kinds.setdefault(j.spec.method or '?', set()).add(
            'speed file' if 'speed file' in b else 'finished jobs' if 'measured' in b else 'assumed')
    if kinds:
        print('Basis per method: ' + '; '.join(f'{m}: {" + ".join(sorted(k))}' for m, k in kinds.items())
              + ' (speed file = python -m benchmarks.speed figures of this device, results/speed/).')
    if opts.verbose_plan:
        print('\nPer-job basis and commands:')
        for i, j in enumerate(jobs, 1):
            print(f'  [{i}] {j.label}: {j.basis}')
            if j.spec.train:
                print(f'      $ {shell(train_command(j, opts, resume=j.state == JobState.RESUME))}')
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
    return (f'[{"#" * fill}{"." * (width - fill)}] {done}/{total} jobs | elapsed {hms(elapsed)} | '
            f'ETA {hms(eta)}')


# ------------------------------------------------------------------------------------- run ---
def run_plan(jobs: Sequence[Job], opts, envs, write_tables, failures: List[Tuple[Job, str]]) -> None:
    """Every job of the plan through the slots: a line per job, the progress bar, the tables
    rewritten (``write_tables()``) after each finished job; failures appended to ``failures``."""
    total = len(jobs)
    t_start = time.time()
    pace = {'finished': 0, 'est_done': 0.0,
            'est_left': sum(j.est_train_s + j.est_test_s for j in jobs if j.state.runnable)}

    def bar() -> str:
        return progress(pace['finished'], total, t_start, pace['est_done'], pace['est_left'], len(envs))

    def on_skip(i: int, j: Job) -> None:
        msg = {JobState.DONE: 'SKIP  done', JobState.MISSING: 'MISS  config file missing (not implemented)',
               JobState.CONFIG_ERROR: f'FAIL  config error: {j.error}'}[j.state]
        print(f'[{i}/{total}] {msg}: {j.label}', flush=True)
        if j.state == JobState.CONFIG_ERROR:
            failures.append((j, f'config error: {j.error}'))
        pace['finished'] += 1
        print(bar(), flush=True)

    def on_start(i: int, j: Job, slot: int) -> None:
        where = f'; slot {slot}: {env_prefix(envs[slot]).strip()}' if len(envs) > 1 else ''
        print(f'[{i}/{total}] RUN   {j.label} ({j.state.text}; fills {", ".join(j.spec.fills())}{where})',
              flush=True)

    def on_done(i: int, j: Job, rec: Optional[dict], error: Optional[Exception], t0: float) -> None:
        if error is not None:
            rec = {'status': RunStatus.FAILED, 'error': f'runner: {type(error).__name__}: {error}'}
        est = j.est_train_s + j.est_test_s
        pace['est_done'] += est
        pace['est_left'] -= est
        pace['finished'] += 1
        tag = f'[{i}/{total}]'
        if rec['status'] == RunStatus.OK:
            m = (finished_metrics(j) or {}).get('metrics', {})
            shown = ', '.join(f'{k} {m[k]:.2f}' for k in ('s-mIoU', 'u-mIoU', 'h-mIoU', 'mIoU')
                              if isinstance(m.get(k), (int, float)))
            print(f'{tag} OK    {j.label} in {hms(time.time() - t0)}: {shown}', flush=True)
        else:
            failures.append((j, rec.get('error') or '?'))
            print(f'{tag} FAIL  {j.label} in {hms(time.time() - t0)}: {rec.get("error")} '
                  f'(log: {j.dir / RUN_LOG})', flush=True)
        write_tables()
        print(bar(), flush=True)

    every = getattr(opts, 'progress_every', 60.0)
    schedule(jobs, envs, lambda j, env: execute(j, opts, env), on_skip, on_start, on_done,
             on_tick=progress_printer(total) if every > 0 and not opts.verbose else None, tick_s=every)


# ------------------------------------------------------------------------------------ main ---
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='python -m benchmarks.run',
                                description='Regenerate the paper\'s tables (benchmarks/tables.py), resumably.')
    p.add_argument('--tables', nargs='+', help='table numbers (2 3 ... or T2 ...); default: all of '
                   'the paper\'s; 9 = cross-dataset zero-shot (beyond the paper, only when named)')
    p.add_argument('--methods', nargs='+', help='row labels (SAN, Config-A, ...) or method keys / '
                   'folders (aeroseg = every configs/aeroseg/ config); default: all')
    p.add_argument('--datasets', nargs='+', help='isaid dlrsd oem (or iSAID DLRSD OEM); default: all')
    p.add_argument('--scale', choices=['full', 'mini'], default='full', help=scale_help())
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
    p.add_argument('--amp', nargs='?', const='bf16', choices=['bf16', 'fp16'], default=None,
                   help='autocast every job\'s training and test (benchmarks.train / test --amp '
                   '--amp-dtype; bf16 when given alone). Off by default: the tables reproduce fp32. '
                   'Part of each job\'s identity: an fp32 result is never taken for an AMP one')
    p.add_argument('--dry-run', action='store_true', help='print the plan and time estimate; run nothing')
    p.add_argument('--commands', dest='verbose_plan', action='store_true',
                   help='with --dry-run: print each job\'s estimate basis and commands')
    p.add_argument('--force', action='store_true', help='rerun the selected jobs from scratch')
    p.add_argument('--verbose', action='store_true',
                   help='stream each job\'s output to the console; full tracebacks on errors')
    p.add_argument('--progress-every', type=float, default=60.0, metavar='S',
                   help='every S seconds, one line per running job whose progress moved: its '
                   'step, iteration / total and mmengine\'s ETA (default 60; 0 = off; not with '
                   '--verbose, which streams the logs)')
    p.add_argument('--spec', default='benchmarks.tables',
                   help='module name or .py file defining TABLES (see benchmarks/run.py)')
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


def stop_on_sigterm() -> None:
    """kill / scancel stop the runner like Ctrl-C (jobs marked, tables written, lock freed)."""
    def _term(signum, frame):
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _term)


def _closing_report(opts, tables, jobs: Sequence[Job], failures, rc: int) -> int:
    """Failures, missing configs, and the --write-expected / --check-expected hooks."""
    if failures:
        print(f'\nFailures ({len(failures)}):')
        for j, err in failures:
            print(f'  - {j.label}: {err}\n    log: {j.dir / RUN_LOG}')
        rc = rc or 1
    miss = [j for j in jobs if j.state == JobState.MISSING]
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


def _plan(specs, cross, all_tables, opts) -> List[Job]:
    """The jobs of the selected tables, then the cross tables' (Table 9) jobs, estimated."""
    work = Path(opts.work_dir)
    jobs = merge_identical(build_jobs(specs, work, opts.scale, opts.data_root, opts.force, opts.amp))
    if cross:
        jobs = add_cross_jobs(jobs, cross, all_tables, opts, opts.seeds, opts.methods,
                              opts.datasets, opts.force)
    estimate(jobs, work, opts.scale, threads=slot_threads(opts))
    return jobs


def main(argv=None) -> int:
    opts = parse_args(argv)
    return run_cli('benchmarks.run', opts.verbose, lambda: _main(opts))


def _main(opts) -> int:
    all_tables = load_spec(opts.spec)
    all_cross = load_cross_spec(opts.spec)
    try:
        wanted, cross = split_selection(opts.tables, all_cross)
        tables = select_tables(all_tables, wanted) if wanted or not cross else []
        specs = plan_jobs(cells(tables, opts.methods, opts.datasets), opts.seeds) if tables else []
        n_cross = len(cross_cells(cross, opts.methods, opts.datasets))
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if not specs and not n_cross:
        print('error: nothing selected (check --tables / --methods / --datasets)', file=sys.stderr)
        return 2
    work = Path(opts.work_dir)
    # read-only: no lock, no folders, no data
    jobs = _plan(specs, cross, all_tables, opts)
    missing = preflight(jobs, opts.scale)
    if opts.dry_run:
        print_plan(jobs, opts, list(tables) + list(cross))
        print_cross_plan(jobs, cross, opts) if cross else None
        print('\n' + format_report(missing, sum(j.state.runnable for j in jobs)))
        return 0
    if any(m.blocking for m in missing):  # stop before the lock, any folder or any job
        print(format_report(missing, sum(j.state.runnable for j in jobs)), file=sys.stderr)
        print('error: inputs missing (above); nothing was started', file=sys.stderr)
        return 2
    if missing:
        print(format_report(missing, sum(j.state.runnable for j in jobs)), flush=True)
    stop_on_sigterm()
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

    out_cross = all_cross if cross or has_cross_runs(work, opts.scale) else ()

    def write_tables():
        res = all_result_jobs(all_tables, opts, jobs)
        if out_cross:
            res = cross_result_jobs(out_cross, all_tables, opts, res)
        return write_results(res, opts, all_tables, out_cross)
    try:
        jobs = _plan(specs, cross, all_tables, opts)
        print_plan(jobs, opts, list(tables) + list(cross))
        print_cross_plan(jobs, cross, opts) if cross else None
        print(flush=True)
        run_plan(jobs, opts, envs, write_tables, failures)
    except KeyboardInterrupt:
        print('\ninterrupted: rerun the same command to resume.', file=sys.stderr)
        rc = 130
    finally:
        try:
            print(f'\nTables written to {write_tables()}/ (table<N>.csv/.md, runs.csv, leaderboard.md)')
        finally:
            lock.release()
    return _closing_report(opts, tables, jobs, failures, rc)

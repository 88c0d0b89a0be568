"""Open-vocabulary transfer on the mini world: does the pretrained CLIP carry the unseen classes?

    python -m benchmarks.ov_transfer [--datasets isaid dlrsd oem] [--models catseg ovrs aeroseg]
        [--clips pretrained random]
        [--iters N] [--val-limit N] [--work-dir DIR] [--threads N] [--parallel K]
        [--seeds K [K ...]] [--seed-models M ...] [--force]
        [--sam-checkpoint FILE] [--cfg-options k=v ...]

Why: the mini world (docs/design.md §4) is only evidence for the suite's open-vocabulary pathway if
unseen classes are segmented *because* the CLIP knows their names. So each cost-aggregation model
(CAT-Seg, OVRS, AerOSeg) is trained on every mini dataset twice, once with the pretrained tiny
CLIP (``aeroseg/assets/mini``) and once with a random-weight CLIP of the same architecture (the
model's 'vl' outside weight set to None), and tested on all classes. Seen classes can be learnt
from the training labels either way; unseen classes can only come from CLIP. The u-mIoU gap
(pretrained minus random) is the measure of transfer. Target (issue "Mini world"): AerOSeg's gap
>= 20 points on at least two of the three mini datasets.

Protocol: every run is a job of the benchmark runner (:mod:`benchmarks.runner`) on a row of its
spec: the method's own config (:mod:`benchmarks.methods`) at ``--scale mini``, with
``cfg_options`` that shorten the schedule to ``--iters`` (cosine schedule end / T_max follow, no
validation during training, one checkpoint at the end) and test on the first ``--val-limit``
validation images (sorted file names; mmengine's ``dataset.indices``), and for the random arm the
outside-weight override ``{'vl': None}`` (resolved through the model's hook,
``aeroseg.hooks.weight_fields``). Everything else is the mini overlay
(``configs/_base_/scale/mini.py``). So the runs share the runner's lock, skip / resume, command
logging and run-dir files (``docs/run_dir.md``): ``<work-dir>/mini/<method>/<config>@ov-<clip>/
seed<K>``; a run whose config hash (config, options, tiny weights, generator version) is
unchanged is not recomputed; ``--force`` recomputes.

Also printed: the tiny CLIP's own zero-shot quality on the same val images (image-level top-k
precision over the seen / unseen class subsets, and dense value-path mIoU), pretrained and random,
computed with ``tools/train_tiny_clip.py``'s ``evaluate`` (the CLIP engineer's measurement), and a
check that every config trains on the seen names and tests on all names.

Seeds: one training run per seed. By default AerOSeg runs seeds 0, 1, 2 and CAT-Seg / OVRS seed 0
(``--seeds``, ``--seed-models``; ``--seed K`` = one seed for all); a multi-seed cell is the mean
over its seeds and the gap is mean(pretrained u-mIoU) - mean(random u-mIoU), with each seed's gap
and each arm's spread printed under the row. ``--parallel K`` runs K runs at once (each with
``--threads``).

The LAST line printed is ``u-mIoU gap (AerOSeg): iSAID X, DLRSD Y, OEM Z`` (points, 1 decimal;
``n/a`` for a dataset not run or failed).

Measurements made with this script (cost, results, caveats, each with its command):
``docs/measurements.md``.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from benchmarks.common import (REPO_ROOT, atomic_write_json, atomic_write_text, file_sha,
                               parse_options, read_json, register_all)
from benchmarks.methods import get_method
from benchmarks.runner import cli as runner_cli
from benchmarks.runner.collect import finished_metrics
from benchmarks.runner.launch import LockedError, RunLock, execute, progress_printer, schedule, slot_envs
from benchmarks.runner.plan import (JOB_JSON, Job, JobState, build_jobs, merge_identical,
                                    raw_config, resolved)
from benchmarks.tables import DATASETS, JobSpec, Row, Table, cells, plan_jobs

__all__ = ['RunSpec', 'parse_args', 'plan', 'run_cfg_options', 'run_weights', 'job_specs',
           'run_all', 'format_report', 'last_line', 'main']

OV_METHODS = ('catseg', 'ovrs', 'aeroseg')   # the cost-aggregation models whose CLIP is studied
MODELS = {k: get_method(k).label for k in OV_METHODS}
CLIPS = ('pretrained', 'random')
MINI_OVERLAY = REPO_ROOT / 'configs' / '_base_' / 'scale' / 'mini.py'
TINY_CLIP_TOOL = REPO_ROOT / 'tools' / 'train_tiny_clip.py'
ZERO_SHOT = 'zero_shot.json'
TARGET_GAP, TARGET_COUNT = 20.0, 2
METRICS = ('s-mIoU', 'u-mIoU', 'h-mIoU')
# Defaults sized for ~60-90 min on the shared 2-core machine (docs/measurements.md).
DEFAULT_ITERS = 200
# The random-CLIP arm is a lottery (which region an untrained name lands on), so one seed's gap
# moves by several points: the measured model gets three seeds by default, the two reference
# models one (docs/measurements.md).
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_SEED_MODELS = ('aeroseg',)
DEFAULT_VAL_LIMIT = 50


@dataclass(frozen=True)
class RunSpec:
    model: str   # catseg | ovrs | aeroseg
    ds: str      # isaid | dlrsd | oem
    clip: str    # pretrained | random
    seed: int = 0

    @property
    def config(self) -> str:
        return get_method(self.model).config_for(self.ds)

    @property
    def name(self) -> str:
        """Short name in the progress lines: ``<model>_<ds>_<clip>`` (+ ``_s<seed>`` but for seed 0)."""
        return f'{self.model}_{self.ds}_{self.clip}' + (f'_s{self.seed}' if self.seed else '')


def _row_label(model: str, clip: str) -> str:
    return f'{MODELS[model]} {clip} CLIP'


# ------------------------------------------------------------------------------------ options ---
def _choices(kind: str, allowed: Dict[str, str]):
    lower = {k.lower(): k for k in allowed} | {v.lower(): k for k, v in allowed.items()}
    lower |= {v.lower().replace('-', ''): k for k, v in allowed.items()}

    def conv(s: str) -> str:
        k = lower.get(s.lower())
        if k is None:
            raise argparse.ArgumentTypeError(
                f'unknown {kind} {s!r}; choose from {", ".join(allowed)} (or {", ".join(allowed.values())})')
        return k
    return conv


def _nonneg(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f'expected an integer >= 0, got {s}')
    return v


def _positive(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f'expected an integer >= 1, got {s}')
    return v


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='python -m benchmarks.ov_transfer',
        description='Mini-world open-vocabulary transfer: pretrained vs random-weight tiny CLIP '
                    '(u-mIoU gap) for CAT-Seg, OVRS and AerOSeg.')
    p.add_argument('--datasets', nargs='+', type=_choices('dataset', DATASETS), default=list(DATASETS),
                   help='isaid dlrsd oem (default: all three)')
    p.add_argument('--models', nargs='+', type=_choices('model', MODELS), default=list(MODELS),
                   help='catseg ovrs aeroseg (default: all three)')
    p.add_argument('--clips', nargs='+', choices=CLIPS, default=list(CLIPS),
                   help='which CLIP weights to run (default: both; the gap needs both)')
    p.add_argument('--iters', type=_positive, default=DEFAULT_ITERS,
                   help=f'training iterations per run (batch 4; default {DEFAULT_ITERS}, the mini '
                        f'overlay\'s own schedule)')
    p.add_argument('--val-limit', type=_nonneg, default=DEFAULT_VAL_LIMIT,
                   help=f'test on the first N val images (sorted names; default {DEFAULT_VAL_LIMIT} '
                        f'of 100; 0 = all)')
    p.add_argument('--work-dir', default='work_dirs/ov_transfer',
                   help='one folder per run inside (default work_dirs/ov_transfer)')
    p.add_argument('--threads', type=_positive, default=1,
                   help='torch / OpenMP threads of every run (default 1: on the shared 2-core machine '
                        'a mini AerOSeg step took 10-35 s with 2 threads vs 2.3-2.8 s with 1 while other '
                        'jobs ran; 2 pays only on an idle machine)')
    p.add_argument('--seeds', nargs='+', type=int, default=None, metavar='K',
                   help='randomness.seed of the runs (default: 0 1 2); with several, every cell is '
                        'the mean over the seeds and the gap is mean(pretrained) - mean(random)')
    p.add_argument('--seed', type=int, default=None, help='one seed (same as --seeds K)')
    p.add_argument('--seed-models', nargs='+', type=_choices('model', MODELS), default=None,
                   help='models that get every seed of --seeds; the others run the first seed only '
                        '(default: aeroseg)')
    p.add_argument('--parallel', type=_positive, default=1,
                   help='runs at once (each with --threads threads; default 1)')
    p.add_argument('--force', action='store_true', help='recompute finished runs')
    p.add_argument('--sam-checkpoint',
                   help='tiny SAM file for the configs with SAM guidance (AerOSeg); "none" = random '
                        'SAM weights (smoke tests); default: the mini overlay\'s sam.checkpoint')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='K=V',
                   help='extra config overrides for every run (mmengine DictAction syntax)')
    p.add_argument('--python', default=sys.executable, help='interpreter for the runs')
    p.add_argument('--skip-zero-shot', action='store_true',
                   help='do not evaluate the tiny CLIP\'s own zero-shot quality')
    args = p.parse_args(argv)
    for o in args.cfg_options:
        if '=' not in o:
            p.error(f'--cfg-options expects KEY=VALUE, got {o!r}')
    args.datasets = list(dict.fromkeys(args.datasets))
    args.models = list(dict.fromkeys(args.models))
    if args.seed is not None and args.seeds is not None:
        p.error('give --seed or --seeds, not both')
    args.seeds = list(dict.fromkeys(args.seeds if args.seeds is not None else
                                    DEFAULT_SEEDS if args.seed is None else [args.seed]))
    args.seed = args.seeds[0]
    args.seed_models = list(dict.fromkeys(DEFAULT_SEED_MODELS if args.seed_models is None
                                          else args.seed_models))
    args.clips = [c for c in CLIPS if c in args.clips]
    return args


def seeds_of(model: str, args) -> List[int]:
    return list(args.seeds) if model in args.seed_models else list(args.seeds[:1])


def plan(args) -> List[RunSpec]:
    """Runs in execution order: dataset, model, seed, then pretrained before random."""
    return [RunSpec(m, d, c, k) for d in args.datasets for m in args.models
            for k in seeds_of(m, args) for c in args.clips]


def _row_options(args) -> List[str]:
    """The ``--cfg-options`` every run shares (besides its seed): shortened schedule, test subset,
    the user's own overrides (strings in mmengine DictAction syntax)."""
    n = args.iters
    opts = [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
            f'train_cfg.val_begin={n + 1}',          # no validation pass at the end of training
            f'param_scheduler.0.end={n}', f'param_scheduler.0.T_max={n}',
            f'default_hooks.checkpoint.interval={n}']
    if args.val_limit:
        opts.append(f'test_dataloader.dataset.indices={args.val_limit}')
    return opts + list(args.cfg_options)


def run_cfg_options(spec: RunSpec, args) -> List[str]:
    """``--cfg-options`` of one run besides its outside-weight overrides (:func:`run_weights`)."""
    return [f'randomness.seed={spec.seed}'] + _row_options(args)


def _has_guidance(config: str) -> bool:
    """Whether the config's model has a guidance encoder (an outside weight with role 'guidance')."""
    register_all()
    from aeroseg.hooks import weight_fields
    return 'guidance' in weight_fields(raw_config(REPO_ROOT / config).model)


def run_weights(spec: RunSpec, args) -> Dict[str, Any]:
    """The run's outside-weight overrides by role: the random arm's CLIP at random init (same
    architecture), ``--sam-checkpoint`` for the models with guidance."""
    w: Dict[str, Any] = {}
    if spec.clip == 'random':
        w['vl'] = None
    if args.sam_checkpoint and _has_guidance(spec.config):
        w['guidance'] = None if args.sam_checkpoint.lower() == 'none' else args.sam_checkpoint
    return w


def spec_table(args, model: str) -> Table:
    """The runner rows of one model: one per CLIP arm, on every selected dataset."""
    base = parse_options(_row_options(args))
    rows = tuple(Row(_row_label(model, c), get_method(model).config, method=model, cfg_options=base,
                     weights=run_weights(RunSpec(model, args.datasets[0], c), args),
                     variant=f'ov-{c}') for c in args.clips)
    return Table('OV', 'Open-vocabulary transfer on the mini world', rows, tuple(args.datasets), METRICS)


def job_specs(args) -> List[JobSpec]:
    """The runner's job specs of the whole plan, in :func:`plan` order."""
    specs: List[JobSpec] = []
    for m in args.models:
        specs += plan_jobs(cells((spec_table(args, m),)), seeds_of(m, args))
    order = {s: i for i, s in enumerate(plan(args))}
    return sorted(specs, key=lambda j: order[_run_of(j.cells[0], j.seed)])


_LABELS = {_row_label(m, c): (m, c) for m in MODELS for c in CLIPS}


def _run_of(cell, seed: int) -> RunSpec:
    m, c = _LABELS[cell.row]
    return RunSpec(m, cell.dataset, c, seed)


def runner_options(args) -> argparse.Namespace:
    """The runner's options for these runs (mini scale, generated data, this work dir)."""
    opts = runner_cli.parse_args(['--scale', 'mini', '--work-dir', args.work_dir, '--parallel',
                                  str(args.parallel), '--python', args.python]
                                 + (['--force'] if args.force else []))
    opts.data_root = None
    return opts


# ------------------------------------------------------------------------------------ checks ---
def _abs(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    return path if os.path.isabs(path) else str(REPO_ROOT / path)


def _overlay():
    from mmengine.config import Config
    return Config.fromfile(str(MINI_OVERLAY))


def clip_file() -> str:
    return _abs(_overlay().clip.pretrained)


def vocabulary_check(spec: RunSpec, cfg) -> dict:
    """The run's model.vocabulary as loaded (mini overlay + options), with class counts."""
    from aeroseg.datasets.splits import get_split
    v = dict(cfg.model.get('vocabulary', {}))
    sp = get_split(v.get('split', spec.ds))
    n = {'seen': len(sp.seen), 'unseen': len(sp.unseen), 'all': sp.num_classes}

    def count(x):
        return n.get(x) if isinstance(x, str) else len(x or ())
    return {'train': v.get('train'), 'test': v.get('test'), 'n_train': count(v.get('train')),
            'n_test': count(v.get('test')), 'n_classes': sp.num_classes}


def job_result(job: Job, cached: bool = False) -> dict:
    """One run's result from its run dir: metrics when finished with the current config hash,
    else the error its record (or the plan) gives; wall times of train and test."""
    rec = read_json(job.dir / JOB_JSON) or {}
    rec = rec if rec.get('config_hash') == job.hash else {}
    res = {'train_s': rec.get('train_wall_s'), 'test_s': rec.get('test_wall_s'),
           'log': rec.get('log'), 'work_dir': str(job.dir)}
    m = finished_metrics(job)
    if m is not None:
        return dict(res, ok=True, metrics=m['metrics'], cached=cached)
    if job.state == JobState.MISSING:
        err = f'config file missing: {job.spec.config}'
    elif job.state == JobState.CONFIG_ERROR:
        err = f'config error: {job.error}'
    else:
        err = rec.get('error') or 'no result'
    return dict(res, ok=False, error=err)


def zero_shot(args) -> dict:
    """Tiny CLIP zero-shot on the val images (``tools/train_tiny_clip.py`` ``evaluate``), pretrained
    and random init; cached in ``<work-dir>/zero_shot.json``."""
    ckpt = clip_file()
    key = {'clip_sha': file_sha(ckpt), 'val_limit': args.val_limit, 'seed': args.seed,
           'datasets': list(args.datasets), 'tool_sha': file_sha(TINY_CLIP_TOOL)}
    path = Path(args.work_dir) / ZERO_SHOT
    cached = read_json(path)
    if cached and not args.force and cached.get('key') == key:
        return cached['results']
    import torch
    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location('_aeroseg_train_tiny_clip', TINY_CLIP_TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    ov = _overlay()
    if ov.clip.model_name != tool.NAME:
        raise RuntimeError(f'{MINI_OVERLAY}: clip.model_name {ov.clip.model_name!r} differs from '
                           f'{TINY_CLIP_TOOL.name} NAME {tool.NAME!r}')
    if not os.path.isfile(ckpt):
        raise FileNotFoundError(f'tiny CLIP checkpoint {ckpt!r} (configs/_base_/scale/mini.py clip.pretrained) '
                                f'does not exist: run tools/train_tiny_clip.py')
    out = {}
    limit = args.val_limit or None
    import logging
    quiet = logging.Filter()
    quiet.filter = lambda rec: not str(rec.msg).startswith('No pretrained weights loaded')
    for which, pre in (('pretrained', ckpt), ('random', None)):
        torch.manual_seed(args.seed)
        logging.getLogger().addFilter(quiet)  # open_clip's warning for the intended random init
        try:
            model, tok = tool.create(Path(_abs(ov.clip.model_config_dir)), pretrained=pre)
        finally:
            logging.getLogger().removeFilter(quiet)
        out[which] = tool.evaluate(model, tok, limit, datasets=tuple(args.datasets))
    atomic_write_json(path, {'key': key, 'results': out})
    return out


# ------------------------------------------------------------------------------------ report ---
def _f(x: Optional[float], w: int = 5) -> str:
    return f'{x:{w}.1f}' if isinstance(x, (int, float)) and not math.isnan(x) else f'{"-":>{w}}'


def _metric(res: Optional[dict], name: str) -> Optional[float]:
    if not res or not res.get('ok'):
        return None
    v = (res.get('metrics') or {}).get(name)
    return float(v) if isinstance(v, (int, float)) else None


def _seeds(results: Dict[RunSpec, dict], model: str, ds: str) -> List[int]:
    return sorted({s.seed for s in results if s.model == model and s.ds == ds})


def _values(results: Dict[RunSpec, dict], model: str, ds: str, clip: str, name: str,
            seeds: Optional[Sequence[int]] = None) -> Optional[List[float]]:
    """``name`` of every seed planned for (model, ds); ``None`` if any of them is missing or
    failed (a mean over the seeds that happened to succeed would be biased)."""
    seeds = _seeds(results, model, ds) if seeds is None else seeds
    vals = [_metric(results.get(RunSpec(model, ds, clip, k)), name) for k in seeds]
    return None if not vals or any(v is None for v in vals) else vals


def mean_metric(results: Dict[RunSpec, dict], model: str, ds: str, clip: str, name: str,
                seeds: Optional[Sequence[int]] = None) -> Optional[float]:
    """Mean of ``name`` over the seeds planned for (model, ds) (see :func:`_values`)."""
    vals = _values(results, model, ds, clip, name, seeds)
    return None if vals is None else statistics.fmean(vals)


def gap(results: Dict[RunSpec, dict], model: str, ds: str,
        seeds: Optional[Sequence[int]] = None) -> Optional[float]:
    """u-mIoU(pretrained) - u-mIoU(random), each the mean over the seeds run."""
    p = mean_metric(results, model, ds, 'pretrained', 'u-mIoU', seeds)
    r = mean_metric(results, model, ds, 'random', 'u-mIoU', seeds)
    return None if p is None or r is None else p - r


def _seed_line(results: Dict[RunSpec, dict], model: str, ds: str) -> Optional[str]:
    """Per-seed gaps and the spread of each arm, for rows that average several seeds."""
    seeds = _seeds(results, model, ds)
    if len(seeds) < 2:
        return None
    gaps = [gap(results, model, ds, [k]) for k in seeds]
    arms = []
    for c in CLIPS:
        u = _values(results, model, ds, c, 'u-mIoU', seeds)
        if u is not None:
            arms.append(f'{c} u-mIoU {statistics.fmean(u):.1f} +- {statistics.pstdev(u):.1f}')
    return (f'    seeds {",".join(map(str, seeds))}: gap per seed '
            f'{" / ".join("-" if g is None else f"{g:.1f}" for g in gaps)}; ' + ', '.join(arms))


def last_line(results: Dict[RunSpec, dict]) -> str:
    parts = []
    for ds, label in DATASETS.items():
        g = gap(results, 'aeroseg', ds)
        parts.append(f'{label} {"n/a" if g is None else f"{g:.1f}"}')
    return 'u-mIoU gap (AerOSeg): ' + ', '.join(parts)


def _pair(r: dict, key: str, fmt: str = '4.2f') -> str:
    """'seen / unseen' of ``r[key_seen]`` / ``r[key_unseen]`` ('-' where the tool has no such key)."""
    s, u = r.get(f'{key}_seen'), r.get(f'{key}_unseen')
    if s is None or u is None:
        return f'{"-":>4} / {"-":>4}'
    return f'{s:{fmt}} / {u:{fmt}}'


def _zero_shot_lines(zs: dict, datasets: Sequence[str]) -> List[str]:
    out = ['Tiny CLIP zero-shot on the same val images (tools/train_tiny_clip.py evaluate), seen / unseen:',
           '  top-k: image-level top-k precision within the seen (unseen) class subset, k = subset classes',
           '  present (>= 16 px), with the RS prompts (AerOSeg) and "a photo of a {} in the scene" (CAT-Seg);',
           '  chance = k / subset size; prior = a constant ranking by the val class frequencies;',
           '  AUC = per-class image ranking ROC-AUC (chance 0.50); dense = value-path tokens vs RS prompts, mIoU.',
           f'  {"dataset":<7} {"CLIP":<10} | {"top-k RS":^11} | {"top-k scene":^11} | {"chance":^11} | '
           f'{"prior":^11} | {"AUC RS":^11} | {"dense mIoU":^11}']
    for ds in datasets:
        for which in ('pretrained', 'random'):
            r = (zs.get(which) or {}).get(ds)
            if not r:
                continue
            out.append(f'  {DATASETS[ds]:<7} {which:<10} | {_pair(r, "img_rs")} | {_pair(r, "img_scene")} | '
                       f'{_pair(r, "img_chance")} | {_pair(r, "img_prior")} | {_pair(r, "auc_rs")} | '
                       f'{_pair(r, "dense_value", "4.1f")}')
    return out


def _seed_text(args) -> str:
    if len(args.seeds) == 1:
        return f'seed {args.seeds[0]}'
    many = ', '.join(MODELS[m] for m in args.models if m in args.seed_models)
    txt = f'seeds {",".join(map(str, args.seeds))} (mean of each cell; gap = mean pretrained - mean random)'
    if set(args.models) - set(args.seed_models):
        txt += f' for {many}, seed {args.seeds[0]} for the others'
    return txt


def format_report(results: Dict[RunSpec, dict], args, zs: Optional[dict] = None,
                  zs_error: Optional[str] = None) -> str:
    """The printed report; its last line is :func:`last_line`."""
    vl = f'the first {args.val_limit} val images' if args.val_limit else 'all val images'
    lines = ['=' * 100,
             'Open-vocabulary transfer on the mini world: tiny CLIP pretrained vs random weights (same architecture)',
             f'protocol: benchmarks.train + benchmarks.test --scale mini, {args.iters} iterations at batch 4, '
             f'{_seed_text(args)}, test on {vl}',
             f'work dir: {args.work_dir}']
    vocab = {(s.model, s.ds): r.get('vocabulary') for s, r in results.items() if r.get('vocabulary')}
    if vocab:
        bad = [f'{MODELS[m]}/{DATASETS[d]} train={v["train"]} test={v["test"]}'
               for (m, d), v in vocab.items() if v['train'] != 'seen' or v['test'] != 'all'
               or v['n_test'] != v['n_classes']]
        lines.append('vocabulary check: ' + ('every run trains on the seen names and tests on all '
                                             'names of its dataset' if not bad else 'PROBLEM: ' + '; '.join(bad)))
    lines.append('')
    if zs:
        lines += _zero_shot_lines(zs, args.datasets) + ['']
    elif zs_error:
        lines += [f'Tiny CLIP zero-shot: not evaluated ({zs_error})', '']
    from aeroseg.datasets.splits import get_split
    for ds in args.datasets:
        sp = get_split(ds)
        lines.append(f'{DATASETS[ds]} (mini; {len(sp.seen)} seen / {len(sp.unseen)} unseen classes)')
        lines.append(f'  {"model":<8} | {"pretrained CLIP":^21} | {"random-weight CLIP":^21} | {"u-mIoU":>6} | time')
        lines.append(f'  {"":<8} | {"s-mIoU":>6} {"u-mIoU":>6} {"h-mIoU":>6} | '
                     f'{"s-mIoU":>6} {"u-mIoU":>6} {"h-mIoU":>6} | {"gap":>6} | train+test')
        for m in args.models:
            cells, secs, errs = [], 0.0, []
            seeds = _seeds(results, m, ds)
            for c in CLIPS:
                cells.append(' '.join(_f(mean_metric(results, m, ds, c, k, seeds), 6)
                                      for k in ('s-mIoU', 'u-mIoU', 'h-mIoU')))
                for k in seeds:
                    r = results.get(RunSpec(m, ds, c, k)) or {}
                    secs += float(r.get('train_s') or 0) + float(r.get('test_s') or 0)
                    if r and not r.get('ok'):
                        errs.append(f'{c}{f" seed {k}" if len(seeds) > 1 else ""}: {r.get("error", "failed")}')
            g = gap(results, m, ds)
            lines.append(f'  {MODELS[m]:<8} | {cells[0]} | {cells[1]} | {_f(g, 6)} | {secs / 60:.1f} min')
            seed_line = _seed_line(results, m, ds)
            lines += [seed_line] if seed_line else []
            lines += [f'    FAILED {e}' for e in errs]
        if 'aeroseg' in args.models:
            per = [f'{c} {_f(mean_metric(results, "aeroseg", ds, "pretrained", "IoU." + c), 0)}'
                   f'/{_f(mean_metric(results, "aeroseg", ds, "random", "IoU." + c), 0)}'
                   for c in (sp.classes[i] for i in sp.unseen)]
            lines.append('  AerOSeg unseen-class IoU, pretrained/random CLIP: ' + ', '.join(per))
        lines.append('')
    if 'aeroseg' in args.models:
        gaps = {ds: gap(results, 'aeroseg', ds) for ds in args.datasets}
        hit = [DATASETS[d] for d, g in gaps.items() if g is not None and g >= TARGET_GAP]
        verdict = 'MET' if len(hit) >= TARGET_COUNT else 'NOT MET'
        lines.append(f'target (AerOSeg u-mIoU gap >= {TARGET_GAP:.0f} points on >= {TARGET_COUNT} of 3 '
                     f'mini datasets): {verdict} ({", ".join(hit) if hit else "none"})')
    lines.append(last_line(results))
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------ main ---
def _runs(jobs: Sequence[Job]) -> Dict[int, List[RunSpec]]:
    """id(job) -> the runs it stands for (more than one only when two rows resolve to one config)."""
    return {id(j): [_run_of(c, j.spec.seed) for c in j.spec.cells] for j in jobs}


def _line(i: int, n: int, s: RunSpec, r: dict, t0: Optional[float] = None) -> str:
    if r.get('ok'):
        state = 'cached' if r.get('cached') else f'{(time.time() - t0) / 60:.1f} min'
    else:
        state = f'FAILED ({r.get("error")})'
    return (f'[ov_transfer] {i}/{n} {s.name}: s-mIoU {_f(_metric(r, "s-mIoU"), 0)} '
            f'u-mIoU {_f(_metric(r, "u-mIoU"), 0)} [{state}]')


def run_all(args, opts, envs, results: Dict[RunSpec, dict],
            run_fn: Optional[Callable[[RunSpec, argparse.Namespace], dict]] = None) -> None:
    """Every run of the plan as a runner job (finished ones read back, the others executed in
    the slots ``envs``); ``results`` gets each run's result as it comes."""
    jobs = merge_identical(build_jobs(job_specs(args), Path(args.work_dir), 'mini', None, args.force))
    runs, n = _runs(jobs), len(jobs)

    def keep(i: int, j: Job, r: dict, t0: Optional[float] = None) -> None:
        if j.hash is not None:
            r.setdefault('vocabulary', vocabulary_check(runs[id(j)][0], resolved(j, 'mini')))
        results.update({s: r for s in runs[id(j)]})
        print(_line(i, n, runs[id(j)][0], r, t0), flush=True)

    def on_done(i: int, j: Job, r: Optional[dict], error: Optional[Exception], t0: float) -> None:
        keep(i, j, r if error is None else {'ok': False, 'error': f'{type(error).__name__}: {error}'}, t0)

    def run(j: Job, env: dict) -> dict:
        if run_fn is not None:
            return run_fn(runs[id(j)][0], args)
        execute(j, opts, env)
        return job_result(j)

    schedule(jobs, envs, run, lambda i, j: keep(i, j, job_result(j, cached=True)),
             lambda i, j, slot: print(f'[ov_transfer] {i}/{n} {runs[id(j)][0].name} ...', flush=True),
             on_done, on_tick=progress_printer(n, lambda j: runs[id(j)][0].name, '[ov_transfer] '))


def main(argv=None, run_fn: Optional[Callable[[RunSpec, argparse.Namespace], dict]] = None,
         zero_shot_fn: Optional[Callable[[argparse.Namespace], dict]] = None) -> int:
    """Run the plan through the benchmark runner and print the report (``run_fn(spec, args)`` /
    ``zero_shot_fn(args)``: stand-ins for one run's train + test and for the zero-shot
    evaluation, for tests)."""
    args = parse_args(argv)
    zero_shot_fn = zero_shot_fn or zero_shot
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    opts = runner_options(args)
    t_start = time.time()
    zs, zs_error = None, None
    if not args.skip_zero_shot:
        try:
            zs = zero_shot_fn(args)
        except Exception as e:  # the runs are still worth having
            zs_error = f'{type(e).__name__}: {e}'
            print(f'[ov_transfer] zero-shot evaluation failed: {zs_error}', flush=True)
    runner_cli.stop_on_sigterm()
    try:
        envs = slot_envs(opts, threads=args.threads)
        lock = RunLock(work)
        lock.acquire()
    except (LockedError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    results: Dict[RunSpec, dict] = {}
    rc = 0
    try:
        run_all(args, opts, envs, results, run_fn)
    except KeyboardInterrupt:
        print('\ninterrupted: rerun the same command to resume.', file=sys.stderr)
        rc = 130
    finally:
        lock.release()
    print(f'[ov_transfer] total {(time.time() - t_start) / 60:.1f} min', flush=True)
    report = format_report(results, args, zs, zs_error)
    atomic_write_text(work / 'report.txt', report + '\n')
    print(report, flush=True)
    return rc or (0 if results and all(r.get('ok') for r in results.values()) else 1)


if __name__ == '__main__':
    sys.exit(main())

"""Open-vocabulary transfer on the mini world: does the pretrained CLIP carry the unseen classes?

    python -m benchmarks.ov_transfer [--datasets isaid dlrsd oem] [--models catseg ovrs aeroseg]
        [--clips pretrained random]
        [--iters N] [--val-limit N] [--work-dir DIR] [--threads N] [--parallel K]
        [--seeds K [K ...]] [--seed-models M ...] [--force]
        [--sam-checkpoint FILE] [--cfg-options k=v ...]

Why: the mini world (DESIGN.md §4) is only evidence for the suite's open-vocabulary pathway if
unseen classes are segmented *because* the CLIP knows their names. So each cost-aggregation model
(CAT-Seg, OVRS, AerOSeg) is trained on every mini dataset twice, once with the pretrained tiny
CLIP (``aeroseg/assets/mini``) and once with a random-weight CLIP of the same architecture
(``model.clip.pretrained=None``), and tested on all classes. Seen classes can be learnt from the
training labels either way; unseen classes can only come from CLIP. The u-mIoU gap (pretrained
minus random) is the measure of transfer. Target (issue "Mini world"): AerOSeg's gap >= 20 points
on at least two of the three mini datasets.

Protocol: the suite's own entry points, as subprocesses, exactly as ``benchmarks.run`` calls them::

    python -m benchmarks.train configs/<m>/<m>_vitb16_<ds>.py --scale mini --work-dir RUN
        --cfg-options randomness.seed=K train_cfg.max_iters=N ... [model.clip.pretrained=None]
    python -m benchmarks.test  <same config> RUN/final_weights.pth --scale mini --work-dir RUN
        --cfg-options <same>

The schedule is shortened to ``--iters`` (cosine schedule end / T_max follow, no validation during
training, one checkpoint at the end) and the test uses the first ``--val-limit`` validation images
(sorted file names; mmengine's ``dataset.indices``); everything else is the mini overlay
(``configs/_base_/scale/mini.py``). Each run's log is ``RUN/run.log``; its result
``RUN/ov_result.json`` is reused while its key (the resolved config's hash, the CLIP / SAM file
hashes, the mini generator version) is unchanged; ``--force`` recomputes.

Also printed: the tiny CLIP's own zero-shot quality on the same val images (image-level top-k
precision over the seen / unseen class subsets, and dense value-path mIoU), pretrained and random,
computed with ``tools/train_tiny_clip.py``'s ``evaluate`` (the CLIP engineer's measurement), and a
check that every config trains on the seen names and tests on all names.

Seeds: one training run per seed. By default AerOSeg runs seeds 0, 1, 2 and CAT-Seg / OVRS seed 0
(``--seeds``, ``--seed-models``; ``--seed K`` = one seed for all); a multi-seed cell is the mean
over its seeds and the gap is mean(pretrained u-mIoU) - mean(random u-mIoU), with each seed's gap
and each arm's spread printed under the row.
Seed 0's run folders keep the single-seed names, so earlier single-seed results stay cached.
``--parallel K`` runs K runs at once (each with ``--threads``).

The LAST line printed is ``u-mIoU gap (AerOSeg): iSAID X, DLRSD Y, OEM Z`` (points, 1 decimal;
``n/a`` for a dataset not run or failed).

Cost (measured on the 2-core machine, 1 thread per run): per run CAT-Seg ~2.5 min, OVRS ~4 min,
AerOSeg ~5 min (200 iterations, 50 val images). The 30 default runs took 80 min with
``--parallel 2`` (with a mini-suite job running beside them). Finished runs are cached.

Current result (2026-11-27; AerOSeg means over seeds 0-2, gap = pretrained - random u-mIoU):
iSAID 28.7 (per seed 25.2 / 25.8 / 35.1), DLRSD 25.9 (26.9 / 26.5 / 24.4), OEM 15.5
(18.2 / 15.3 / 12.9).

Caveats measured with this script (details in the lead's reports on the "Mini world" issue):
* what decides transfer here is how the loss treats the pixels of the unseen classes hidden in
  training. Counted as all-zero targets (upstream CAT-Seg's rule for its unlabelled pixels, our
  default before 2026-11-27) they teach every head that unseen regions are "none of the classes":
  AerOSeg's gaps were iSAID 27.7, DLRSD 16.4, OEM 1.4; on OEM the cost volume the head received
  ranked 'developed space' right (argmax IoU 60.6) and the trained head sent 73 % of its pixels to
  the seen 'rangeland' with all logits near their floor; CAT-Seg and OVRS did the same. Left out
  of the loss (``hidden_mode='exclude'``, the default now): the gaps above. The old rule stays
  one option away: ``--cfg-options model.loss_decode.hidden_mode=zero_target``;
* CAT-Seg's base lr 2e-4 (meant for 80k iterations) hardly moves the head in a few hundred
  iterations (CAT-Seg iSAID: the same loss curve with pretrained and random CLIP; s/u-mIoU
  8.2 / 18.7 at 2e-4 vs 21.9 / 37.4 at 1e-3), hence the mini overlay's base lr 1e-3;
* the random-CLIP arm is a lottery (which region an untrained name lands on): AerOSeg's per-seed
  gaps spread by up to 10 points (iSAID above), hence three seeds for the measured model;
* what is left on mini OEM (4 seen classes): 'developed space' and 'agriculture land' stay low
  (6.1 and 9.3 IoU, against tree 39.3 and water 26.0); on mini DLRSD the small objects (airplane,
  cars: 0.1-1 % of the pixels, below the 8-px patch) stay at ~2 IoU in every model.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks.common import REPO_ROOT, atomic_write_json, atomic_write_text, file_sha, read_json

__all__ = ['RunSpec', 'parse_args', 'plan', 'run_cfg_options', 'format_report', 'last_line', 'main']

DATASETS = {'isaid': 'iSAID', 'dlrsd': 'DLRSD', 'oem': 'OEM'}
MODELS = {'catseg': 'CAT-Seg', 'ovrs': 'OVRS', 'aeroseg': 'AerOSeg'}
CLIPS = ('pretrained', 'random')
CONFIG = 'configs/{model}/{model}_vitb16_{ds}.py'
MINI_OVERLAY = REPO_ROOT / 'configs' / '_base_' / 'scale' / 'mini.py'
TINY_CLIP_TOOL = REPO_ROOT / 'tools' / 'train_tiny_clip.py'
RESULT = 'ov_result.json'
ZERO_SHOT = 'zero_shot.json'
TARGET_GAP, TARGET_COUNT = 20.0, 2
# Defaults sized for ~60-90 min on the shared 2-core machine (measured: 64 min for the 18 runs).
DEFAULT_ITERS = 200
# The random-CLIP arm is a lottery (which region an untrained name lands on), so one seed's gap
# moves by several points (mini DLRSD AerOSeg: 16.9 at seed 0, 21.1 at seed 1): the measured
# model gets three seeds by default, the two reference models one.
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
        return CONFIG.format(model=self.model, ds=self.ds)

    @property
    def name(self) -> str:
        """Run folder: ``<model>_<ds>_<clip>`` for seed 0 (the single-seed layout), else ``_s<seed>``."""
        return f'{self.model}_{self.ds}_{self.clip}' + (f'_s{self.seed}' if self.seed else '')


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
    p.add_argument('--force', action='store_true', help='recompute runs with a cached result')
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


def _has_guidance(spec: RunSpec) -> bool:
    return spec.model == 'aeroseg'


def run_cfg_options(spec: RunSpec, args) -> List[str]:
    """``--cfg-options`` of one run (strings in mmengine DictAction syntax)."""
    n = args.iters
    opts = [f'randomness.seed={spec.seed}',
            f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
            f'train_cfg.val_begin={n + 1}',          # no validation pass at the end of training
            f'param_scheduler.0.end={n}', f'param_scheduler.0.T_max={n}',
            f'default_hooks.checkpoint.interval={n}']
    if args.val_limit:
        opts.append(f'test_dataloader.dataset.indices={args.val_limit}')
    if spec.clip == 'random':
        opts.append('model.clip.pretrained=None')   # same architecture, random init
    if args.sam_checkpoint and _has_guidance(spec):
        sam = 'None' if args.sam_checkpoint.lower() == 'none' else args.sam_checkpoint
        opts.append(f'model.guidance.checkpoint={sam}')
    return opts + list(args.cfg_options)


def _options_dict(opts: Sequence[str]) -> dict:
    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='o')(None, ns, list(opts))
    return ns.o


# ------------------------------------------------------------------------------------ hashing ---
def _abs(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    return path if os.path.isabs(path) else str(REPO_ROOT / path)


def _overlay():
    from mmengine.config import Config
    return Config.fromfile(str(MINI_OVERLAY))


def clip_file() -> str:
    return _abs(_overlay().clip.pretrained)


def _loaded_config(spec: RunSpec, opts: Sequence[str]):
    """The run's config exactly as the entry points load it (mini overlay, then the options)."""
    from aeroseg.config import load_config
    return load_config(str(REPO_ROOT / spec.config), scale='mini', cfg_options=_options_dict(opts))


def _cfg_digest(cfg) -> str:
    import json
    from benchmarks.common import _jsonable
    d = cfg.to_dict()
    d.pop('work_dir', None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=_jsonable).encode()).hexdigest()[:16]


def run_key(spec: RunSpec, args, cfg) -> dict:
    """What a cached result must match: the resolved config (overlay and options applied) and the
    weight files it points to (the CLIP of a pretrained run, the SAM of a guided run)."""
    from aeroseg.mini import GENERATOR_VERSION
    m = cfg.model
    clip = m.clip.get('pretrained')
    sam = (m.get('guidance') or {}).get('checkpoint')
    return {'config': spec.config, 'resolved_config_sha': _cfg_digest(cfg),
            'clip_sha': file_sha(_abs(clip)) if clip else None,
            'sam_sha': file_sha(_abs(sam)) if sam else None,
            'mini_generator': GENERATOR_VERSION, 'iters': args.iters, 'val_limit': args.val_limit,
            'seed': spec.seed}


# ------------------------------------------------------------------------------------ running ---
def _env(threads: int) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env.setdefault('PYTHONUNBUFFERED', '1')
    for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
        env[k] = str(threads)
    return env


def _call(cmd: List[str], log: Path, threads: int) -> int:
    with open(log, 'ab') as fh:
        fh.write(f'\n[ov_transfer {time.strftime("%Y-%m-%d %H:%M:%S")}] $ '
                 f'{" ".join(shlex.quote(c) for c in cmd)}\n'.encode())
        fh.flush()
        return subprocess.call(cmd, cwd=REPO_ROOT, env=_env(threads), stdout=fh, stderr=subprocess.STDOUT)


def _last_error(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors='replace').splitlines() if ln.strip()]
    except OSError:
        return ''
    exc = [ln for ln in lines if 'Error' in ln.split(':', 1)[0] or 'Exception' in ln.split(':', 1)[0]]
    return (exc or lines or [''])[-1][:300]


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


def run_one(spec: RunSpec, args) -> dict:
    """Train + test one run through the suite's entry points (cached in ``RUN/ov_result.json``)."""
    d = Path(args.work_dir) / spec.name
    opts = run_cfg_options(spec, args)
    cfg = _loaded_config(spec, opts)
    key = run_key(spec, args, cfg)
    cached = read_json(d / RESULT)
    if cached and not args.force and cached.get('key') == key and cached.get('ok'):
        return dict(cached, cached=True)
    d.mkdir(parents=True, exist_ok=True)
    for stale in ('final_weights.pth', 'metrics.json', 'train_done.json', RESULT):
        (d / stale).unlink(missing_ok=True)
    log = d / 'run.log'
    res = {'key': key, 'ok': False, 'cfg_options': opts, 'log': str(log)}
    res['vocabulary'] = vocabulary_check(spec, cfg)
    common = ['--scale', 'mini', '--work-dir', str(d), '--cfg-options', *opts]
    t0 = time.time()
    rc = _call([args.python, '-m', 'benchmarks.train', spec.config, *common], log, args.threads)
    res['train_s'] = round(time.time() - t0, 1)
    if rc != 0:
        res['error'] = f'train exit {rc}: {_last_error(log)}'
        atomic_write_json(d / RESULT, res)
        return res
    t0 = time.time()
    rc = _call([args.python, '-m', 'benchmarks.test', spec.config, str(d / 'final_weights.pth'), *common],
               log, args.threads)
    res['test_s'] = round(time.time() - t0, 1)
    m = (read_json(d / 'metrics.json') or {}).get('metrics')
    if rc != 0 or not m:
        res['error'] = f'test exit {rc}: {_last_error(log)}'
        atomic_write_json(d / RESULT, res)
        return res
    res.update(ok=True, metrics=m)
    atomic_write_json(d / RESULT, res)
    return res


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
def main(argv=None, run_fn: Optional[Callable[[RunSpec, argparse.Namespace], dict]] = None,
         zero_shot_fn: Optional[Callable[[argparse.Namespace], dict]] = None) -> int:
    """Run the plan (``run_fn`` / ``zero_shot_fn``: injectable for tests) and print the report."""
    args = parse_args(argv)
    run_fn = run_fn or run_one
    zero_shot_fn = zero_shot_fn or zero_shot
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    specs = plan(args)
    t_start = time.time()
    zs, zs_error = None, None
    if not args.skip_zero_shot:
        try:
            zs = zero_shot_fn(args)
        except Exception as e:  # the runs are still worth having
            zs_error = f'{type(e).__name__}: {e}'
            print(f'[ov_transfer] zero-shot evaluation failed: {zs_error}', flush=True)
    results: Dict[RunSpec, dict] = {}

    def one(i: int, s: RunSpec) -> dict:
        t0 = time.time()
        print(f'[ov_transfer] {i}/{len(specs)} {s.name} ...', flush=True)
        try:
            r = run_fn(s, args)
        except Exception as e:
            r = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        state = ('cached' if r.get('cached') else f'{(time.time() - t0) / 60:.1f} min') if r.get('ok') \
            else f'FAILED ({r.get("error")})'
        print(f'[ov_transfer] {i}/{len(specs)} {s.name}: s-mIoU {_f(_metric(r, "s-mIoU"), 0)} '
              f'u-mIoU {_f(_metric(r, "u-mIoU"), 0)} [{state}]', flush=True)
        return r

    if args.parallel == 1:
        for i, s in enumerate(specs, 1):
            results[s] = one(i, s)
    else:  # runs are subprocesses writing to their own folders; results are gathered here
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            futures = {s: pool.submit(one, i, s) for i, s in enumerate(specs, 1)}
            for s in specs:
                results[s] = futures[s].result()
    print(f'[ov_transfer] total {(time.time() - t_start) / 60:.1f} min', flush=True)
    report = format_report(results, args, zs, zs_error)
    atomic_write_text(Path(args.work_dir) / 'report.txt', report + '\n')
    print(report, flush=True)
    return 0 if all(r.get('ok') for r in results.values()) else 1


if __name__ == '__main__':
    sys.exit(main())

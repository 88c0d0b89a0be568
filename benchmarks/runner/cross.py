"""Cross-dataset jobs (Table 9): test-only jobs that reuse the Table 2 checkpoints.

For a trained row, source S, target T and seed K the plan holds

* the source job: the row's config at S, seed K (the Table 2 job; planned first, shared with
  Table 2 when that is selected too, skipped when done; never forced from here), and
* the cross job ``<method>/<config at T>@from-<S>/seed<K>``: the method's config for T (its test
  pipeline, test mode and vocabulary: T's classes, all of them) tested with the source job's
  ``final_weights.pth``. Its ``--cfg-options`` carry ``cross_source.config`` and
  ``cross_source.config_hash`` (the source job's), so its config hash changes, and the job
  reruns, when the source is retrained. It waits for the source job (:class:`JobState.WAIT`).

A training-free row (SegEarth-OV) has no source: its cells are its plain test on T (the same
job as Table 8's on iSAID / DLRSD / OEM). Targets without data are not planned, their cells
say why: a cross-only target (LoveDA, Potsdam, Vaihingen) whose folder under ``--data-root``
(else its config's ``data_root``) does not exist, or, at mini scale without ``--data-root``,
that the mini world does not generate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from benchmarks.common import REPO_ROOT
from benchmarks.runner.plan import (Job, assess, build_jobs, data_root_for, has_final_weights,
                                    raw_config, seed_dirs)
from benchmarks.tables import DATASETS, CrossCell, JobSpec, cells, cross_cells, dataset_label

__all__ = ['split_selection', 'missing_targets', 'add_cross_jobs', 'cross_result_jobs',
           'print_cross_plan', 'collect_cross', 'has_cross_runs']


def split_selection(wanted: Optional[Iterable[str]], cross_tables) -> Tuple[List[str], list]:
    """``--tables`` split into the paper's table ids and the selected cross tables. The cross
    tables (beyond the paper) run only when named."""
    ids = {t.id.upper(): t for t in cross_tables}
    paper, cross = [], []
    for w in wanted or ():
        k = str(w).strip().upper()
        k = k if k.startswith('T') else 'T' + k
        if k in ids:
            cross += [ids[k]] if ids[k] not in cross else []
        else:
            paper.append(w)
    return paper, cross


def missing_targets(cross_tables, scale: str, data_root: Optional[str]) -> Dict[str, str]:
    """Target -> why it is not run (no data), for the targets of ``cross_tables``."""
    out = {}
    for t in {x for tab in cross_tables for x in tab.targets} - set(DATASETS):
        # Table 2's datasets are planned as Table 2 plans them; a cross-only target needs its data
        root = data_root_for(data_root, t)
        if root is None and scale == 'mini':
            from aeroseg.mini import MINI_DATASETS
            if t not in MINI_DATASETS:
                out[t] = (f'not run at mini scale: the mini world generates no {dataset_label(t)} '
                          f'(only {", ".join(dataset_label(d) for d in MINI_DATASETS)})')
            continue
        if root is None:
            root = str(REPO_ROOT / raw_config(REPO_ROOT / 'configs' / '_base_' / 'datasets'
                                              / f'{t}.py').data_root)
        if not Path(root).is_dir():
            out[t] = f'not run: no data at {root} (configs/_base_/datasets/{t}.py says how to make it)'
    return out


class _Jobs:
    """The plan's jobs, found by key or by resolved content (merged configs), extended in order."""

    def __init__(self, jobs: Sequence[Job], opts):
        self.list = list(jobs)
        self.opts = opts
        self.by_key = {j.spec.key: j for j in self.list}
        self.by_hash = {(j.hash, j.spec.seed): j for j in self.list if j.hash}

    def get(self, spec: JobSpec, force: bool) -> Job:
        j = self.by_key.get(spec.key)
        if j is None:
            o = self.opts
            j = build_jobs([spec], Path(o.work_dir), o.scale, o.data_root, force, getattr(o, 'amp', None))[0]
            same = self.by_hash.get((j.hash, j.spec.seed)) if j.hash else None
            if same is not None and (same.spec.train, same.spec.dataset) == (spec.train, spec.dataset):
                j = same
            else:
                self.list.append(j)
                if j.hash:
                    self.by_hash.setdefault((j.hash, j.spec.seed), j)
            self.by_key[spec.key] = j
        return j


def _source_spec(c: CrossCell, seed: int, all_tables) -> JobSpec:
    """The Table 2 job the cell's checkpoint comes from, with the paper cells it fills."""
    fills = [x for x in cells(all_tables) if (x.config, x.variant) == (c.source_config, c.variant)]
    return JobSpec(c.source_config, c.source, seed, True, cells=fills, method=c.method,
                   cfg_options=dict(c.cfg_options), weights=dict(c.weights), variant=c.variant)


def _cross_spec(c: CrossCell, src: Job) -> JobSpec:
    opts = {**c.cfg_options, 'cross_source.config': c.source_config,
            'cross_source.config_hash': f'sha:{src.hash}'}
    return JobSpec(c.config, c.dataset, src.spec.seed, False, method=c.method, cfg_options=opts,
                   weights=dict(c.weights),
                   variant=(f'{c.variant}+' if c.variant else '') + f'from-{c.source}')


def add_cross_jobs(jobs: Sequence[Job], cross_tables, all_tables, opts, seeds: Sequence[int],
                   methods=None, sources=None, force: bool = False) -> List[Job]:
    """``jobs`` + the source and cross jobs of ``cross_tables`` (module docstring), each source
    before the jobs that test its weights; ``force`` reruns the cross jobs, never a source.
    Cells of targets without data get no job."""
    plan = _Jobs(jobs, opts)
    skip = missing_targets(cross_tables, opts.scale, opts.data_root)
    seeds = list(seeds) or [0]
    for c in cross_cells(cross_tables, methods, sources):
        if c.dataset in skip:
            continue
        for s in (seeds if c.train else seeds[:1]):
            if not c.train:
                j = plan.get(JobSpec(c.config, c.dataset, s, False, method=c.method,
                                     cfg_options=dict(c.cfg_options), weights=dict(c.weights),
                                     variant=c.variant), force)
            else:
                src = plan.get(_source_spec(c, s, all_tables), False)
                j = plan.get(_cross_spec(c, src), force)
                if j.weights_from is None:
                    j.weights_from = src
                    if src.hash is None:  # source config missing or unreadable: so is this cell
                        j.exists, j.hash = j.exists and src.exists, None
                        j.error = j.error or src.error or f'source config {src.spec.config}'
                    j.state = assess(j, force)
            if c not in j.spec.cells:
                j.spec.cells.append(c)
    return plan.list


def cross_result_jobs(cross_tables, all_tables, opts, result_jobs: Sequence[Job]) -> List[Job]:
    """Every cross job of the whole cross spec for the seeds of ``result_jobs`` (the tables'
    jobs), those holding something or requested; ``result_jobs`` first, unchanged."""
    seeds = sorted({j.spec.seed for j in result_jobs} | set(opts.seeds))
    n = len(result_jobs)
    out = add_cross_jobs(result_jobs, cross_tables, all_tables, opts, seeds)
    return out[:n] + [j for j in out[n:] if j.spec.seed in opts.seeds or j.dir.exists()]


def print_cross_plan(jobs: Sequence[Job], cross_tables, opts) -> None:
    """The cross jobs with the checkpoint each reuses, and the targets not run."""
    cross = [j for j in jobs if j.weights_from is not None and j.exists and j.hash]
    if cross:
        print(f'\nTest-only jobs reusing Table 2 checkpoints (no training; '
              f'{" ".join(t.id for t in cross_tables)}): {len(cross)}, '
              f'{sum(j.est_test_s for j in cross) / 3600:.2f} h of tests')
        for j in cross:
            src = j.weights_from
            s = 'trained' if has_final_weights(src) else f'runs first: {src.state.text}'
            print(f'  - {j.label} <- {src.name}/seed{src.spec.seed}/final_weights.pth ({s})')
    why = missing_targets(cross_tables, opts.scale, opts.data_root)
    if why:
        print(f'\nTargets not run ({len(why)}):')
        for t, reason in sorted(why.items()):
            print(f'  - {dataset_label(t)}: {reason}')


def collect_cross(all_jobs: Sequence[Job], cross_tables, notes, scale: str,
                  data_root: Optional[str]) -> Tuple[dict, dict]:
    """Cross-table values over finished seeds, keyed (table, row label, source, target), and
    notes for the empty cells: the runner's (``notes``, keyed by the cell's row), or no data."""
    from benchmarks import results as R
    from benchmarks.runner.collect import finished_metrics
    values: Dict[Tuple[str, str, str, str], Dict[str, List[float]]] = {}
    out_notes: Dict[Tuple[str, str, str, str], str] = {}
    for j in all_jobs:
        m = finished_metrics(j)
        for c in j.spec.cells:
            if not isinstance(c, CrossCell):
                continue
            key = (c.table, c.label, c.source, c.dataset)
            if m is None:
                out_notes[key] = notes.get((c.table, c.row, c.dataset), 'not run yet')
                continue
            for name, v in R.cross_cell_metrics(m['metrics'], c.source, c.dataset).items():
                values.setdefault(key, {}).setdefault(name, []).append(v)
    why = missing_targets(cross_tables, scale, data_root)
    for c in cross_cells(cross_tables):
        key = (c.table, c.label, c.source, c.dataset)
        if c.dataset in why:
            out_notes[key] = why[c.dataset]
        elif key not in values:
            out_notes.setdefault(key, 'not run yet (--tables 9)')
    return values, {k: v for k, v in out_notes.items() if k not in values}


def has_cross_runs(work_dir: Path, scale: str) -> bool:
    """Whether the work dir holds a cross job (so the runner keeps its tables up to date)."""
    root = Path(work_dir) / scale
    return root.is_dir() and any('@' in d.parent.name and 'from-' in d.parent.name.split('@', 1)[1]
                                 for d in seed_dirs(root))

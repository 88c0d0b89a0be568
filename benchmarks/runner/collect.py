"""Results: every finished job of the whole spec read back from the work dir into cell values,
notes for empty cells and runs.csv rows, written to ``results/<scale>/`` by
:mod:`benchmarks.results` (the runner is their only writer)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import results as R
from benchmarks.common import read_json
from benchmarks.runner.plan import (JOB_JSON, METRICS, TRAIN_DONE, Job, RunStatus, build_jobs,
                                    merge_identical, seed_dirs)
from benchmarks.tables import DATASETS, cells, plan_jobs

__all__ = ['collect', 'write_results', 'all_result_jobs', 'metric']

MAIN_METRICS = ('mIoU', 's-mIoU', 'u-mIoU', 'h-mIoU')


def metric(metrics: dict, name: str) -> Optional[float]:
    """A metric by name, tolerating an evaluator prefix (``test/h-mIoU``)."""
    if name in metrics:
        return metrics[name]
    for k, v in metrics.items():
        if k.split('/')[-1] == name:
            return v
    return None


def finished_metrics(job: Job) -> Optional[dict]:
    """The job's metrics when its ``metrics.json`` carries its current config hash, else None."""
    m = read_json(job.dir / METRICS)
    ok = bool(job.hash and m and m.get('config_hash') == job.hash and isinstance(m.get('metrics'), dict))
    return m if ok else None


def _status(job: Job, rec: dict, ok: bool) -> RunStatus:
    if ok:
        return RunStatus.OK
    if not job.exists:
        return RunStatus.MISSING_CONFIG
    if job.hash is None:
        return RunStatus.CONFIG_ERROR
    status = rec.get('status') if rec.get('config_hash') == job.hash else None
    if status in (None, RunStatus.OK):  # never run with this config, or its metrics are gone
        return RunStatus.PENDING
    if status == RunStatus.RUNNING:     # the runner that ran it was killed
        return RunStatus.INTERRUPTED
    try:
        return RunStatus(status)
    except ValueError:                  # a record written by another version: shown as it is
        return status


def _run_row(j: Job, scale: str) -> dict:
    """The runs.csv row of one job."""
    rec = read_json(j.dir / JOB_JSON) or {}
    m = finished_metrics(j)
    td = read_json(j.dir / TRAIN_DONE) or {}
    ok = m is not None
    status = _status(j, rec, ok)
    mets = m['metrics'] if ok else {}
    row = {'job': j.name, 'config': j.spec.config, 'dataset': DATASETS.get(j.spec.dataset, j.spec.dataset),
           'seed': j.spec.seed, 'scale': scale, 'status': status,
           'error': (j.error if status == RunStatus.CONFIG_ERROR else
                     f'config file not found: {j.spec.config} (method not implemented)'
                     if status == RunStatus.MISSING_CONFIG else rec.get('error') if not ok else None),
           'fills': '; '.join(j.spec.fills()), 'config_hash': j.hash,
           'iou_per_class': {k.split('/')[-1][4:]: v for k, v in mets.items() if k.split('/')[-1].startswith('IoU.')} or None,
           'train_wall_s': rec.get('train_wall_s') if rec.get('config_hash') == j.hash else None,
           'test_wall_s': rec.get('test_wall_s') if ok else None,
           'iters': td.get('iter') if td.get('config_hash') == j.hash else None,
           'started': rec.get('started'), 'finished': rec.get('finished') if ok else None,
           'work_dir': str(j.dir), 'log': rec.get('log'),
           'train_cmd': rec.get('train_cmd'), 'test_cmd': rec.get('test_cmd')}
    for name in MAIN_METRICS:
        row[name] = metric(mets, name)
    other = {k: v for k, v in mets.items() if k.split('/')[-1] not in MAIN_METRICS
             and not k.split('/')[-1].startswith('IoU.')}
    row['other_metrics'] = other or None
    src = m if ok else td
    for k in ('git_commit', 'versions', 'device', 'peak_gpu_mem_mb', 'peak_rss_mb'):
        row[k] = (src or {}).get(k)
    if ok and td.get('peak_gpu_mem_mb') is not None:  # training peaks above testing
        row['peak_gpu_mem_mb'] = max(td['peak_gpu_mem_mb'], m.get('peak_gpu_mem_mb') or 0)
    if ok and td.get('peak_rss_mb') is not None:
        row['peak_rss_mb'] = max(td['peak_rss_mb'], m.get('peak_rss_mb') or 0)
    return row


def collect(all_jobs: Sequence[Job], opts, tables) -> Tuple[dict, dict, List[dict]]:
    """Cell values over finished seeds, notes for empty cells, and runs.csv rows."""
    values: Dict[Tuple[str, str, str], Dict[str, List[float]]] = {}
    notes: Dict[Tuple[str, str, str], str] = {}
    runs = [_run_row(j, opts.scale) for j in all_jobs]
    for j, row in zip(all_jobs, runs):
        if row['status'] != RunStatus.OK:
            continue
        mets = finished_metrics(j)['metrics']
        for c in j.spec.cells:
            for name in c.metrics:
                v = metric(mets, name)
                if v is not None:
                    values.setdefault((c.table, c.row, c.dataset), {}).setdefault(name, []).append(float(v))
    # mean / std over the seeds of each job (config and variant), on every row of that job
    by_config: Dict[str, List[dict]] = {}
    for row in runs:
        by_config.setdefault(row['job'], []).append(row)
    for rows in by_config.values():
        done = [r for r in rows if r['status'] == RunStatus.OK]
        for r in rows:
            r['n_seeds_ok'] = len(done)
            for name in MAIN_METRICS:
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
        if RunStatus.MISSING_CONFIG in st:
            notes[key] = f'not implemented (config file missing: {rows[0]["config"]})'
        elif RunStatus.CONFIG_ERROR in st:
            notes[key] = f'config cannot be read: {rows[0]["error"]}'
        elif RunStatus.FAILED in st:
            notes[key] = f'failed: {next(r["error"] for r in rows if r["status"] == RunStatus.FAILED)}'
        else:
            notes[key] = 'not run yet'
    return values, notes, runs


def write_results(all_jobs: Sequence[Job], opts, tables, cross_tables=()) -> Path:
    """Every table (and the cross tables, e.g. Table 9, from the same jobs) to
    ``results/<scale>/``."""
    values, notes, runs = collect(all_jobs, opts, tables)
    out = Path(opts.results_dir) / opts.scale
    extra = ''
    if cross_tables:
        from benchmarks.runner.cross import collect_cross
        cv, cnotes = collect_cross(all_jobs, cross_tables, notes, opts.scale, opts.data_root)
        extra = R.write_cross(out, cross_tables, cv, cnotes, opts.scale)[1]
    R.write_all(out, tables, values, R.load_paper(opts.paper_csv), runs, notes, opts.scale, extra)
    return out


def all_result_jobs(tables, opts, planned: Sequence[Job]) -> List[Job]:
    """Every job of the whole spec (for the tables), for the requested seeds and any other seed
    already present in the work dir."""
    seeds = set(opts.seeds)
    root = Path(opts.work_dir) / opts.scale
    if root.is_dir():
        seeds.update(int(d.name[4:]) for d in seed_dirs(root))
    specs = plan_jobs(cells(tables), sorted(seeds))
    known = {j.spec.key: j for j in planned}
    todo = [s for s in specs if s.key not in known]
    extra_by = {j.spec.key: j for j in build_jobs(todo, Path(opts.work_dir), opts.scale, opts.data_root,
                                                  amp=getattr(opts, 'amp', None))}
    out = [replace(known.get(s.key) or extra_by[s.key], spec=s) for s in specs]
    # keep only seeds that hold something, plus the requested ones
    return [j for j in merge_identical(out) if j.spec.seed in opts.seeds or j.dir.exists()]

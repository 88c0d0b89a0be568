"""Writers: the paper's tables as CSV (long form) and Markdown, runs.csv, the leaderboard.

Everything goes under ``results/<scale>/``, each file written atomically:

* ``table<N>.csv`` - columns ``table,config,dataset,metric,value,paper,delta``; labels exactly as
  in ``benchmarks/paper_tables.csv`` so every cell joins the paper's number. ``value`` is the mean
  over finished seeds, empty when the cell has no result (never a made-up number).
* ``table<N>.md`` - laid out as the paper lays it out (rows x datasets x metrics, "Average"
  where the paper prints one); each cell "ours (paper)"; notes say why a cell is empty.
* ``runs.csv`` - one row per job and seed: all metrics (and their mean / std over the config's
  finished seeds), per-class IoU, seed, config hash, git commit, package versions, wall times,
  peak memory, device, status, error, commands.
* ``leaderboard.md`` - Table 2 with averages over the datasets, sorted by average h-mIoU.

:func:`compare_expected` is the CI regression hook: it compares the tables against a stored
``results/mini/expected.csv`` (same long form) within a tolerance.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from benchmarks.common import atomic_write_text
from benchmarks.tables import DATASETS, Table

PAPER_CSV = Path(__file__).with_name('paper_tables.csv')
# The "Average" columns as the paper prints them (Tables 2-5; transcribed from the paper text).
# They can differ from the mean of the printed per-dataset values by 0.01 (the paper averaged
# unrounded numbers); the Markdown shows these printed values.
PAPER_AVERAGES_CSV = Path(__file__).with_name('paper_averages.csv')
TABLE_COLUMNS = ('table', 'config', 'dataset', 'metric', 'value', 'paper', 'delta')
RUNS_COLUMNS = ('job', 'config', 'dataset', 'seed', 'scale', 'status', 'error', 'fills',
                'mIoU', 's-mIoU', 'u-mIoU', 'h-mIoU', 'n_seeds_ok', 'mIoU mean', 'mIoU std',
                's-mIoU mean', 's-mIoU std', 'u-mIoU mean', 'u-mIoU std', 'h-mIoU mean',
                'h-mIoU std', 'iou_per_class', 'other_metrics', 'config_hash',
                'git_commit', 'versions', 'train_wall_s', 'test_wall_s', 'iters',
                'peak_gpu_mem_mb', 'peak_rss_mb', 'device', 'started', 'finished', 'work_dir',
                'train_cmd', 'test_cmd', 'log')

# (table id, row label, dataset key) -> metric -> values over seeds
CellValues = Mapping[Tuple[str, str, str], Mapping[str, Sequence[float]]]
PaperValues = Mapping[Tuple[str, str, str, str], float]


def load_paper(path: Path | str = PAPER_CSV,
               averages: Optional[Path | str] = PAPER_AVERAGES_CSV) -> Dict[Tuple[str, str, str, str], float]:
    """The paper's numbers keyed by (table, config, dataset label, metric); the printed
    averages (``averages`` file) under the dataset label ``'Average'``."""
    out = _read_reference(path)
    if averages is not None and Path(path).resolve() == PAPER_CSV.resolve():
        out.update(_read_reference(averages))
    return out


def _read_reference(path: Path | str) -> Dict[Tuple[str, str, str, str], float]:
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    need = {'table', 'config', 'dataset', 'metric', 'value'}
    if rows and not need <= set(rows[0]):
        raise ValueError(f'{path}: expected columns {sorted(need)}, got {sorted(rows[0])}')
    return {(r['table'], r['config'], r['dataset'], r['metric']): float(r['value']) for r in rows}


def mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float], int]:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None, None, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def _fmt(v: Optional[float], nd: int = 2) -> str:
    return '' if v is None else f'{v:.{nd}f}'


def _csv_text(columns: Sequence[str], rows: Iterable[Mapping]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction='ignore', lineterminator='\n')
    w.writeheader()
    for r in rows:
        w.writerow({k: ('' if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


def long_rows(table: Table, values: CellValues, paper: PaperValues) -> List[Dict[str, str]]:
    """Long-form rows of one table, in the paper's order (rows, datasets, metrics)."""
    out = []
    for row in table.rows:
        for ds in table.datasets:
            for m in table.metrics:
                ours, _, _ = mean_std(values.get((table.id, row.label, ds), {}).get(m, ()))
                ref = paper.get((table.id, row.label, DATASETS.get(ds, ds), m))
                out.append({'table': table.id, 'config': row.label,
                            'dataset': DATASETS.get(ds, ds), 'metric': m,
                            'value': '' if ours is None else f'{ours:.4f}',
                            'paper': '' if ref is None else f'{ref:.2f}',
                            'delta': '' if ours is None or ref is None else f'{ours - ref:+.2f}'})
    return out


def _averages(table: Table, row_label: str, values: CellValues, paper: PaperValues, metric: str):
    """(ours, paper) mean over the table's datasets; ours only when every dataset has a value."""
    ours, ref = [], []
    for ds in table.datasets:
        v, _, _ = mean_std(values.get((table.id, row_label, ds), {}).get(metric, ()))
        ours.append(v)
        ref.append(paper.get((table.id, row_label, DATASETS.get(ds, ds), metric)))
    o = statistics.fmean(ours) if all(v is not None for v in ours) else None
    p = paper.get((table.id, row_label, 'Average', metric))  # as printed
    if p is None:
        p = statistics.fmean(ref) if all(v is not None for v in ref) else None
    return o, p


def _md_cell(vals: Sequence[float], ref: Optional[float]) -> str:
    m, s, n = mean_std(vals)
    ours = '–' if m is None else (f'{m:.2f}' if n <= 1 else f'{m:.2f} ± {s:.2f}')
    return ours + ('' if ref is None else f' ({ref:.2f})')


def table_markdown(table: Table, values: CellValues, paper: PaperValues,
                   notes: Mapping[Tuple[str, str, str], str] | None = None, scale: str = 'full') -> str:
    """The table as the paper lays it out: one column per (dataset, metric), "Average" last."""
    cols = [(ds, m) for ds in table.datasets for m in table.metrics]
    head = ['Method'] + [f'{DATASETS.get(ds, ds)} {m}' if len(table.metrics) > 1 or len(table.datasets) == 1
                         else DATASETS.get(ds, ds) for ds, m in cols]
    if table.average:
        head += [f'Average {m}' if len(table.metrics) > 1 else 'Average' for m in table.metrics]
    lines = [f'# Table {table.number}: {table.title}', '',
             f'Scale: **{scale}**. Each cell: ours (paper); ours is the mean over finished seeds '
             f'(± std when more than one); – = no result.' +
             ('' if scale == 'full' else ' Mini-scale numbers come from tiny models on generated '
              'data: they test the pipeline and are not comparable with the paper\'s.'), '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in table.rows:
        cells = [row.label]
        for ds, m in cols:
            cells.append(_md_cell(values.get((table.id, row.label, ds), {}).get(m, ()),
                                  paper.get((table.id, row.label, DATASETS.get(ds, ds), m))))
        if table.average:
            for m in table.metrics:
                o, p = _averages(table, row.label, values, paper, m)
                cells.append(('–' if o is None else f'{o:.2f}') + ('' if p is None else f' ({p:.2f})'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    why = [(k, v) for k, v in (notes or {}).items() if k[0] == table.id]
    if why:
        lines += ['', 'Empty cells:', '']
        lines += [f'- {row} / {DATASETS.get(ds, ds)}: {reason}' for (_, row, ds), reason in why]
    return '\n'.join(lines) + '\n'


def training_free_values(tables: Sequence[Table], runs: Sequence[Mapping]
                         ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """row label -> dataset key -> s/u/h-mIoU of the finished jobs of training-free rows.

    The paper reports only the mIoU of SegEarth-OV (Table 8); the same test gives the suite's
    seen / unseen / harmonic means, which place it beside Table 2 (a row beyond the paper)."""
    free = {r.label for t in tables for r in t.rows if not r.train}
    by_label = {v: k for k, v in DATASETS.items()}
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for run in runs:
        if str(run.get('status')) != 'ok':
            continue
        rows = {f.split(' ', 1)[1] for f in str(run.get('fills') or '').split('; ') if ' ' in f}
        ds = by_label.get(run.get('dataset'), run.get('dataset'))
        for label in rows & free:
            vals = {m: float(run[m]) for m in ('s-mIoU', 'u-mIoU', 'h-mIoU') if run.get(m) not in (None, '')}
            out.setdefault(label, {})[ds] = vals
    return out


def leaderboard_markdown(table: Table, values: CellValues, paper: PaperValues,
                         scale: str = 'full', training_free: Optional[Mapping] = None) -> str:
    """Table 2 ranked by average h-mIoU (ours); rows without all datasets come last.

    ``training_free`` (:func:`training_free_values`): rows beyond the paper, e.g. SegEarth-OV's
    s/u/h-mIoU on the same splits, marked as such and not ranked with the paper's rows."""
    metrics = [m for m in ('s-mIoU', 'u-mIoU', 'h-mIoU') if m in table.metrics]
    rows = []
    for r in table.rows:
        avg = {m: _averages(table, r.label, values, paper, m) for m in metrics}
        per_ds = {ds: mean_std(values.get((table.id, r.label, ds), {}).get('h-mIoU', ()))[0]
                  for ds in table.datasets}
        rows.append((r.label, avg, per_ds))
    key_h = 'h-mIoU'
    rows.sort(key=lambda x: (x[1][key_h][0] is None, -(x[1][key_h][0] or 0.0),
                             -(x[1][key_h][1] or 0.0)))
    head = (['Rank', 'Method'] + [f'{DATASETS.get(ds, ds)} h-mIoU' for ds in table.datasets]
            + [f'Avg {m}' for m in metrics] + ['Paper avg h-mIoU'])
    lines = [f'# Leaderboard (Table {table.number}, scale {scale})', '',
             'Sorted by average h-mIoU over the datasets (ours); methods without a result on every '
             'dataset are listed last, unranked. Paper values: benchmarks/paper_tables.csv.', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    rank = 0
    for label, avg, per_ds in rows:
        complete = avg[key_h][0] is not None
        rank += complete
        cells = [str(rank) if complete else '–', label]
        cells += [_fmt(per_ds[ds]) or '–' for ds in table.datasets]
        cells += [_fmt(avg[m][0]) or '–' for m in metrics]
        cells.append(_fmt(avg[key_h][1]) or '–')
        lines.append('| ' + ' | '.join(cells) + ' |')
    for label, per in sorted((training_free or {}).items()):
        cells = ['beyond the paper', f'{label} (training-free)']
        cells += [_fmt(per.get(ds, {}).get('h-mIoU')) or '–' for ds in table.datasets]
        for m in metrics:
            got = [per[ds][m] for ds in table.datasets if m in per.get(ds, {})]
            cells.append(_fmt(sum(got) / len(got)) if len(got) == len(table.datasets) else '–')
        cells.append('–')
        lines.append('| ' + ' | '.join(cells) + ' |')
    if training_free:
        lines += ['', 'Training-free rows: the paper reports only their mIoU over all classes '
                  '(Table 8); these are the same test scored on the seen / unseen split of Table 1, '
                  'so they are not ranked with the trained methods.']
    return '\n'.join(lines) + '\n'


def runs_csv_text(runs: Sequence[Mapping]) -> str:
    extra = sorted({k for r in runs for k in r} - set(RUNS_COLUMNS))
    rows = []
    for r in runs:
        row = dict(r)
        for k in ('iou_per_class', 'other_metrics', 'versions'):
            if isinstance(row.get(k), (dict, list)):
                row[k] = json.dumps(row[k], sort_keys=True)
        rows.append(row)
    return _csv_text(list(RUNS_COLUMNS) + extra, rows)


def write_all(out_dir: Path | str, tables: Sequence[Table], values: CellValues, paper: PaperValues,
              runs: Sequence[Mapping], notes: Mapping[Tuple[str, str, str], str] | None = None,
              scale: str = 'full') -> List[Path]:
    """Write every table (CSV + Markdown), runs.csv and leaderboard.md; returns the paths."""
    out_dir = Path(out_dir)
    written = []
    for t in tables:
        p = out_dir / f'table{t.number}.csv'
        atomic_write_text(p, _csv_text(TABLE_COLUMNS, long_rows(t, values, paper)))
        written.append(p)
        p = out_dir / f'table{t.number}.md'
        atomic_write_text(p, table_markdown(t, values, paper, notes, scale))
        written.append(p)
    p = out_dir / 'runs.csv'
    atomic_write_text(p, runs_csv_text(runs))
    written.append(p)
    t2 = [t for t in tables if t.id == 'T2']
    if t2:
        p = out_dir / 'leaderboard.md'
        atomic_write_text(p, leaderboard_markdown(t2[0], values, paper, scale,
                                                  training_free_values(tables, runs)))
        written.append(p)
    return written


def read_long_csv(path: Path | str) -> Dict[Tuple[str, str, str, str], Optional[float]]:
    with open(path, newline='', encoding='utf-8') as f:
        return {(r['table'], r['config'], r['dataset'], r['metric']):
                (float(r['value']) if r.get('value') not in (None, '') else None)
                for r in csv.DictReader(f)}


def compare_expected(results_dir: Path | str, expected_csv: Path | str,
                     tolerance: float = 1.0) -> List[str]:
    """CI regression hook: every value in ``expected_csv`` (long form, like ``table<N>.csv``)
    must be matched by ``results_dir/table<N>.csv`` within ``tolerance`` (absolute, in IoU
    points). Returns the mismatches as readable lines (empty list = pass)."""
    results_dir = Path(results_dir)
    expected = read_long_csv(expected_csv)
    actual: Dict[Tuple[str, str, str, str], Optional[float]] = {}
    for p in sorted(results_dir.glob('table*.csv')):
        actual.update(read_long_csv(p))
    bad = []
    for key, exp in sorted(expected.items()):
        if exp is None:
            continue
        got = actual.get(key)
        if got is None:
            bad.append(f'{"/".join(key)}: expected {exp:.2f}, got no result')
        elif abs(got - exp) > tolerance:
            bad.append(f'{"/".join(key)}: expected {exp:.2f} ± {tolerance}, got {got:.2f}')
    return bad


def write_expected(results_dir: Path | str, out_csv: Path | str,
                   keys: Optional[Iterable[Tuple[str, str, str, str]]] = None) -> int:
    """Freeze the current tables (optionally a subset of cells) as the regression reference."""
    rows = []
    for p in sorted(Path(results_dir).glob('table*.csv')):
        with open(p, newline='', encoding='utf-8') as f:
            rows += [r for r in csv.DictReader(f) if r['value'] != '']
    if keys is not None:
        keep = set(keys)
        rows = [r for r in rows if (r['table'], r['config'], r['dataset'], r['metric']) in keep]
    if not rows:  # an interrupted or failed run must not freeze an empty reference
        raise ValueError(f'no finished cells in {results_dir}: nothing to freeze into {out_csv}')
    atomic_write_text(out_csv, _csv_text(('table', 'config', 'dataset', 'metric', 'value'), rows))
    return len(rows)

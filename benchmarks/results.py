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
* ``leaderboard.md`` - Table 2 with averages over the datasets, sorted by average h-mIoU; and,
  once Table 9 has run, its cross-dataset section (mean mIoU over the targets).
* ``table9.csv`` / ``table9.md`` - the cross-dataset table, beyond the paper (no paper column):
  long form ``table,config,source,dataset,metric,value,classes``; one block per training dataset.

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


def long_rows(table: Table, values: CellValues, paper: PaperValues,
              scale: str = 'full') -> List[Dict[str, str]]:
    """Long-form rows of one table, in the paper's order (rows, datasets, metrics).

    ``paper`` is always the paper's full-scale number; ``delta`` (ours - paper) only at full
    scale: a mini value minus a paper value measures nothing."""
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
                            'delta': '' if ours is None or ref is None or scale != 'full'
                            else f'{ours - ref:+.2f}'})
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


def shared_rows(runs: Sequence[Mapping]) -> Dict[str, Dict[str, List[str]]]:
    """table id -> row -> the other rows of that table filled by the same job(s) (one config
    standing for several rows, e.g. every SAM of Table 6 at mini scale is the one tiny SAM)."""
    out: Dict[str, Dict[str, List[str]]] = {}
    for run in runs:
        by_table: Dict[str, List[str]] = {}
        for f in str(run.get('fills') or '').split('; '):
            if ' ' in f:
                t, row = f.split(' ', 1)
                by_table.setdefault(t, []).append(row)
        for t, rows in by_table.items():
            for r in rows:
                others = [o for o in rows if o != r]
                if others:
                    cur = out.setdefault(t, {}).setdefault(r, [])
                    cur += [o for o in others if o not in cur]
    return out


def table_markdown(table: Table, values: CellValues, paper: PaperValues,
                   notes: Mapping[Tuple[str, str, str], str] | None = None, scale: str = 'full',
                   shared: Optional[Mapping[str, List[str]]] = None) -> str:
    """The table as the paper lays it out: one column per (dataset, metric), "Average" last.

    ``shared`` (this table's part of :func:`shared_rows`): rows filled by the same job are
    marked in the table itself, so equal numbers are not read as a finding."""
    cols = [(ds, m) for ds in table.datasets for m in table.metrics]
    head = ['Method'] + [f'{DATASETS.get(ds, ds)} {m}' if len(table.metrics) > 1 or len(table.datasets) == 1
                         else DATASETS.get(ds, ds) for ds, m in cols]
    if table.average:
        head += [f'Average {m}' if len(table.metrics) > 1 else 'Average' for m in table.metrics]
    lines = [f'# Table {table.number}: {table.title}', '',
             f'Scale: **{scale}**. Each cell: ours (paper{"" if scale == "full" else ": its full-scale number"}); '
             f'ours is the mean over finished seeds (± std when more than one; `--seeds 0 1 2` '
             f'for a spread); – = no result.' +
             ('' if scale == 'full' else ' Mini-scale numbers come from tiny models on generated '
              'data: they test the pipeline and are not comparable with the paper\'s.'), '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in table.rows:
        same = (shared or {}).get(row.label)
        cells = [row.label + (f' (same job as {", ".join(same)})' if same else '')
                 + (f' [{row.note}]' if row.note else '')]
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
    lines += ['', 'Figures (`python -m benchmarks.figures`, drawn by `./run_all.sh` after the tables): '
              + ', '.join(f'{DATASETS.get(ds, ds)} [per-class IoU](figures/per_class_iou_{ds}.png) / '
                          f'[Fig. 5](figures/fig5_{ds}.png)' for ds in table.datasets) + '.']
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
              scale: str = 'full', leaderboard_extra: str = '') -> List[Path]:
    """Write every table (CSV + Markdown), runs.csv and leaderboard.md (``leaderboard_extra``
    appended, e.g. the cross-dataset section); returns the paths."""
    out_dir = Path(out_dir)
    written = []
    for t in tables:
        p = out_dir / f'table{t.number}.csv'
        atomic_write_text(p, _csv_text(TABLE_COLUMNS, long_rows(t, values, paper, scale)))
        written.append(p)
        p = out_dir / f'table{t.number}.md'
        atomic_write_text(p, table_markdown(t, values, paper, notes, scale,
                                            shared_rows(runs).get(t.id)))
        written.append(p)
    p = out_dir / 'runs.csv'
    atomic_write_text(p, runs_csv_text(runs))
    written.append(p)
    t2 = [t for t in tables if t.id == 'T2']
    if t2:
        p = out_dir / 'leaderboard.md'
        atomic_write_text(p, leaderboard_markdown(t2[0], values, paper, scale,
                                                  training_free_values(tables, runs))
                          + ('\n' + leaderboard_extra if leaderboard_extra else ''))
        written.append(p)
    return written


def read_long_csv(path: Path | str) -> Dict[Tuple[str, str, str, str], Optional[float]]:
    with open(path, newline='', encoding='utf-8') as f:
        return {(r['table'], r['config'],  # a cross table's cells: 'Source→Target'
                 f'{r["source"]}→{r["dataset"]}' if r.get('source') else r['dataset'], r['metric']):
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


# ------------------------------------------------------------------ Table 9 (beyond the paper) ---
CROSS_COLUMNS = ('table', 'config', 'source', 'dataset', 'metric', 'value', 'classes')
# (table id, row label, source key, target key) -> metric -> values over seeds
CrossValues = Mapping[Tuple[str, str, str, str], Mapping[str, Sequence[float]]]
BEYOND = 'beyond the paper: the paper has no such table, so no paper column'


def _nanmean(vals: Iterable[Optional[float]]) -> Optional[float]:
    got = [float(v) for v in vals if v is not None and not math.isnan(float(v))]
    return statistics.fmean(got) if got else None


def cross_split(source: str, target: str) -> Dict[str, Tuple[str, ...]]:
    """Target class names per Table 9 metric: all, seen-name and novel-name (splits.py)."""
    from aeroseg.datasets.splits import get_split, name_split
    cls = get_split(target).classes
    seen, novel = name_split(source, target)
    return {'mIoU': cls, 'seen-name mIoU': tuple(cls[i] for i in seen),
            'novel-name mIoU': tuple(cls[i] for i in novel)}


def cross_cell_metrics(metrics: Mapping[str, float], source: str, target: str) -> Dict[str, float]:
    """A cross job's metrics as Table 9 reads them: the evaluator's mIoU over the target's classes,
    and the mean IoU (NaN classes left out, as the evaluator does) over the seen-name and the
    novel-name classes (``IoU.<class>``); a group without classes has no value."""
    def iou(name):
        for k, v in metrics.items():
            if k.split('/')[-1] == f'IoU.{name}':
                return v
        return None
    out = {}
    for m, names in cross_split(source, target).items():
        v = _nanmean(iou(n) for n in names) if m != 'mIoU' else next(
            (metrics[k] for k in metrics if k.split('/')[-1] == 'mIoU'), None)
        if v is not None and not math.isnan(float(v)):
            out[m] = float(v)
    return out


def _label(ds: str) -> str:
    from benchmarks.tables import dataset_label
    return dataset_label(ds)


def cross_long_rows(table, values: CrossValues) -> List[Dict[str, str]]:
    """Long-form rows of a cross table: blocks (sources), rows, targets, metrics."""
    out = []
    for src in table.sources:
        for row in table.rows:
            for tgt in table.targets:
                if tgt == src:
                    continue
                split = cross_split(src, tgt)
                for m in table.metrics:
                    v, _, _ = mean_std(values.get((table.id, row.label, src, tgt), {}).get(m, ()))
                    out.append({'table': table.id, 'config': row.label, 'source': _label(src),
                                'dataset': _label(tgt), 'metric': m,
                                'value': '' if v is None else f'{v:.4f}',
                                'classes': '; '.join(split[m])})
    return out


def _cell(vals: Mapping[str, Sequence[float]]) -> str:
    """'mIoU (seen-name / novel-name)'; ± std over seeds on the mIoU."""
    m, s, n = mean_std(vals.get('mIoU', ()))
    if m is None:
        return '–'
    part = [_fmt(mean_std(vals.get(k, ()))[0]) or '–' for k in ('seen-name mIoU', 'novel-name mIoU')]
    return (f'{m:.2f}' if n <= 1 else f'{m:.2f} ± {s:.2f}') + f' ({part[0]} / {part[1]})'


def cross_markdown(table, values: CrossValues, notes: Mapping[Tuple[str, str, str, str], str],
                   scale: str = 'full') -> str:
    """One block per training dataset: rows x targets, each cell 'mIoU (seen-name / novel-name)'."""
    lines = [f'# Table {table.number}: {table.title}', '',
             f'Scale: **{scale}**. {BEYOND[0].upper() + BEYOND[1:]}. Each model is trained on the '
             'block\'s dataset (its Table 2 job, checkpoint reused) and tested on each other '
             'dataset with that dataset\'s full vocabulary and the method\'s config for it. Cell: '
             'mIoU over the target\'s classes (seen-name mIoU / novel-name mIoU): seen-name classes '
             'are those whose name or a synonym (aeroseg/datasets/splits.py) was in the source\'s '
             'training vocabulary (its seen classes); novel-name the others. – = no result. '
             'Training-free rows saw no names; their split columns use the block\'s for comparison.'
             + ('' if scale == 'full' else ' Mini-scale numbers come from tiny models on generated '
                'data: they test the pipeline only.'), '']
    for src in table.sources:
        tgts = [t for t in table.targets if t != src]
        lines += [f'## Trained on {_label(src)}', '',
                  '| Method | ' + ' | '.join(_label(t) for t in tgts) + ' |',
                  '|' + '---|' * (len(tgts) + 1)]
        for row in table.rows:
            lines.append(f'| {row.label} | ' + ' | '.join(
                _cell(values.get((table.id, row.label, src, t), {})) for t in tgts) + ' |')
        lines += ['', 'Seen-name classes per target: ' + '; '.join(
            f'{_label(t)}: {", ".join(cross_split(src, t)["seen-name mIoU"]) or "none"} '
            f'({len(cross_split(src, t)["seen-name mIoU"])} of {len(cross_split(src, t)["mIoU"])})'
            for t in tgts) + '.', '']
        why = [(k, v) for k, v in notes.items() if k[0] == table.id and k[2] == src
               and (k[0], k[1], k[2], k[3]) not in values]
        if why:
            lines += ['Empty cells:', '']
            lines += [f'- {row} / {_label(tgt)}: {reason}' for (_, row, _, tgt), reason in why]
            lines.append('')
    return '\n'.join(lines).rstrip() + '\n'


def cross_leaderboard_section(table, values: CrossValues) -> str:
    """The leaderboard's cross-dataset section: per method, its mean mIoU over the targets of
    each source block and over every pair, and the mean novel-name mIoU; ranked by the mean
    mIoU when every pair with data has a result (the others unranked, last)."""
    pairs = [(s, t) for s in table.sources for t in table.targets if t != s]
    rows = []
    for r in table.rows:
        got = {p: mean_std(values.get((table.id, r.label) + p, {}).get('mIoU', ()))[0] for p in pairs}
        nov = [mean_std(values.get((table.id, r.label) + p, {}).get('novel-name mIoU', ()))[0]
               for p in pairs if got[p] is not None]
        done = [v for v in got.values() if v is not None]
        rows.append((r.label if r.train else f'{r.label} (training-free)', got,
                     _nanmean(done) if done else None, _nanmean(nov) if nov else None, len(done),
                     r.train))
    have = max([x[4] for x in rows if x[5]] + [0])
    rows.sort(key=lambda x: (not x[5], x[4] < have or not have, -(x[2] or 0.0)))
    head = (['Rank', 'Method'] + [f'from {_label(s)}' for s in table.sources]
            + ['Avg mIoU', 'Avg novel-name mIoU', 'pairs'])
    lines = [f'## Cross-dataset zero-shot (Table {table.number}, beyond the paper)', '',
             f'No paper column: the paper has no such table. Mean mIoU over the targets of each '
             f'training dataset (every other dataset with data), then over all pairs; trained '
             f'methods ranked among those with a result on every pair that has one; training-free '
             f'rows unranked (`table{table.number}.md` has the cells and the seen-name / '
             f'novel-name split).', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    rank = 0
    for label, got, avg, nov, n, trained in rows:
        complete = trained and bool(have) and n == have
        rank += complete
        blocks = [_nanmean(v for (s, _), v in got.items() if s == src and v is not None)
                  for src in table.sources]
        lines.append('| ' + ' | '.join([str(rank) if complete else '–', label]
                                       + [_fmt(b) or '–' for b in blocks]
                                       + [_fmt(avg) or '–', _fmt(nov) or '–', str(n)]) + ' |')
    return '\n'.join(lines) + '\n'


def write_cross(out_dir: Path | str, tables, values: CrossValues,
                notes: Mapping[Tuple[str, str, str, str], str], scale: str = 'full'
                ) -> Tuple[List[Path], str]:
    """``table<N>.csv`` / ``.md`` of each cross table; returns the paths and the leaderboard
    section(s) for :func:`write_all`."""
    out_dir, written, sections = Path(out_dir), [], []
    for t in tables:
        p = out_dir / f'table{t.number}.csv'
        atomic_write_text(p, _csv_text(CROSS_COLUMNS, cross_long_rows(t, values)))
        q = out_dir / f'table{t.number}.md'
        atomic_write_text(q, cross_markdown(t, values, notes, scale))
        written += [p, q]
        sections.append(cross_leaderboard_section(t, values))
    return written, '\n'.join(sections)

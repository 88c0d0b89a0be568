"""The paper's Tables 2-8 as data: which config fills which cell, with which metric.

This module is the single source the runner plans from and the writers lay out. A cell is
(table, row label, dataset label, metric); its value comes from one *job*: a config trained
(unless training-free) and tested on one dataset with one seed. Many cells share a job: the main
AerOSeg config fills T2 "AerOSeg", T3 "Config-C", T4 "Guidance frozen", T5 "Reconstruct SAM
features", T6 "SAM ViT-L", T7 "CLIP ViT-B" and T8 "AerOSeg"; :func:`plan_jobs` runs it once.

Labels (table ids, row labels, dataset labels, metric names) are spelled exactly as in
``benchmarks/paper_tables.csv`` (the paper's numbers), so every cell joins its reference value;
``tests/benchmarks/test_tables.py`` checks that the spec and that file cover each other exactly.

Config paths are templates relative to the repository root; ``{ds}`` is a dataset key
(``isaid``, ``dlrsd``, ``oem``). A config file that does not exist yet means the method is not
implemented: its cells stay empty and the plan says so (never a made-up number). The methods'
rows (label, config, training-free or not) come from :mod:`benchmarks.methods`.

A row may also carry ``cfg_options`` (config overrides) and ``weights`` (outside-weight overrides
by role, e.g. ``{'vl': None}`` = random-weight CLIP, resolved through ``aeroseg.hooks``): such a
row is its own job (``<config>@<variant>``), e.g. the arms of ``benchmarks.ov_transfer``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from benchmarks.methods import get_method

__all__ = ['DATASETS', 'Row', 'Table', 'TABLES', 'Cell', 'JobSpec', 'cells', 'plan_jobs',
           'method_row', 'select_tables', 'paper_iterations', 'VAL_IMAGES', 'CrossTable',
           'CrossCell', 'CROSS_TABLES', 'CROSS_METRICS', 'cross_cells', 'dataset_label']

# dataset key (file names, data dirs) -> label as the paper's tables print it.
DATASETS: Dict[str, str] = {'isaid': 'iSAID', 'dlrsd': 'DLRSD', 'oem': 'OEM'}
ALL_DS: Tuple[str, ...] = tuple(DATASETS)

# Validation images per dataset (paper Sec. 4.1; the cross-dataset targets: mmseg's converters'
# val splits); used only for the dry-run time estimate.
VAL_IMAGES: Dict[str, int] = {'isaid': 6363, 'dlrsd': 1401, 'oem': 5195,
                              'loveda': 1669, 'potsdam': 2016, 'vaihingen': 398}

HSU = ('s-mIoU', 'u-mIoU', 'h-mIoU')



@dataclass(frozen=True)
class Row:
    """One row of a table: its label as the paper prints it and the config that fills it.

    ``train=False`` marks a training-free method (tested only, no checkpoint). ``method``: the
    method key (default: the config's folder under ``configs/``). ``cfg_options`` /
    ``weights`` / ``variant``: see the module docstring (``variant`` names the job folder
    suffix; default: a digest of the overrides). ``note``: printed after the label in the
    rendered table (what the row's configs do differently from the paper's method).
    """
    label: str
    config: str
    train: bool = True
    method: Optional[str] = None
    cfg_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    weights: Mapping[str, Any] = field(default_factory=dict, hash=False)
    variant: Optional[str] = None
    note: Optional[str] = field(default=None, compare=False)

    @property
    def variant_name(self) -> str:
        """'' for a plain row, else ``variant`` or a digest of the overrides."""
        if self.variant or not (self.cfg_options or self.weights):
            return self.variant or ''
        blob = json.dumps([dict(self.cfg_options), dict(self.weights)], sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]


def method_row(key: str, label: Optional[str] = None, **kw) -> Row:
    """The row of a registered method (:mod:`benchmarks.methods`): its label, config, train."""
    m = get_method(key)
    return Row(label or m.label, m.config, m.train, method=m.key, **kw)


MAIN = get_method('aeroseg').config
# what a Table 2 row's configs do differently from the paper's method
T2_NOTES = {'scan': 'no CS-CLIP: crops scored by the original CLIP'}
ABL = 'configs/aeroseg/ablations/'


@dataclass(frozen=True)
class Table:
    """A paper table: rows x datasets x metrics, laid out as the paper lays it out.

    ``average``: the paper prints an "Average" over the datasets (per metric).
    ``layout``: ``'dataset_metric'`` (column groups per dataset, one column per metric).
    """
    id: str                      # 'T2' (as in paper_tables.csv)
    title: str
    rows: Tuple[Row, ...]
    datasets: Tuple[str, ...]    # dataset keys, in the paper's column order
    metrics: Tuple[str, ...]
    average: bool = False

    @property
    def number(self) -> int:
        return int(self.id.lstrip('T'))


TABLES: Tuple[Table, ...] = (
    Table('T2', 'Comparison with state-of-the-art open-vocabulary segmentation methods',
          tuple(method_row(k, note=T2_NOTES.get(k))
                for k in ('san', 'scan', 'sed', 'catseg', 'ovrs', 'aeroseg')),
          ALL_DS, HSU, average=True),
    Table('T3', 'Main components ablation (h-mIoU)', (
        Row('Baseline', ABL + 't3_baseline_{ds}.py'),
        Row('Config-A', ABL + 't3_config-a_{ds}.py'),
        Row('Config-B', ABL + 't3_config-b_{ds}.py'),
        Row('Config-C', MAIN),
    ), ALL_DS, ('h-mIoU',), average=True),
    Table('T4', 'Guidance encoder training strategy (h-mIoU)', (
        Row('Guidance fine-tuned', ABL + 't4_guidance-finetuned_{ds}.py'),
        Row('Guidance frozen', MAIN),
    ), ALL_DS, ('h-mIoU',), average=True),
    Table('T5', 'Semantic back-projection reconstruction target (h-mIoU)', (
        Row('Reconstruct RGB', ABL + 't5_target-rgb_{ds}.py'),
        Row('Reconstruct CLIP features', ABL + 't5_target-clip_{ds}.py'),
        Row('Reconstruct SAM features', MAIN),
    ), ALL_DS, ('h-mIoU',), average=True),
    Table('T6', 'Guidance encoders on iSAID', (
        Row('SAM ViT-L', MAIN),
        Row('SAM ViT-H', ABL + 't6_sam-vith_isaid.py'),
        Row('SAM2 Hiera-Base+', ABL + 't6_sam2-hierabp_isaid.py'),
        Row('SAM2.1 Hiera-Base+', ABL + 't6_sam21-hierabp_isaid.py'),
    ), ('isaid',), HSU),
    Table('T7', 'VL backbones on iSAID (supplementary)', (
        Row('CLIP ViT-B', MAIN),
        Row('CLIP ViT-L', ABL + 't7_clip-vitl14_isaid.py'),
        Row('GeoRSCLIP ViT-L', ABL + 't7_georsclip-vitl14_isaid.py'),
        Row('SkyCLIP ViT-L', ABL + 't7_skyclip-vitl14_isaid.py'),
    ), ('isaid',), HSU),
    Table('T8', 'Comparison with training-free SegEarth-OV (mIoU over all classes, supplementary)', (
        method_row('segearthov'),
        method_row('aeroseg'),
    ), ALL_DS, ('mIoU',)),
)


def dataset_label(key: str) -> str:
    """A dataset key as the tables print it (the cross-dataset targets' from splits.py)."""
    if key in DATASETS:
        return DATASETS[key]
    from aeroseg.datasets.splits import get_split
    return get_split(key).display


@dataclass(frozen=True)
class Cell:
    """One (table, row, dataset) group of cells; ``metrics`` are its columns."""
    table: str
    row: str
    dataset: str        # dataset key
    config: str         # config path relative to the repo root
    train: bool
    metrics: Tuple[str, ...]
    method: str = ''    # method key (the row's, else the config's folder under configs/)
    cfg_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    weights: Mapping[str, Any] = field(default_factory=dict, hash=False)
    variant: str = ''   # the row's variant_name

    @property
    def dataset_label(self) -> str:
        return DATASETS.get(self.dataset, self.dataset)


@dataclass(frozen=True)
class CrossCell(Cell):
    """A Table 9 cell group: ``label`` trained on ``source``, tested on ``dataset`` (the target)
    with the target's config. ``row`` = ``'<label> <Source>→<Target>'`` (unique per job and
    cell, as the runner's fills print it); ``source_config``: the Table 2 job's config whose
    ``final_weights.pth`` it tests ('' for a training-free row)."""
    source: str = ''
    label: str = ''
    source_config: str = ''


@dataclass
class JobSpec:
    """One unit of work: a config (one dataset, with its row's overrides) with one seed, shared
    by every cell it fills."""
    config: str
    dataset: str
    seed: int
    train: bool
    cells: List[Cell] = field(default_factory=list)
    method: str = ''
    cfg_options: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, Any] = field(default_factory=dict)
    variant: str = ''

    @property
    def key(self) -> Tuple[str, str, int]:
        return (self.config, self.variant, self.seed)

    def fills(self) -> List[str]:
        """Short labels of the cells this job fills, e.g. ``['T2 AerOSeg', 'T3 Config-C']``."""
        seen: List[str] = []
        for c in self.cells:
            s = f'{c.table} {c.row}'
            if s not in seen:
                seen.append(s)
        return seen


def _norm(s: str) -> str:
    return s.strip().lower()


def select_tables(tables: Sequence[Table], wanted: Optional[Iterable[str]]) -> List[Table]:
    """Tables named by ``wanted`` (``'2'``, ``'T2'``, ``'t2'``); all when ``wanted`` is empty."""
    if not wanted:
        return list(tables)
    by_id = {t.id.upper(): t for t in tables}
    out = []
    for w in wanted:
        k = str(w).strip().upper()
        k = k if k.startswith('T') else 'T' + k
        if k not in by_id:
            raise ValueError(f'unknown table {w!r}; known: {", ".join(sorted(by_id))}')
        if by_id[k] not in out:
            out.append(by_id[k])
    return out


def _dataset_keys(wanted: Optional[Iterable[str]]) -> Optional[set]:
    if not wanted:
        return None
    lookup = {_norm(k): k for k in DATASETS}
    lookup.update({_norm(v): k for k, v in DATASETS.items()})
    out = set()
    for w in wanted:
        if _norm(w) not in lookup:
            raise ValueError(f'unknown dataset {w!r}; known: {", ".join(DATASETS)} '
                             f'(or {", ".join(DATASETS.values())})')
        out.add(lookup[_norm(w)])
    return out


def _method_of(row: Row) -> str:
    """The row's method key, else its config's folder under ``configs/`` ('' outside it)."""
    if row.method:
        return row.method
    parts = row.config.replace('\\', '/').split('/')
    return parts[1] if len(parts) > 2 and parts[0] == 'configs' else ''


def cells(tables: Sequence[Table], methods: Optional[Iterable[str]] = None,
          datasets: Optional[Iterable[str]] = None) -> List[Cell]:
    """Every cell group of ``tables``, filtered.

    ``methods`` matches a row label (``'Config-A'``, ``'SAN'``) or a method key / folder
    (``'aeroseg'`` = every config under ``configs/aeroseg/``), case-insensitively.
    ``datasets`` takes keys (``isaid``) or labels (``iSAID``).
    """
    ds_keep = _dataset_keys(datasets)
    m_keep = {_norm(m) for m in methods} if methods else None
    if m_keep is not None:
        known = {_norm(r.label) for t in tables for r in t.rows}
        known |= {_norm(_method_of(r)) for t in tables for r in t.rows}
        unknown = m_keep - known
        if unknown:
            raise ValueError(f'unknown method(s) {sorted(unknown)}; rows of the selected tables: '
                             f'{sorted({r.label for t in tables for r in t.rows})}, method folders: '
                             f'{sorted({_method_of(r) for t in tables for r in t.rows})}')
    out = []
    for t in tables:
        for r in t.rows:
            if m_keep is not None and _norm(r.label) not in m_keep \
                    and _norm(_method_of(r)) not in m_keep:
                continue
            for ds in t.datasets:
                if ds_keep is not None and ds not in ds_keep:
                    continue
                out.append(Cell(t.id, r.label, ds, r.config.format(ds=ds), r.train, t.metrics,
                                _method_of(r), dict(r.cfg_options), dict(r.weights), r.variant_name))
    return out


def plan_jobs(cell_list: Sequence[Cell], seeds: Sequence[int] = (0,)) -> List[JobSpec]:
    """De-duplicate cells into jobs: one job per (config, variant, seed), in first-needed order.

    A config shared by several tables (the main AerOSeg config fills seven rows) runs once.
    A training-free row (``train=False``) is deterministic: it runs for the first seed only.
    Two cells that name the same config (and variant) but disagree on ``train``, the dataset or
    the overrides are a spec error.
    """
    jobs: Dict[Tuple[str, str, int], JobSpec] = {}
    seeds = list(seeds) or [0]
    for c in cell_list:
        for s in (seeds if c.train else seeds[:1]):
            key = (c.config, c.variant, int(s))
            job = jobs.get(key)
            if job is None:
                job = jobs[key] = JobSpec(c.config, c.dataset, int(s), c.train, method=c.method,
                                          cfg_options=c.cfg_options, weights=c.weights,
                                          variant=c.variant)
            elif (job.train, job.dataset, dict(job.cfg_options), dict(job.weights)) != \
                    (c.train, c.dataset, dict(c.cfg_options), dict(c.weights)):
                raise ValueError(f'spec error: {c.config}{"@" + c.variant if c.variant else ""} is '
                                 f'used as train={job.train}/{job.dataset} and as train={c.train}/'
                                 f'{c.dataset} (or with other overrides) ({c.table} {c.row})')
            job.cells.append(c)
    return list(jobs.values())


# ------------------------------------------------------------------ Table 9 (beyond the paper) ---
CROSS_METRICS = ('mIoU', 'seen-name mIoU', 'novel-name mIoU')


@dataclass(frozen=True)
class CrossTable:
    """A cross-dataset table of our own: each row's model trained on a source dataset (its
    Table 2 job) and tested on every other target with the target's full vocabulary.

    Row configs are templates over sources and targets alike (``{ds}``): the source job is
    ``row.config`` at the source, the test uses the method's config for the target (its
    preprocessing and test mode) with the source job's ``final_weights.pth``."""
    id: str
    title: str
    rows: Tuple[Row, ...]
    sources: Tuple[str, ...]
    targets: Tuple[str, ...]
    metrics: Tuple[str, ...] = CROSS_METRICS

    @property
    def number(self) -> int:
        return int(self.id.lstrip('T'))


CROSS_TABLES: Tuple[CrossTable, ...] = (
    CrossTable('T9', 'Cross-dataset zero-shot (beyond the paper): trained on one dataset, tested '
               'on the others', TABLES[0].rows + (method_row('segearthov'),), ALL_DS,
               ALL_DS + ('loveda', 'potsdam', 'vaihingen')),
)


def cross_cells(tables: Sequence[CrossTable], methods: Optional[Iterable[str]] = None,
                sources: Optional[Iterable[str]] = None) -> List[CrossCell]:
    """Every off-diagonal (row, source, target) cell group of ``tables``; ``methods`` as in
    :func:`cells`, ``sources`` filters the training datasets (keys or labels)."""
    keep = _dataset_keys(sources)
    m_keep = {_norm(m) for m in methods} if methods else None
    out = []
    for t in tables:
        for r in t.rows:
            if m_keep is not None and not m_keep & {_norm(r.label), _norm(_method_of(r))}:
                continue
            for src in t.sources:
                if keep is not None and src not in keep:
                    continue
                for tgt in t.targets:
                    if tgt == src:
                        continue
                    out.append(CrossCell(
                        t.id, f'{r.label} {dataset_label(src)}→{dataset_label(tgt)}', tgt,
                        r.config.format(ds=tgt), r.train, t.metrics, _method_of(r),
                        dict(r.cfg_options), dict(r.weights), r.variant_name, source=src,
                        label=r.label, source_config=r.config.format(ds=src) if r.train else ''))
    return out


# Training iterations stated by the paper (Sec. 4.2) for AerOSeg; the dry-run estimate falls back
# to them when a config (and so its train_cfg.max_iters) does not exist yet.
PAPER_ITERS: Mapping[str, int] = {'isaid': 10_000, 'dlrsd': 5_000, 'oem': 15_000}


def paper_iterations(dataset: str) -> int:
    return PAPER_ITERS[dataset]

"""The preflight: before any job starts (and in ``--dry-run``), every input a runnable job needs
that is not there, with where to get it, so a run stops before spending anything.

Per job: the dataset folders its config reads (``data_root`` + each ``data_prefix`` folder of the
test loader, and of the train loader when it trains; the generated mini data need none) and each
outside-weight file its config names (``aeroseg.hooks.outside_weights``: no method's fields are
known here). An open_clip tag such as ``'openai'`` is looked up in open_clip's download cache;
absent, it needs internet on first use (a blocker only with ``HF_HUB_OFFLINE=1``).

Where to get each input is read from the README's "Datasets" and "Checkpoints" tables (the one
source; the row naming the dataset, the file or the tag), with the paper's image counts from the
preparation tools (``aeroseg.datasets.prepare.<dataset>.PAPER_COUNTS``).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.common import REPO_ROOT
from benchmarks.runner.plan import Job, resolved

__all__ = ['Missing', 'job_inputs', 'preflight', 'format_report', 'readme_row', 'open_clip_cached']

README = REPO_ROOT / 'README.md'


@dataclass
class Missing:
    """One missing input: what (its role), the path or tag, where to get it, and the jobs needing it."""
    what: str
    path: str
    fix: str
    blocking: bool = True
    jobs: List[str] = field(default_factory=list)


def readme_row(section: str, key: str, readme: Path = README) -> Optional[List[str]]:
    """Cells of the first row of the README table under ``## <section>`` mentioning ``key``
    (case-insensitive); ``None`` without one."""
    try:
        lines = readme.read_text(encoding='utf-8').splitlines()
    except OSError:
        return None
    inside = False
    for ln in lines:
        if ln.startswith('## '):
            inside = ln[3:].strip().lower() == section.lower()
        elif inside and ln.startswith('|') and key.lower() in ln.lower():
            cells = [c.strip() for c in ln.strip().strip('|').split('|')]
            if not set(''.join(cells)) <= set('-: '):
                return cells
    return None


def _source(section: str, key: str, cols: Sequence[int]) -> str:
    row = readme_row(section, key)
    where = f'README.md "{section}"'
    if not row:
        return f'see {where}'
    return '; '.join(row[c] for c in cols if -len(row) <= c < len(row)) + f' ({where})'


def _abs(p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else REPO_ROOT / q  # jobs run from the repository root


def _dataset(ds_cfg):
    while ds_cfg is not None and 'dataset' in ds_cfg and 'data_root' not in ds_cfg:  # wrappers
        ds_cfg = ds_cfg['dataset']
    return ds_cfg


def _paper_counts(dataset: str) -> str:
    try:
        counts = importlib.import_module(f'aeroseg.datasets.prepare.{dataset}').PAPER_COUNTS
    except (ImportError, AttributeError):
        return ''
    return '; paper: ' + ' / '.join(f'{n:,} {s}' for s, n in counts.items()) + ' images'


def _data_inputs(job: Job, cfg, scale: str) -> List[Missing]:
    if scale == 'mini' and not job.data_root:
        return []  # generated on first use (aeroseg.mini.ensure_mini)
    loaders = ['test_dataloader'] + (['train_dataloader'] if job.spec.train else [])
    roots: Dict[str, List[str]] = {}
    for name in loaders:
        ds = _dataset((cfg.get(name) or {}).get('dataset'))
        root = job.data_root or (ds or {}).get('data_root')  # --data-root as the job passes it
        if not ds or not root:
            continue
        for sub in (ds.get('data_prefix') or {}).values():
            roots.setdefault(str(root), []).append(str(sub))
    out = []
    key = job.spec.dataset
    for root, subs in roots.items():
        base = _abs(root)
        empty = [s for s in dict.fromkeys(subs) if not (base / s).is_dir() or not any((base / s).iterdir())]
        if not empty:
            continue
        state = 'missing' if not base.is_dir() else f'lacks or has empty {", ".join(empty)}'
        out.append(Missing(
            f'dataset {key}', str(base),
            f'{state} (expects {", ".join(dict.fromkeys(subs))}{_paper_counts(key)}). Get: '
            + _source('Datasets', f'prepare {key} ', [1, 2]) + f', with --out {base}'))
    return out


def open_clip_cached(model_name: str, tag: str, cache_dir: Optional[str] = None) -> Optional[str]:
    """The file open_clip would load for ``model_name`` / ``tag`` when already downloaded (its
    Hugging Face hub cache or its URL cache ``~/.cache/clip``), else ``None``."""
    import open_clip
    cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
    if cfg.get('file'):
        return cfg['file'] if os.path.isfile(cfg['file']) else None
    if cfg.get('hf_hub'):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo, fname = os.path.split(cfg['hf_hub'])
            for f in ([fname] if fname else []) + ['open_clip_model.safetensors',
                                                   'open_clip_pytorch_model.bin']:
                hit = try_to_load_from_cache(repo, f, cache_dir=cache_dir)
                if isinstance(hit, str) and os.path.isfile(hit):
                    return hit
    if cfg.get('url'):
        p = Path(cache_dir or '~/.cache/clip').expanduser() / os.path.basename(cfg['url'])
        return str(p) if p.is_file() else None
    return None


def _hub_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
        return str(HF_HUB_CACHE)
    except ImportError:
        return '~/.cache/clip'


def _is_file_ref(v: str) -> bool:
    return '/' in v or os.sep in v or v.endswith(('.pt', '.pth', '.ckpt', '.bin', '.safetensors'))


def _weight_inputs(cfg) -> List[Missing]:
    from aeroseg.hooks import weight_fields
    try:
        fields = weight_fields(cfg.model)
    except (KeyError, TypeError):  # a model without the hooks: nothing to check here
        return []
    out = []
    for role, key in fields.items():
        *parents, leaf = key.split('.')
        node = cfg.model
        for p in parents:
            node = node[p]
        v = node.get(leaf)
        if not isinstance(v, str) or not v:
            continue
        if _is_file_ref(v) or _abs(v).is_file():
            if not _abs(v).is_file():
                out.append(Missing(f'{role} weights (model.{key})', v,
                                   'missing. Get: ' + _source('Checkpoints', os.path.basename(v), [-1])))
            continue
        model_name = node.get('model_name', '?')
        if open_clip_cached(model_name, v, node.get('cache_dir')):
            continue
        offline = os.environ.get('HF_HUB_OFFLINE', '') not in ('', '0')
        out.append(Missing(
            f'{role} weights (model.{key})', f'{v!r} ({model_name})',
            f'not in open_clip\'s download cache ({node.get("cache_dir") or _hub_cache()}): '
            f'needs internet on first use'
            + (' (HF_HUB_OFFLINE is set)' if offline else '')
            + f', or set model.{key} to a local open_clip file. Get: '
            + _source('Checkpoints', v, [-1]), blocking=offline))
    return out


def job_inputs(job: Job, scale: str) -> List[Missing]:
    """What ``job`` needs and does not find (empty when everything is there)."""
    cfg = resolved(job, scale)
    return _data_inputs(job, cfg, scale) + _weight_inputs(cfg)


def preflight(jobs: Sequence[Job], scale: str) -> List[Missing]:
    """The missing inputs of every runnable job, each once with the jobs needing it."""
    found: Dict[tuple, Missing] = {}
    for j in jobs:
        if not j.state.runnable:
            continue
        for m in job_inputs(j, scale):
            found.setdefault((m.what, m.path), m).jobs.append(j.label)
    return list(found.values())


def format_report(missing: Sequence[Missing], n_jobs: int) -> str:
    """One block: each missing input, the jobs needing it and where to get it."""
    if not missing:
        return f'Preflight: every input of the {n_jobs} runnable jobs is there.'
    block = sum(m.blocking for m in missing)
    lines = [f'Preflight: {len(missing)} input(s) missing ({block} that stop the run):']
    for m in missing:
        lines.append(f'  - {"MISSING" if m.blocking else "NETWORK"} {m.what}: {m.path}: {m.fix}')
        lines.append(f'      needed by {len(m.jobs)} job(s): {", ".join(m.jobs)}')
    return '\n'.join(lines)

"""Figures from the runner's results: per-class IoU bars and the paper's Fig. 5 grid (PNG).

    python -m benchmarks.figures [--scale mini] [--what per-class fig5] [--data-root DIR]

* ``per_class_iou_<ds>.png`` from ``results/<scale>/runs.csv`` (its ``iou_per_class`` column, mean
  over the finished seeds): one group of bars per class, one bar per method, the seen classes
  first and the unseen ones after them on a shaded band; methods without a finished run are named
  in the figure ("not run: ...").
* ``fig5_<ds>.png``, the paper's Fig. 5 layout: one row per image of a fixed list of val images
  (``FIG5_IMAGES`` per dataset, else ``--num-images`` evenly spaced over the sorted val names),
  columns image, ground truth and each method's prediction, the legend marking unseen classes.
  Predictions come from the runner's work dir: ``<work-dirs>/<scale>/<config without configs/ and
  .py>/seed0/final_weights.pth`` (training-free methods need none); a method whose config or
  checkpoint is missing is skipped, and the figure and the command's output say which and why.

Colours are the dataset palettes of :mod:`aeroseg.datasets.splits`. Both go to
``results/<scale>/figures/``. The method list is the benchmarks' own (``benchmarks.methods`` when
present, else the Table 2 and Table 8 rows of ``benchmarks.tables``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from aeroseg.datasets.splits import get_split
from aeroseg.visualize import colourise, legend_handles

__all__ = ['MethodSpec', 'method_list', 'per_class_iou', 'plot_per_class', 'fig5', 'main',
           'FIG5_IMAGES', 'checkpoint_path']

REPO = Path(__file__).resolve().parents[1]
DATASETS = OrderedDict([('isaid', 'iSAID'), ('dlrsd', 'DLRSD'), ('oem', 'OEM')])
# Fixed val images per dataset for Fig. 5 (names without extension); empty = evenly spaced picks.
FIG5_IMAGES: Dict[str, Tuple[str, ...]] = {}


@dataclass(frozen=True)
class MethodSpec:
    label: str
    config: str          # template with {ds}
    train: bool = True

    def config_for(self, ds: str) -> str:
        return self.config.format(ds=ds)


def method_list() -> List[MethodSpec]:
    """Every method of the benchmarks, in the paper's Table 2 order, then the training-free ones."""
    try:
        from benchmarks.methods import methods
        return [MethodSpec(m.label, m.config, m.train) for m in methods()]
    except ImportError:
        from benchmarks.tables import TABLES
        out: Dict[str, MethodSpec] = {}
        for t in TABLES:
            if t.id in ('T2', 'T8'):
                for r in t.rows:
                    out.setdefault(r.label, MethodSpec(r.label, r.config, r.train))
        return list(out.values())


def checkpoint_path(work_dirs: Path, scale: str, config: str, seed: int = 0) -> Path:
    """The runner's final weights of ``config``: <work_dirs>/<scale>/<config rel>/seed<k>/final_weights.pth."""
    rel = config[len('configs/'):] if config.startswith('configs/') else config
    return Path(work_dirs) / scale / rel[:-3] / f'seed{seed}' / 'final_weights.pth'


# ---------------------------------------------------------------- per-class IoU bars
def per_class_iou(runs_csv: Path, ds: str, methods: Sequence[MethodSpec]):
    """(classes seen-then-unseen, n_seen, {method label: [IoU per class]}, [labels without a run])."""
    split = get_split(ds)
    rows = list(csv.DictReader(open(runs_csv, newline='')))
    order = list(split.seen) + list(split.unseen)
    classes = [split.classes[i] for i in order]
    values, missing = OrderedDict(), []
    for m in methods:
        cfg = m.config_for(ds)
        per_seed = [json.loads(r['iou_per_class']) for r in rows
                    if r.get('config') == cfg and r.get('status') == 'ok' and r.get('iou_per_class')]
        if not per_seed:
            missing.append(m.label)
            continue
        values[m.label] = [float(np.mean([s[c] for s in per_seed if c in s]))
                           if any(c in s for s in per_seed) else float('nan') for c in classes]
    return classes, len(split.seen), values, missing


def plot_per_class(path: Path, title: str, classes: Sequence[str], n_seen: int,
                   values: Dict[str, List[float]], missing: Sequence[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    k, m = len(classes), max(len(values), 1)
    fig = Figure(figsize=(max(8.0, 0.62 * k + 2), 4.6), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.07, 0.32, 0.91, 0.58])
    x = np.arange(k)
    width = 0.8 / m
    ax.axvspan(n_seen - 0.5, k - 0.5, color='0.9', zorder=0)
    for j, (label, v) in enumerate(values.items()):
        ax.bar(x - 0.4 + width * (j + 0.5), v, width, label=label, zorder=2)
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=45, ha='right', fontsize=8)
    for t in ax.get_xticklabels()[n_seen:]:
        t.set_fontstyle('italic')
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(0, 100)
    ax.set_ylabel('IoU (%)')
    ax.grid(axis='y', color='0.8', linewidth=0.5, zorder=1)
    ax.text((n_seen - 1) / 2, 97, 'seen', ha='center', va='top', fontsize=9)
    ax.text((n_seen + k - 1) / 2, 97, 'unseen (italic)', ha='center', va='top', fontsize=9)
    ax.set_title(title, fontsize=10)
    if values:
        ax.legend(fontsize=8, ncol=min(m, 6), loc='upper center', bbox_to_anchor=(0.5, -0.42),
                  frameon=False)
    if missing:
        fig.text(0.99, 0.01, 'not run: ' + ', '.join(missing), ha='right', va='bottom', fontsize=7,
                 color='0.35')
    _save(fig, path)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.part.png')
    fig.savefig(tmp, format='png')
    os.replace(tmp, path)


# ---------------------------------------------------------------- Fig. 5 grid
def _data_root(ds: str, scale: str, data_root: Optional[str]) -> Path:
    if data_root is not None:
        return Path(data_root) / ds
    if scale == 'mini':
        from aeroseg.mini import ensure_mini
        return Path(ensure_mini(ds))
    return REPO / 'data' / ds


def _val_images(root: Path, ds: str, num: int) -> List[Tuple[Path, Path]]:
    img_dir, ann_dir = root / 'img_dir' / 'val', root / 'ann_dir' / 'val'
    if not img_dir.is_dir():
        raise FileNotFoundError(f'{img_dir}: no val images; pass --data-root (a folder holding {ds}/)')
    imgs = {p.stem: p for p in sorted(img_dir.iterdir()) if p.suffix.lower() in ('.png', '.jpg', '.tif')}
    names = list(FIG5_IMAGES.get(ds) or ())
    if not names:
        stems = sorted(imgs)
        names = [stems[int(i)] for i in np.linspace(0, len(stems) - 1, min(num, len(stems)))]
    missing = [n for n in names if n not in imgs]
    if missing:
        raise FileNotFoundError(f'{img_dir}: Fig. 5 images {missing} not found (FIG5_IMAGES)')
    return [(imgs[n], ann_dir / f'{n}.png') for n in names]


def fig5(ds: str, scale: str, work_dirs: Path, out: Path, methods: Sequence[MethodSpec],
         data_root: Optional[str] = None, num_images: int = 3, device: str = 'cpu'):
    """Draw ``fig5_<ds>.png``; returns (path or None when no method could predict, {label: why skipped})."""
    from PIL import Image

    from aeroseg.apis import init_model, segment
    split = get_split(ds)
    samples = _val_images(_data_root(ds, scale, data_root), ds, num_images)
    preds: Dict[str, List[np.ndarray]] = OrderedDict()
    skipped: Dict[str, str] = OrderedDict()
    for m in methods:
        cfg = m.config_for(ds)
        if not (REPO / cfg).is_file():
            skipped[m.label] = f'no config {cfg} (not implemented)'
            continue
        ckpt = checkpoint_path(work_dirs, scale, cfg) if m.train else None
        if ckpt is not None and not ckpt.is_file():
            skipped[m.label] = f'no checkpoint {ckpt}'
            continue
        model = init_model(str(REPO / cfg), None if ckpt is None else str(ckpt), device=device,
                           scale=scale)
        preds[m.label] = [segment(model, str(img), split.classes) for img, _ in samples]
        del model
    if not preds:
        return None, skipped
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    cols = ['image', 'ground truth', *preds]
    n, c = len(samples), len(cols)
    fig = Figure(figsize=(1.9 * c, 1.9 * n + 1.6), dpi=150)
    FigureCanvasAgg(fig)
    bottom = 1.5 / fig.get_figheight()
    grid = fig.add_gridspec(n, c, left=0.01, right=0.99, top=1 - 0.3 / fig.get_figheight(),
                            bottom=bottom, wspace=0.04, hspace=0.04)
    for i, (img, ann) in enumerate(samples):
        rgb = np.asarray(Image.open(img).convert('RGB'))
        gt = np.asarray(Image.open(ann)) if ann.is_file() else np.full(rgb.shape[:2], 255, np.uint8)
        panels = [rgb, colourise(gt, split.palette)] + [colourise(p[i], split.palette) for p in preds.values()]
        for j, panel in enumerate(panels):
            ax = fig.add_subplot(grid[i, j])
            ax.imshow(panel, interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(img.stem, fontsize=6)
    names = [f'{name} (unseen)' if k in split.unseen else name for k, name in enumerate(split.classes)]
    fig.legend(handles=legend_handles(names, split.palette), loc='lower center', ncol=min(5, len(names)),
               fontsize=6, frameon=False, bbox_to_anchor=(0.5, 0.0))
    note = f'{split.display}, {scale} scale; ignore = black'
    if skipped:
        note += '; skipped: ' + ', '.join(f'{k} ({" ".join(v.split()[:2])})' for k, v in skipped.items())
    fig.text(0.01, bottom - 0.02, note, fontsize=5, color='0.35', va='top')
    path = out / f'fig5_{ds}.png'
    _save(fig, path)
    return path, skipped


# ---------------------------------------------------------------- command
def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--scale', default='mini', choices=('mini', 'full'))
    p.add_argument('--results', default=str(REPO / 'results'), help='holds <scale>/runs.csv')
    p.add_argument('--work-dirs', default=str(REPO / 'work_dirs' / 'bench'),
                   help="the runner's work dirs (holds <scale>/<config>/seed0/final_weights.pth)")
    p.add_argument('--what', nargs='+', default=['per-class', 'fig5'], choices=('per-class', 'fig5'))
    p.add_argument('--datasets', nargs='+', default=list(DATASETS), choices=list(DATASETS))
    p.add_argument('--data-root', default=None, help='folder holding <dataset>/ (default: the mini '
                   'world at --scale mini, data/ at full scale)')
    p.add_argument('--num-images', type=int, default=3, help='Fig. 5 rows per dataset')
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)
    out = Path(args.results) / args.scale / 'figures'
    methods = method_list()
    runs = Path(args.results) / args.scale / 'runs.csv'
    for ds in args.datasets:
        if 'per-class' in args.what:
            if not runs.is_file():
                print(f'per-class: {runs} not found; run the benchmarks first', file=sys.stderr)
                return 2
            classes, n_seen, values, missing = per_class_iou(runs, ds, methods)
            path = out / f'per_class_iou_{ds}.png'
            plot_per_class(path, f'{DATASETS[ds]}: per-class IoU ({args.scale} scale, mean over seeds)',
                           classes, n_seen, values, missing)
            print(f'{path}: {", ".join(values) or "no method"}'
                  + (f'; not run: {", ".join(missing)}' if missing else ''))
        if 'fig5' in args.what:
            path, skipped = fig5(ds, args.scale, Path(args.work_dirs), out, methods, args.data_root,
                                 args.num_images, args.device)
            for label, why in skipped.items():
                print(f'fig5 {ds}: skipped {label}: {why}')
            print(f'fig5 {ds}: ' + (str(path) if path else 'not drawn: no method has a checkpoint '
                                    f'under {args.work_dirs}/{args.scale} (train them with ./run_all.sh)'))
    return 0


if __name__ == '__main__':
    from aeroseg.utils.process import exit_now
    exit_now(main())

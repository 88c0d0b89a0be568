"""Cost of one training step per method at FULL size: parameters, step time, peak memory.

    python -m benchmarks.model_cost [--methods catseg ovrs aeroseg] [--batch 1]
        [--device cpu|cuda] [--amp bf16|fp16|none] [--steps N] [--json out.json]

For each method the full iSAID config is built (the method's own config, :mod:`benchmarks.methods`,
for every trained method whose iSAID config exists; or any config path given in ``--methods``)
with RANDOM weights of the official architectures: no weights can be fetched here, so every
outside weight the model names (``aeroseg.hooks.clear_outside_weights``: CLIP, guidance encoder)
is set to ``None`` (an OpenAI CLIP's QuickGELU is kept, so the compute graph is the official one).
Parameter counts, time and memory do not depend on the weights' values.

One training step = ``model.train(); losses = model.loss(x, samples); sum(losses).backward()``
on inputs (B, 3, 384, 384) in 0..255 with random labels (a quarter of each label map ignored);
no optimiser step. Time: one warm-up step, then the mean of ``--steps`` steps (default 1 on CPU,
5 on CUDA; CUDA synchronised around each step). Wall time on a shared CPU box depends on what
else runs, so the process CPU time of the step (all threads summed) and the 1-minute load
average are reported beside it.

Memory: each method runs in its own fresh subprocess, so the numbers are not polluted by the
previous method. CPU: the process's peak resident set (``ru_maxrss``: imports + model + step) and
the resident set just before the first step (the model and inputs), so the step's own
increment is ``peak - before`` (psutil is not needed). CUDA: ``torch.cuda.max_memory_allocated``
over the timed steps, model weights included.

Imports: ``mmseg.utils`` (and mmseg's losses) import ``mmcv.ops``, whose ``__init__`` loads the
compiled extension ``mmcv._ext``. On a machine whose mmcv has no compiled ops (e.g. a GPU box with
a pure-Python mmcv), :func:`_shim_mmcv_ops` installs a stand-in ``mmcv.ops`` that serves the
pure-torch ``point_sample`` and raises a clear error for any compiled op if called; none is
used by these models. The printout says when the stand-in was used.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks.common import REPO_ROOT, register_all
from benchmarks.methods import methods

WEIGHTS_NOTE = ('random weights of the official architectures (every outside weight, e.g. CLIP '
                'and guidance encoder, set to None): no weights can be downloaded here')

__all__ = ['method_configs', 'build_full_model', 'make_batch', 'num_classes_of', 'count_params',
           'train_step', 'measure', 'main']


def method_configs() -> Dict[str, str]:
    """Method key -> its iSAID config, for every trained method whose config exists."""
    return {m.key: m.config_for('isaid') for m in methods()
            if m.train and (REPO_ROOT / m.config_for('isaid')).is_file()}


# ----------------------------------------------------------------------------- imports
def _shim_mmcv_ops() -> Optional[str]:
    """Make ``import mmcv.ops`` work without the compiled ``mmcv._ext`` (see module docstring).

    Returns a note when the stand-in was installed, ``None`` when the real ``mmcv.ops`` imports.
    """
    try:
        import mmcv.ops  # noqa: F401
        return None
    except ImportError as e:  # the extension (or one of its symbols) is missing
        err = e
    import importlib.util
    import mmcv

    for k in [k for k in sys.modules if k == 'mmcv.ops' or k.startswith('mmcv.ops.')]:
        del sys.modules[k]
    ops_dir = Path(mmcv.__file__).parent / 'ops'
    stub = types.ModuleType('mmcv.ops')
    stub.__path__ = [str(ops_dir)]  # so the pure-torch submodules still import
    stub.__file__ = str(ops_dir / '__init__.py')
    sys.modules['mmcv.ops'] = stub
    mmcv.ops = stub
    spec = importlib.util.spec_from_file_location('mmcv.ops.point_sample', ops_dir / 'point_sample.py')
    ps = importlib.util.module_from_spec(spec)
    sys.modules['mmcv.ops.point_sample'] = ps
    spec.loader.exec_module(ps)
    stub.point_sample = ps.point_sample
    stub.bilinear_grid_sample = ps.bilinear_grid_sample

    def _missing(name):
        def op(*a, **k):
            raise RuntimeError(f'mmcv.ops.{name} needs mmcv compiled with ops (mmcv._ext: {err}); '
                               'install the mmcv built by tools/bootstrap.sh')
        op.__name__ = name
        return op

    def __getattr__(name):  # PEP 562: `from mmcv.ops import X` for any compiled op
        if name.startswith('__'):
            raise AttributeError(name)
        return _missing(name)

    stub.__getattr__ = __getattr__
    return f'mmcv._ext unavailable ({err}); mmcv.ops replaced by a pure-torch stand-in'


def _setup_imports() -> Optional[str]:
    note = _shim_mmcv_ops()
    from mmseg.utils import register_all_modules
    register_all_modules()
    register_all()  # our modules and the baselines (their hooks)
    return note


# ----------------------------------------------------------------------------- building
def resolve_config(method: str) -> str:
    """A method key of :func:`method_configs` or a config path."""
    known = method_configs()
    if method in known:
        return str(REPO_ROOT / known[method])
    if method.endswith('.py'):
        p = Path(method)
        p = p if p.is_absolute() else (Path.cwd() / p if (Path.cwd() / p).exists() else REPO_ROOT / p)
        if not p.is_file():
            raise FileNotFoundError(f'config not found: {method!r}')
        return str(p)
    raise KeyError(f'unknown method {method!r}: use one of {sorted(known)} or a config path')


def build_full_model(config: str):
    """The config's model at full size with random weights (see module docstring)."""
    from aeroseg.config import load_config
    from aeroseg.hooks import clear_outside_weights, outside_weights, weight_fields
    from mmseg.registry import MODELS

    cfg = load_config(config)
    m = cfg.model
    vl = outside_weights(m).get('vl')
    if vl is not None:  # keep the activation the real weights would select (open_clip tags)
        vl_cfg = _parent(m, weight_fields(m)['vl'])
        if vl_cfg.get('quick_gelu') is None:
            import open_clip
            tag = open_clip.get_pretrained_cfg(vl_cfg.model_name, vl) or {}
            vl_cfg.quick_gelu = bool(tag.get('quick_gelu', False))
    clear_outside_weights(m)
    return MODELS.build(m), cfg


def _parent(cfg, dotted: str):
    """The dict holding the last key of ``dotted`` (the VL encoder's own config)."""
    for k in dotted.split('.')[:-1]:
        cfg = cfg[k]
    return cfg


def make_batch(num_classes: int, batch: int = 1, size: int = 384, seed: int = 0, device='cpu'):
    """Inputs (B, 3, size, size) in 0..255 and SegDataSamples whose ``gt_sem_seg`` holds random
    ids 0..num_classes-1 of the dataset's full id space (top quarter = 255, ignored)."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(seed)
    imgs = (torch.rand(batch, 3, size, size, generator=g) * 255).to(device)
    samples = []
    for _ in range(batch):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        lab = torch.randint(0, num_classes, (1, size, size), generator=g)
        lab[:, : size // 4] = 255
        s.gt_sem_seg = PixelData(data=lab.to(device))
        samples.append(s)
    return imgs, samples


def num_classes_of(cfg) -> int:
    """Classes of the config's dataset split (labels are drawn from its full id space)."""
    from aeroseg.datasets.splits import get_split
    split = cfg.model.get('vocabulary', {}).get('split')
    if not split:
        raise ValueError('model.vocabulary.split is not set in the config: cannot draw labels')
    return get_split(split).num_classes


def count_params(model) -> Dict[str, Dict[str, int]]:
    """Total / trainable (requires_grad) parameters, overall and per top-level child."""
    out = {'all': {'total': 0, 'trainable': 0}}
    for name, p in model.named_parameters():
        part = name.split('.', 1)[0]
        d = out.setdefault(part, {'total': 0, 'trainable': 0})
        for dd in (d, out['all']):
            dd['total'] += p.numel()
            dd['trainable'] += p.numel() if p.requires_grad else 0
    return out


def train_step(model, imgs, samples, amp: str = 'none') -> Dict[str, float]:
    """One forward + backward (no optimiser step); returns the loss values."""
    import torch
    model.train()
    model.zero_grad(set_to_none=True)
    dev = imgs.device.type
    if amp == 'none':
        losses = model.loss(imgs, samples)
    else:
        dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}[amp]
        with torch.autocast(device_type=dev, dtype=dtype):
            losses = model.loss(imgs, samples)
    total = sum(losses.values())
    total.backward()
    return {k: float(v.detach().float()) for k, v in losses.items()}


def _rss_now_gb() -> Optional[float]:
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    except OSError:
        return None


def _maxrss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**30 if sys.platform == 'darwin' else kb / 2**20


def _device_name(device: str) -> str:
    import torch
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                name = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return f'CPU {name} ({torch.get_num_threads()} threads)'


def measure(method: str, batch: int = 1, device: str = 'cpu', amp: str = 'none',
            steps: Optional[int] = None, threads: int = 2, seed: int = 0) -> dict:
    """Build ``method`` and time / measure its training step in THIS process."""
    import torch
    shim = _setup_imports()
    if device == 'cpu':
        torch.set_num_threads(threads)
    elif device.startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError('--device cuda asked for, but torch sees no CUDA device')
    steps = steps if steps is not None else (1 if device == 'cpu' else 5)
    config = resolve_config(method)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model, cfg = build_full_model(config)
    build_s = time.perf_counter() - t0
    model.to(device)
    params = count_params(model)
    imgs, samples = make_batch(num_classes_of(cfg), batch, seed=seed, device=device)
    cuda = device.startswith('cuda')

    def sync():
        if cuda:
            torch.cuda.synchronize()

    rss_before = _rss_now_gb()
    sync()
    t0 = time.perf_counter()
    losses = train_step(model, imgs, samples, amp)
    sync()
    warmup_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times, cpu_times = [], []
    for _ in range(steps):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        losses = train_step(model, imgs, samples, amp)
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    res = dict(
        method=method, config=os.path.relpath(config, REPO_ROOT), batch=batch, device=device,
        device_name=_device_name(device), amp=amp, steps=steps, threads=torch.get_num_threads(),
        params=params, build_s=round(build_s, 2), warmup_s=round(warmup_s, 3),
        step_s=round(sum(times) / len(times), 3), step_times_s=[round(t, 3) for t in times],
        step_cpu_s=round(sum(cpu_times) / len(cpu_times), 3),
        loadavg_1min=round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg') else None,
        losses=losses, losses_finite=all(v == v and abs(v) != float('inf') for v in losses.values()),
        peak_rss_gb=round(_maxrss_gb(), 3),
        rss_before_step_gb=None if rss_before is None else round(rss_before, 3),
        peak_gpu_mem_gb=round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if cuda else None,
        torch=torch.__version__, weights=WEIGHTS_NOTE, mmcv_ops_note=shim)
    return res


# ----------------------------------------------------------------------------- driver
def _run_in_subprocess(method: str, args) -> dict:
    """One fresh interpreter per method, so its ru_maxrss is its own."""
    cmd = [sys.executable, '-m', 'benchmarks.model_cost', '--_worker', method,
           '--batch', str(args.batch), '--device', args.device, '--amp', args.amp,
           '--threads', str(args.threads), '--seed', str(args.seed)]
    if args.steps is not None:
        cmd += ['--steps', str(args.steps)]
    env = dict(os.environ)
    env['PYTHONPATH'] = str(REPO_ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    p = subprocess.run(cmd, cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith('MODEL_COST_JSON ')]
    if p.returncode != 0 or not lines:
        return dict(method=method, error=f'worker exited with {p.returncode} (its stderr is above)')
    return json.loads(lines[-1][len('MODEL_COST_JSON '):])


def format_table(rows: List[dict]) -> str:
    head = ['method', 'params total (M)', 'trainable (M)', 'step time (s)', 'CPU time (s)',
            'peak mem (GB)', 'mem before step (GB)', 'device']
    body = []
    for r in rows:
        if 'error' in r:
            body.append([r['method'], '-', '-', '-', '-', '-', '-', r['error']])
            continue
        p = r['params']['all']
        if r['peak_gpu_mem_gb'] is not None:
            mem, before = f"{r['peak_gpu_mem_gb']:.2f} (GPU alloc)", '-'
        else:
            mem = f"{r['peak_rss_gb']:.2f} (RSS)"
            before = '-' if r['rss_before_step_gb'] is None else f"{r['rss_before_step_gb']:.2f}"
        body.append([r['method'], f"{p['total'] / 1e6:.1f}", f"{p['trainable'] / 1e6:.2f}",
                     f"{r['step_s']:.2f}", f"{r['step_cpu_s']:.2f}", mem, before,
                     r['device_name'] + (f", load {r['loadavg_1min']}" if r['device'] == 'cpu' else '')])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = ' | '.join('{:<%d}' % w for w in widths)
    lines = [fmt.format(*head), '-+-'.join('-' * w for w in widths)]
    lines += [fmt.format(*row) for row in body]
    return '\n'.join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog='python -m benchmarks.model_cost', description=__doc__.split('\n')[0])
    ap.add_argument('--methods', nargs='+', default=list(method_configs()),
                    help=f'method keys {sorted(method_configs())} or config paths')
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    ap.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none',
                    help='autocast dtype (fp16 without a GradScaler: fine for timing)')
    ap.add_argument('--steps', type=int, default=None, help='timed steps (default 1 on CPU, 5 on CUDA)')
    ap.add_argument('--threads', type=int, default=2, help='torch CPU threads (this machine: 2 shared cores)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', default=None, help='write all results to this JSON file')
    ap.add_argument('--in-process', action='store_true',
                    help='run methods in this process (peak RSS then accumulates across methods)')
    ap.add_argument('--_worker', default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error('--batch must be >= 1')
    if not (args.device == 'cpu' or args.device.startswith('cuda')):
        ap.error("--device must be 'cpu' or 'cuda[:N]'")
    for m in args.methods:
        try:
            resolve_config(m)
        except (KeyError, FileNotFoundError) as e:
            ap.error(str(e))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    kw = dict(batch=args.batch, device=args.device, amp=args.amp, steps=args.steps,
              threads=args.threads, seed=args.seed)
    if args._worker:
        res = measure(args._worker, **kw)
        print('MODEL_COST_JSON ' + json.dumps(res), flush=True)
        return 0
    rows = []
    for m in args.methods:
        print(f'[model_cost] {m}: building and stepping '
              f'({args.device}, batch {args.batch}, amp {args.amp}) ...', flush=True)
        rows.append(measure(m, **kw) if args.in_process else _run_in_subprocess(m, args))
        r = rows[-1]
        if 'error' not in r:
            print(f"[model_cost] {m}: step {r['step_s']} s (warm-up {r['warmup_s']} s), losses "
                  f"{ {k: round(v, 4) for k, v in r['losses'].items()} }", flush=True)
    print()
    print(f'Full-size training step (forward + backward, no optimiser step), batch {args.batch}, '
          f'input 384x384, amp {args.amp}; ' + WEIGHTS_NOTE + '.')
    print(format_table(rows))
    notes = {r.get('mmcv_ops_note') for r in rows if r.get('mmcv_ops_note')}
    for n in notes:
        print('note:', n)
    if args.json:
        out = dict(rows=rows, argv=sys.argv[1:], note=WEIGHTS_NOTE)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f'wrote {args.json}')
    return 1 if any('error' in r for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())

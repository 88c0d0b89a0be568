"""Every method's cost side by side, in ONE process on one device, with ratios to CAT-Seg.

    python -m benchmarks.speed [--methods catseg ovrs ...] [--scales full mini] [--device cpu|cuda]
        [--batch N] [--amp none|bf16|fp16] [--repeats N] [--threads 2] [--out results/speed]
        [--datasets isaid dlrsd oem] [--no-compare] [--compare-scale mini|full] [--no-process]
        [--against COMMIT] [--malloc retain|system] [--json out.json]

For every method of the suite's method list (:mod:`benchmarks.methods`; a method whose config
does not exist yet gets a "not built" row), at full size on its iSAID config and at mini scale
on each dataset's config (``--datasets``; the class count sets the per-class work, so the
dry-run reads the row of a job's own dataset):

* training step = ``zero_grad`` + ``model.loss`` + backward + AdamW step on the method's own input
  size (its ``data_preprocessor.size``, else the train pipeline's crop): CAT-Seg / OVRS / AerOSeg
  384 (AerOSeg's SAM resizes to 1024 inside), SAN 640; batch ``--batch``, default 1 at full size
  (CPU budget; the paper's recipe is 4) and the recipe's ``train_dataloader.batch_size`` at mini;
  training-free methods (SegEarth-OV) have none;
* inference per image = ``model.predict_logits`` of one image in the method's own test mode
  (whole / slide, the config's ``test_cfg``) at the test pipeline's size for a square image
  (the ``Resize`` scale's short side: 640 full, 448 SegEarth-OV, 128 mini), under ``no_grad``;
* FLOPs per step / per image (``torch.utils.flop_counter.FlopCounterMode``: matmuls and
  convolutions, forward and backward; element-wise work is not counted), achieved FLOP/s and that
  as a fraction of the device's PEAK, measured here as the median FLOP/s of a 2048 x 2048 fp32
  matmul on CPU (8192 on CUDA; bf16 too with ``--amp bf16``) with the same threads;
* peak memory: on CPU the call's own working set = (peak resident set while it runs, sampled by a
  thread every 2 ms) - (resident set before) + the bytes of the model's tensors (weights, buffers,
  gradients, optimiser state), so earlier methods in the process do not count; the process peak
  RSS is kept too. On CUDA ``torch.cuda.max_memory_allocated`` over the call (weights included);
* every figure also as a ratio to CAT-Seg's at the same scale in the same run;
* at mini scale, what a mini job's train and test PROCESS cost beyond that compute (imports,
  build, checkpoints, exit: :mod:`benchmarks.process_cost`, the real entry points cut to 2 steps /
  2 images at the same threads; ``--no-process`` skips it), which the dry-run adds per process.

Timing: the FLOP-counting call is also the warm-up of the training step (inference gets one
more call first, so that what an evaluation computes once, the test vocabulary's text
embeddings, is not counted per image), then the median of ``--repeats`` calls (default 1 at full size, 3 at mini), CUDA synchronised around each;
wall time, the process CPU time (all threads) and the 1-minute load average are reported, since
the CPU boxes are shared. Full-size models get RANDOM weights of the official architectures
(:func:`build_full_model`: nothing can be downloaded here; cost does not depend on the values),
mini models the mini world's own weights.

Before / after (``--no-compare`` skips it): each speed change of the suite (:data:`CHANGES`) is
switched off and on in the same process, repeats interleaved (off, on, off, on, ...), at mini
scale (``--compare-scale full``: the full-size models) on the methods it applies to; the table
gives both medians, their ratio and the largest score difference between the two (the equality
bound its test states). The allocator policy (:mod:`aeroseg.utils.malloc`), which one process
cannot switch back, is timed in fresh processes instead (``retain_memory``, mini, CPU).
``--against COMMIT`` also times the suite's code at COMMIT against this checkout, each in its own
fresh processes (:func:`compare_commit`; rows ``code@<commit>``): the before of a change as it
was, where an off switch only approximates it.

Writes ``<out>/<device>.csv`` + ``.md`` (table and before/after) and ``<out>/<device>_changes.csv``,
each atomically; ``<device>`` is :func:`device_slug` of the CUDA device name or the CPU model,
vector ISA and thread count (``cpu-amd-epyc-avx512-2-threads``). ``python -m benchmarks.run
--dry-run`` reads the CSV of this machine's device (:func:`load_speed`). ``python -m
benchmarks.model_cost`` is this module at full size, training step only.

Imports: ``mmseg.utils`` imports ``mmcv.ops``, whose ``__init__`` loads the compiled
``mmcv._ext``; on a machine whose mmcv has none (a GPU box with a pure-Python mmcv)
:func:`_shim_mmcv_ops` installs a stand-in serving the pure-torch ``point_sample`` and raising a
clear error for any compiled op if called (none is used by these models); the output says so.
"""
from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import types
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import REPO_ROOT, atomic_write_text, register_all
from benchmarks.methods import Method, methods

WEIGHTS_NOTE = ('full size: random weights of the official architectures (every outside weight, '
                'e.g. CLIP and guidance encoder, set to None; no downloads); mini: the mini '
                "world's weights")
REFERENCE = 'catseg'
SCALES = ('full', 'mini')
SPEED_DIR = REPO_ROOT / 'results' / 'speed'
DATASETS = ('isaid', 'dlrsd', 'oem')
# rows measured by default: the class count of each dataset's config sets the per-class work
# (cost volume, class attention, decoder per class: mini AerOSeg jobs take 150 s on OEM's 8
# classes, 213 s on iSAID's 15; docs/measurements.md); full size: iSAID only (CPU budget)
DEFAULT_DATASETS = {'mini': DATASETS, 'full': ('isaid',)}
PROCESS_DATASET = 'isaid'   # the per-process cost is measured once per method, on these rows
# the figures that get a "<name>_vs_catseg" ratio column
RATIO_FIELDS = ('train_s', 'train_gflop', 'train_mem_gb', 'infer_s', 'infer_gflop', 'infer_mem_gb')
COLUMNS = ('method', 'label', 'scale', 'dataset', 'status', 'config', 'device', 'threads', 'amp',
           'params_m', 'trainable_m',
           'train_batch', 'train_size', 'train_s', 'train_cpu_s', 'train_gflop', 'train_gflops_per_s',
           'train_peak_frac', 'train_mem_gb',
           'test_mode', 'test_size', 'infer_s', 'infer_cpu_s', 'infer_gflop', 'infer_gflops_per_s',
           'infer_peak_frac', 'infer_mem_gb',
           'process_peak_rss_gb', 'process_train_s', 'process_test_s', 'repeats', 'loadavg_1min',
           'peak_gflops', 'peak_basis') + tuple(
    f'{k}_vs_{REFERENCE}' for k in RATIO_FIELDS)
CHANGE_COLUMNS = ('change', 'method', 'scale', 'part', 'before_s', 'after_s', 'speedup',
                  'before_cpu_s', 'after_cpu_s', 'speedup_cpu', 'max_abs_diff', 'repeats',
                  'loadavg_1min')

__all__ = ['method_configs', 'resolve_config', 'build_full_model', 'build_model', 'make_batch',
           'num_classes_of', 'count_params', 'train_step', 'count_flops', 'matmul_peak',
           'device_label', 'device_slug', 'input_sizes', 'measure_method', 'add_ratios',
           'write_csv', 'load_speed', 'CHANGES', 'compare_changes', 'format_table', 'add_process_cost',
           'format_process', 'main']


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


# ----------------------------------------------------------------------------- configs, models
def method_configs(trained_only: bool = True) -> Dict[str, str]:
    """Method key -> its iSAID config, for every (trained) method whose config exists."""
    return {m.key: m.config_for('isaid') for m in methods()
            if (m.train or not trained_only) and (REPO_ROOT / m.config_for('isaid')).is_file()}


def resolve_config(method: str) -> str:
    """A method key of :func:`method_configs` or a config path."""
    known = method_configs(trained_only=False)
    if method in known:
        return str(REPO_ROOT / known[method])
    if method.endswith('.py'):
        p = Path(method)
        p = p if p.is_absolute() else (Path.cwd() / p if (Path.cwd() / p).exists() else REPO_ROOT / p)
        if not p.is_file():
            raise FileNotFoundError(f'config not found: {method!r}')
        return str(p)
    raise KeyError(f'unknown method {method!r}: use one of {sorted(known)} or a config path')


def _parent(cfg, dotted: str):
    """The dict holding the last key of ``dotted`` (the VL encoder's own config)."""
    for k in dotted.split('.')[:-1]:
        cfg = cfg[k]
    return cfg


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


def build_model(config: str, scale: str):
    """(model, cfg): :func:`build_full_model` at full size, the mini config's model at mini."""
    if scale == 'full':
        return build_full_model(config)
    from aeroseg.config import load_config
    from mmseg.registry import MODELS
    cfg = load_config(config, scale='mini')
    return MODELS.build(cfg.model), cfg


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


def _side(v) -> Optional[int]:
    if v is None:
        return None
    return int(v) if isinstance(v, (int, float)) else int(min(v))


def input_sizes(cfg) -> Tuple[int, int]:
    """(training input side, test image side) of a config for square images (module docstring)."""
    train = _side((cfg.model.get('data_preprocessor') or {}).get('size'))
    if train is None:
        for t in (cfg.get('train_dataloader') or {}).get('dataset', {}).get('pipeline', []) or []:
            if t.get('type') == 'RandomCrop':
                train = _side(t['crop_size'])
    test = None
    for t in (cfg.get('test_dataloader') or {}).get('dataset', {}).get('pipeline', []) or []:
        if t.get('type') == 'Resize' and t.get('scale') is not None:
            test = _side(t['scale'])  # a square image: keep_ratio or not, the short side
    if train is None:
        train = test or 384
    return train, test or train


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


def _autocast(device: str, amp: str):
    import torch
    if amp == 'none':
        return nullcontext()
    return torch.autocast(device_type=device.split(':')[0],
                          dtype={'bf16': torch.bfloat16, 'fp16': torch.float16}[amp])


def train_step(model, imgs, samples, amp: str = 'none', optimizer=None) -> Dict[str, float]:
    """One forward + backward (+ ``optimizer.step()`` when given); returns the loss values."""
    model.train()
    model.zero_grad(set_to_none=True)
    with _autocast(imgs.device.type, amp):
        losses = model.loss(imgs, samples)
    total = sum(losses.values())
    total.backward()
    if optimizer is not None:
        optimizer.step()
    return {k: float(v.detach().float()) for k, v in losses.items()}


def infer_image(model, img, amp: str = 'none'):
    """Class scores of one image in the model's own test mode (whole / slide), no gradients."""
    import torch
    if model.training:  # as the test loop: eval() once (it also clears CLIP's text cache)
        model.eval()
    with torch.no_grad(), _autocast(img.device.type, amp):
        return model.predict_logits(img)


# ----------------------------------------------------------------------------- measuring
def _cpu_sdpa_flops():
    """FlopCounterMode formulas for the CPU fused attention kernels, which torch's registry lacks
    (torch 2.14 counts ``F.scaled_dot_product_attention`` on CPU as 0 FLOPs; its CUDA kernels are
    registered). Same formulas as the CUDA ones: 4 b h s_q s_k d forward (q k^T and att v), 2.5x
    that backward; the additive mask's adds are element-wise and not counted, as elsewhere."""
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count
    aten = torch.ops.aten

    # FlopCounterMode passes shapes (its shape_wrapper) to custom formulas
    def fwd(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    def bwd(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    return {aten._scaled_dot_product_flash_attention_for_cpu: fwd,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: bwd}


def count_flops(fn: Callable[[], object]) -> Tuple[int, object]:
    """(FLOPs counted by FlopCounterMode while ``fn()`` runs, its result); CPU fused attention
    included (:func:`_cpu_sdpa_flops`)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False, custom_mapping=_cpu_sdpa_flops()) as fc:
        out = fn()
    return int(fc.get_total_flops()), out


def _sync(device: str) -> None:
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _rss_gb() -> float:
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    except OSError:
        return float('nan')


def _maxrss_gb() -> float:
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**30 if sys.platform == 'darwin' else kb / 2**20


@contextmanager
def _peak_rss(interval: float = 0.002):
    """Yields a dict whose 'peak_gb' is the largest resident set seen while the block ran."""
    rec = {'before_gb': _rss_gb()}
    rec['peak_gb'] = rec['before_gb']
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            rec['peak_gb'] = max(rec['peak_gb'], _rss_gb())
            stop.wait(interval)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        yield rec
    finally:
        stop.set()
        t.join()
        rec['peak_gb'] = max(rec['peak_gb'], _rss_gb())


def _tensor_gb(model, optimizer=None) -> float:
    seen, n = set(), 0
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        tensors += [v for st in optimizer.state.values() for v in st.values() if hasattr(v, 'nbytes')]
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            n += t.nbytes
    return n / 2**30


def _timed(fn: Callable[[], object], repeats: int, device: str, model, optimizer=None) -> dict:
    """Median wall / CPU seconds of ``repeats`` calls, and the memory of the calls."""
    import torch
    cuda = device.startswith('cuda')
    walls, cpus = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with _peak_rss() as rss:
        for _ in range(repeats):
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    mem = (torch.cuda.max_memory_allocated(device) / 2**30 if cuda
           else rss['peak_gb'] - rss['before_gb'] + _tensor_gb(model, optimizer))
    return dict(s=statistics.median(walls), cpu_s=statistics.median(cpus), mem_gb=mem)


def matmul_peak(device: str = 'cpu', dtype: str = 'fp32', n: Optional[int] = None,
                repeats: int = 5) -> Tuple[float, str]:
    """(FLOP/s, how it was measured): the median of ``repeats`` n x n matmuls after a warm-up."""
    import torch
    n = n or (2048 if device == 'cpu' else 8192)
    dt = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype]
    a = torch.randn(n, n, device=device).to(dt)
    b = torch.randn(n, n, device=device).to(dt)
    a @ b
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times), f'median of {repeats} {n}x{n} {dtype} matmuls'


def device_label(device: str = 'cpu', threads: Optional[int] = None) -> str:
    """The CUDA device name, or the CPU model and widest vector ISA (/proc/cpuinfo) and the torch
    thread count: 'CPU AMD EPYC, AVX512 (2 threads)'."""
    import torch
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    return f'CPU {_cpu_name()} ({threads or torch.get_num_threads()} threads)'


def device_slug(label: str) -> str:
    """File-name form of :func:`device_label`: 'CPU Intel(R) Xeon(R) ... (2 threads)' ->
    'cpu-intel-r-xeon-r-...-2-threads'."""
    return re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')


def _free_memory() -> None:
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)  # give freed heap back, so RSS deltas are the model's
    except (OSError, AttributeError):
        pass


def _recipe_batch(cfg, scale: str) -> int:
    """Default training batch: 1 at full size (CPU budget), the recipe's at mini."""
    return 1 if scale == 'full' else int(cfg.train_dataloader.batch_size)


def _row(method: Method, scale: str, status: str, config: str = '', **kw) -> dict:
    r = dict(method=method.key, label=method.label, scale=scale, status=status, config=config)
    r.update(kw)
    return r


def measure_method(method: Method, scale: str, device: str = 'cpu', batch: Optional[int] = None,
                   amp: str = 'none', repeats: Optional[int] = None, parts: Sequence[str] = ('train', 'infer'),
                   peak: Optional[Tuple[float, str]] = None, seed: int = 0, log=print,
                   dataset: str = 'isaid') -> dict:
    """One row of the table for ``method`` at ``scale`` on ``dataset``'s config (its classes; module
    docstring), in this process."""
    import torch
    config = method.config_for(dataset)
    if not (REPO_ROOT / config).is_file():
        return _row(method, scale, f'not built ({config} does not exist yet)', config, dataset=dataset)
    repeats = repeats or (1 if scale == 'full' else 3)
    try:
        torch.manual_seed(seed)
        model, cfg = build_model(str(REPO_ROOT / config), scale)
    except Exception as e:  # a config of another engineer that does not build yet
        return _row(method, scale, f'error: {type(e).__name__}: {e}'.splitlines()[0][:300], config,
                    dataset=dataset)
    model.to(device)
    params = count_params(model)['all']
    train_size, test_size = input_sizes(cfg)
    row = _row(method, scale, 'ok', config, dataset=dataset, device=device,
               threads=torch.get_num_threads(), amp=amp,
               params_m=params['total'] / 1e6, trainable_m=params['trainable'] / 1e6,
               test_mode=model.test_cfg.get('mode'), test_size=test_size, repeats=repeats)
    if peak:
        row.update(peak_gflops=peak[0] / 1e9, peak_basis=peak[1])

    def rate(flops, s):
        return (flops / s / 1e9, flops / s / peak[0] if peak else None)

    trainable = method.train and getattr(model, 'trainable', True)
    if 'train' in parts and trainable:
        bs = batch or _recipe_batch(cfg, scale)
        imgs, samples = make_batch(num_classes_of(cfg), bs, size=train_size, seed=seed, device=device)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        step = lambda: train_step(model, imgs, samples, amp, opt)  # noqa: E731
        log(f'[speed] {method.key} {scale} {dataset}: training step, batch {bs} at {train_size} px ...')
        flops, losses = count_flops(step)  # also the warm-up
        t = _timed(step, repeats, device, model, opt)
        row.update(train_batch=bs, train_size=train_size, train_s=t['s'], train_cpu_s=t['cpu_s'],
                   train_gflop=flops / 1e9, train_mem_gb=t['mem_gb'])
        row['train_gflops_per_s'], row['train_peak_frac'] = rate(flops, t['s'])
        del opt, imgs, samples
        model.zero_grad(set_to_none=True)
    elif 'train' in parts:
        row['status'] = 'ok (training-free: no training step)'
    if 'infer' in parts:
        img = make_batch(1, 1, size=test_size, seed=seed + 1, device=device)[0]
        call = lambda: infer_image(model, img, amp)  # noqa: E731
        log(f'[speed] {method.key} {scale} {dataset}: inference, one {test_size} px image, '
            f'{row["test_mode"]} mode ...')
        call()  # warm-up: fills what an evaluation computes once (the test vocabulary's text)
        flops, _ = count_flops(call)
        t = _timed(call, repeats, device, model)
        row.update(infer_s=t['s'], infer_cpu_s=t['cpu_s'], infer_gflop=flops / 1e9, infer_mem_gb=t['mem_gb'])
        row['infer_gflops_per_s'], row['infer_peak_frac'] = rate(flops, t['s'])
    row['process_peak_rss_gb'] = _maxrss_gb()
    row['loadavg_1min'] = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    del model
    _free_memory()
    return row


def add_process_cost(row: dict, log=print) -> dict:
    """Fill ``process_train_s`` / ``process_test_s`` of a mini ``row`` (measured at its threads)
    by :func:`benchmarks.process_cost.measure_process`; a failure goes into the status, the
    row's figures stay."""
    from benchmarks.process_cost import measure_process
    if not str(row.get('status', '')).startswith('ok') or row.get('infer_s') is None:
        return row
    try:
        from aeroseg.mini import ensure_mini
        ensure_mini(row.get('dataset') or 'isaid')  # before the clock: a suite generates it once
        row.update(measure_process(row['config'], row.get('train_s'), row['infer_s'],
                                   int(row.get('threads') or 1), log=log))
    except Exception as e:  # noqa: BLE001 - the compute figures are still worth writing
        row['status'] += f'; process cost: {type(e).__name__}: {e}'.splitlines()[0][:200]
    return row


def set_peak(rows: List[dict], peak: Tuple[float, str]) -> List[dict]:
    """Re-express every row's ``*_peak_frac`` against ``peak`` (FLOP/s, basis)."""
    for r in rows:
        if r.get('status', '').startswith('ok'):
            r.update(peak_gflops=peak[0] / 1e9, peak_basis=peak[1])
            for part in ('train', 'infer'):
                if r.get(f'{part}_gflops_per_s') is not None:
                    r[f'{part}_peak_frac'] = r[f'{part}_gflops_per_s'] * 1e9 / peak[0]
    return rows


def add_ratios(rows: List[dict], reference: str = REFERENCE) -> List[dict]:
    """``<field>_vs_<reference>`` = value / the reference method's value at the same scale on the
    same dataset (None where either is missing or the reference is 0)."""
    ref = {(r['scale'], r.get('dataset')): r for r in rows if r['method'] == reference}
    for r in rows:
        base = ref.get((r['scale'], r.get('dataset')), {})
        for k in RATIO_FIELDS:
            a, b = r.get(k), base.get(k)
            r[f'{k}_vs_{reference}'] = a / b if isinstance(a, (int, float)) and \
                isinstance(b, (int, float)) and b else None
    return rows


# ----------------------------------------------------------------------------- before / after
class Change:
    """A speed change of the suite, switchable on a built model (for the before/after table)."""

    def __init__(self, name: str, what: str, applies: Callable, switch: Callable,
                 parts: Tuple[str, ...] = ('infer',)):
        self.name, self.what, self.applies, self.switch, self.parts = name, what, applies, switch, parts


def _modules(model, path: str):
    """Sub-modules of ``model`` that are instances of the class at dotted ``path``
    (``'aeroseg.models.refinement.GuidedWindowAttention'``)."""
    import importlib
    mod, name = path.rsplit('.', 1)
    cls = getattr(importlib.import_module(mod), name)
    return [m for m in model.modules() if isinstance(m, cls)]


_CLIP = 'aeroseg.models.clip_backbone.CLIPDenseBackbone'
_WINDOW_ATTN = 'aeroseg.models.refinement.GuidedWindowAttention'
_CLASS_REFINE = 'aeroseg.models.refinement.ClassRefinement'
_SAM_ATTN = 'aeroseg.models.sam_attention.FusedSAMAttention'


def _switch_window_batch(model, on: bool) -> None:
    from aeroseg.models.base_segmentor import DEFAULT_WINDOW_BATCH
    model.test_cfg['window_batch'] = DEFAULT_WINDOW_BATCH if on else 1


def _switch_fused(model, on: bool) -> None:
    from aeroseg.models.refinement import GuidedWindowAttention
    GuidedWindowAttention.fused = on


def _switch_fused_sam(model, on: bool) -> None:
    from aeroseg.models.sam_attention import FusedSAMAttention
    FusedSAMAttention.fused = on


def _switch_dedup_padding(model, on: bool) -> None:
    from aeroseg.models.refinement import ClassRefinement
    ClassRefinement.dedup_padding = on


def _switch_guidance_once(model, on: bool) -> None:
    from aeroseg.models.decoders import UpsampleBlock
    from aeroseg.models.refinement import ClassRefinement, SpatialRefinement
    UpsampleBlock.guidance_once = SpatialRefinement.guidance_once = ClassRefinement.guidance_once = on


def _switch_text_cache(model, on: bool) -> None:
    for m in _modules(model, _CLIP):
        m.cache_text = on
        m.clear_text_cache()


CHANGES = (
    Change('window_batch', 'slide windows batched into one forward (test_cfg.window_batch 4 vs 1)',
           lambda m: m.test_cfg.get('mode') == 'slide' and 'window_batch' in m.test_cfg,
           _switch_window_batch),
    Change('fused_attention', 'cost head window attention as scaled_dot_product_attention',
           lambda m: bool(_modules(m, _WINDOW_ATTN)), _switch_fused, ('train', 'infer')),
    Change('fused_sam_attention', "SAM guidance encoder's attention (relative positions as the mask) "
           'as scaled_dot_product_attention', lambda m: bool(_modules(m, _SAM_ATTN)),
           _switch_fused_sam, ('train', 'infer')),
    Change('dedup_padding', "class refinement: the pad_len - T identical padding tokens as one "
           "weighted key, their dropped outputs not computed",
           lambda m: any(c.pad_len > 0 for c in _modules(m, _CLASS_REFINE)), _switch_dedup_padding,
           ('train', 'infer')),
    Change('guidance_once', "cost head: the guidance shared by all classes (pixels) projected once "
           "per image in the q / k projections and the decoder's first conv, not per copy",
           lambda m: any(c.guidance_dim > 0 for c in _modules(m, _CLASS_REFINE)), _switch_guidance_once,
           ('train', 'infer')),
    Change('text_cache', 'text embeddings of the test vocabulary computed once (cache) vs per forward',
           lambda m: bool(_modules(m, _CLIP)), _switch_text_cache),
)


def compare_changes(keys: Sequence[str], device: str = 'cpu', amp: str = 'none', repeats: int = 3,
                    scale: str = 'mini', seed: int = 0, changes=CHANGES, log=print) -> List[dict]:
    """Each change off vs on, interleaved repeats, on every method of ``keys`` it applies to;
    plus 'all' (every applicable change off vs on)."""
    import torch
    from benchmarks.methods import get_method
    rows = []
    for key in keys:
        method = get_method(key)
        config = REPO_ROOT / method.config_for('isaid')
        if not config.is_file():
            continue
        torch.manual_seed(seed)
        model, cfg = build_model(str(config), scale)
        model.to(device)
        mine = [c for c in changes if c.applies(model)]
        if not mine:
            continue
        train_size, test_size = input_sizes(cfg)
        img = make_batch(1, 1, size=test_size, seed=seed + 1, device=device)[0]
        batch = make_batch(num_classes_of(cfg), _recipe_batch(cfg, scale), size=train_size, seed=seed,
                           device=device) if method.train else None
        groups = [(c.name, [c]) for c in mine] + ([('all', mine)] if len(mine) > 1 else [])
        for name, group in groups:
            parts = sorted({p for c in group for p in c.parts}, key=('train', 'infer').index)
            for part in parts:
                if part == 'train' and batch is None:
                    continue
                if part == 'train':
                    fn = lambda: train_step(model, *batch, amp)  # noqa: E731
                else:
                    fn = lambda: infer_image(model, img, amp)  # noqa: E731
                log(f'[speed] before/after {name} on {key} {scale} {part} ...')
                times = {False: [], True: []}
                cpus = {False: [], True: []}
                outs = {}
                for on in (False, True):  # warm-up of each state; its output for the difference
                    for c in group:
                        c.switch(model, on)
                    torch.manual_seed(seed)
                    o = fn()
                    outs[on] = o if part == 'infer' else None
                for _ in range(repeats):
                    for on in (False, True):
                        for c in group:
                            c.switch(model, on)
                        _sync(device)
                        t0, c0 = time.perf_counter(), time.process_time()
                        fn()
                        _sync(device)
                        times[on].append(time.perf_counter() - t0)
                        cpus[on].append(time.process_time() - c0)
                for c in group:
                    c.switch(model, True)
                before, after = statistics.median(times[False]), statistics.median(times[True])
                bc, ac = statistics.median(cpus[False]), statistics.median(cpus[True])
                diff = float((outs[True] - outs[False]).abs().max()) if part == 'infer' else None
                rows.append(dict(change=name, method=key, scale=scale, part=part, before_s=before,
                                 after_s=after, speedup=before / after, before_cpu_s=bc,
                                 after_cpu_s=ac, speedup_cpu=bc / ac, max_abs_diff=diff,
                                 repeats=repeats, loadavg_1min=os.getloadavg()[0]))
        del model
        _free_memory()
    return rows


# ----------------------------------------------------------------------------- across processes
MALLOC_CHANGE = 'retain_memory'

# A measurement that runs on any commit of the suite: it uses only what every version has
# (aeroseg.config.load_config, the registries, model.loss / predict_logits), not this module.
_CHILD = r"""
import os, statistics, sys, time
key, config, threads, repeats, seed, out, policy = sys.argv[1:8]
threads, repeats, seed = int(threads), int(repeats), int(seed)
if policy != 'inherit':
    from aeroseg.utils.malloc import retain_freed_memory
    policy = retain_freed_memory(policy)
else:
    try:  # a commit that has the allocator policy applies its entry points' default
        from aeroseg.utils.malloc import retain_freed_memory
        policy = retain_freed_memory()
    except ImportError:
        policy = 'system (this commit has no policy)'
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
register_all_modules()
from benchmarks.common import register_all
register_all()
from aeroseg.config import load_config
torch.set_num_threads(threads)
cfg = load_config(config, scale='mini')
torch.manual_seed(seed)
model = MODELS.build(cfg.model)
side = 128  # the mini world's images (configs/_base_/scale/mini.py: crop, test_short)


def timed(fn):
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return dict(s=statistics.median(walls), cpu_s=statistics.median(cpus))


res = dict(policy=policy)
g = torch.Generator().manual_seed(seed)
if getattr(model, 'trainable', True) and cfg.get('train_dataloader'):
    bs = int(cfg.train_dataloader.batch_size)
    imgs = torch.rand(bs, 3, side, side, generator=g) * 255
    from aeroseg.datasets.splits import get_split
    n = get_split(cfg.model.vocabulary.split).num_classes
    samples = []
    for _ in range(bs):
        smp = SegDataSample(metainfo=dict(img_shape=(side, side), ori_shape=(side, side)))
        lab = torch.randint(0, n, (1, side, side), generator=g)
        lab[:, : side // 4] = 255
        smp.gt_sem_seg = PixelData(data=lab)
        samples.append(smp)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        model.train()
        model.zero_grad(set_to_none=True)
        sum(model.loss(imgs, samples).values()).backward()
        opt.step()
    res['train'] = timed(step)
    del opt
model.eval()
img = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed + 1)) * 255
with torch.no_grad():
    res['scores'] = model.predict_logits(img)
    res['infer'] = timed(lambda: model.predict_logits(img))
torch.save(res, out)
"""


def _run_child(tree: Path, key: str, config: str, threads: int, repeats: int, seed: int, out: str,
               policy: str = 'inherit') -> dict:
    """:data:`_CHILD` in a fresh process on the suite at ``tree`` (its modules first on the path)."""
    import subprocess
    import torch
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(tree))
    env.pop('AEROSEG_MALLOC', None)
    p = subprocess.run([sys.executable, '-c', _CHILD, key, config, str(threads), str(repeats), str(seed),
                        out, policy], cwd=tree, env=env, capture_output=True, text=True)
    if p.returncode:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f'speed child ({key} on {tree}, malloc {policy}) exited {p.returncode}: {tail}')
    return torch.load(out, weights_only=False)


def _change_rows(change: str, key: str, before: List[dict], after: List[dict], repeats: int) -> List[dict]:
    rows = []
    for part in ('train', 'infer'):
        if part not in after[0] or part not in before[0]:
            continue
        b = statistics.median(g[part]['s'] for g in before)
        a = statistics.median(g[part]['s'] for g in after)
        bc = statistics.median(g[part]['cpu_s'] for g in before)
        ac = statistics.median(g[part]['cpu_s'] for g in after)
        diff = None
        if part == 'infer' and all(x['scores'].shape == after[0]['scores'].shape for x in before):
            diff = max(float((x['scores'] - y['scores']).abs().max()) for x in before for y in after)
        rows.append(dict(change=change, method=key, scale='mini', part=part, before_s=b, after_s=a,
                         speedup=b / a, before_cpu_s=bc, after_cpu_s=ac, speedup_cpu=bc / ac,
                         max_abs_diff=diff, repeats=repeats * len(before), loadavg_1min=os.getloadavg()[0]))
    return rows


def compare_malloc(keys: Sequence[str], threads: int = 2, repeats: int = 3, rounds: int = 2, seed: int = 0,
                   log=print) -> List[dict]:
    """The allocator policy (:mod:`aeroseg.utils.malloc`) before / after, which one process cannot
    switch back (glibc keeps a set threshold): per method, a fresh process with the system's
    malloc and one with retained memory, in turn, ``rounds`` times, every in-process change on.
    The score difference compares the processes' inference outputs (0: nothing computed changes)."""
    import tempfile
    from benchmarks.methods import get_method
    rows = []
    for key in keys:
        config = get_method(key).config_for('isaid')
        if not (REPO_ROOT / config).is_file():
            continue
        log(f'[speed] before/after {MALLOC_CHANGE} on {key} mini: {rounds} x 2 processes ...')
        got = {'system': [], 'retain': []}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                for policy in got:
                    got[policy].append(_run_child(REPO_ROOT, key, config, threads, repeats, seed,
                                                  os.path.join(tmp, f'{policy}{r}.pt'), policy))
        rows += _change_rows(MALLOC_CHANGE, key, got['system'], got['retain'], repeats)
    return rows


def compare_commit(commit: str, keys: Sequence[str], threads: int = 2, repeats: int = 3, rounds: int = 2,
                   seed: int = 0, log=print) -> List[dict]:
    """The suite's code at ``commit`` (``git archive`` into a temporary folder) against this
    checkout, per method whose mini iSAID config both have: fresh processes in turn, ``rounds``
    times, each tree with its own entry points' allocator policy. This is "before the change" as
    it was, which switching today's changes off in one process only approximates (an off path is
    not always the old code: with the text cache off the text is encoded per forward, which no
    earlier version did). Rows are named ``code@<commit>``."""
    import subprocess
    import tarfile
    import tempfile
    from benchmarks.methods import get_method
    rev = subprocess.run(['git', '-C', str(REPO_ROOT), 'rev-parse', '--short', f'{commit}^{{commit}}'],
                         capture_output=True, text=True)
    if rev.returncode:
        raise ValueError(f'--against {commit!r}: not a commit of {REPO_ROOT} ({rev.stderr.strip()})')
    name = f'code@{rev.stdout.strip()}'
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / 'tree'
        old.mkdir()
        arc = subprocess.run(['git', '-C', str(REPO_ROOT), 'archive', '--format=tar', rev.stdout.strip()],
                             capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(arc)) as tf:
            tf.extractall(old, filter='data')
        for key in keys:
            config = get_method(key).config_for('isaid')
            if not ((REPO_ROOT / config).is_file() and (old / config).is_file()):
                log(f'[speed] {name}: {key} skipped ({config} missing in one of the two)')
                continue
            log(f'[speed] before/after {name} -> this checkout on {key} mini: {rounds} x 2 processes ...')
            got = {'old': [], 'new': []}
            for r in range(rounds):
                for which, tree in (('old', old), ('new', REPO_ROOT)):
                    got[which].append(_run_child(tree, key, config, threads, repeats, seed,
                                                 os.path.join(tmp, f'{which}{r}.pt')))
            rows += _change_rows(name, key, got['old'], got['new'], repeats)
    return rows


# ----------------------------------------------------------------------------- output
def _fmt(v, nd=3) -> str:
    if v is None or v == '':
        return '-'
    if isinstance(v, float):
        return f'{v:.{nd}g}' if abs(v) < 1000 else f'{v:.0f}'
    return str(v)


def _csv_text(rows: List[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction='raise', lineterminator='\n')
    w.writeheader()
    for r in rows:
        w.writerow({k: ('' if r.get(k) is None else (round(r[k], 6) if isinstance(r.get(k), float)
                                                        else r[k])) for k in columns})
    return buf.getvalue()


def write_csv(path, rows: List[dict], columns: Sequence[str] = COLUMNS) -> None:
    """``rows`` as CSV, atomically (a reader never sees half a file; a failure leaves the old one)."""
    for r in rows:
        extra = set(r) - set(columns)
        if extra:
            raise ValueError(f'{path}: row of {r.get("method")} has fields not in the columns: {sorted(extra)}')
    atomic_write_text(path, _csv_text(rows, columns))


def _md_table(head: List[str], body: List[List[str]]) -> str:
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in body]
    return '\n'.join(lines)


def format_table(rows: List[dict]) -> str:
    """The Markdown table of the method rows (figures and ratios to CAT-Seg)."""
    head = ['method', 'scale', 'dataset', 'status', 'train batch x px', 'train s/step', 'CPU s',
            'GFLOP/step', 'GFLOP/s', '% peak', 'train mem GB', 'test mode, px', 's/image', 'GFLOP/image',
            'GFLOP/s', '% peak', 'test mem GB',
            f'x {REFERENCE}: train s', 'GFLOP', 'mem', 's/image', 'GFLOP', 'mem']
    body = []
    for r in rows:
        pct = lambda k: '-' if r.get(k) is None else f'{100 * r[k]:.1f}'  # noqa: E731
        body.append([
            r['label'], r['scale'], r.get('dataset') or 'isaid', r['status'],
            f"{r['train_batch']} x {r['train_size']}" if r.get('train_batch') else '-',
            _fmt(r.get('train_s')), _fmt(r.get('train_cpu_s')), _fmt(r.get('train_gflop')),
            _fmt(r.get('train_gflops_per_s')), pct('train_peak_frac'), _fmt(r.get('train_mem_gb')),
            f"{r['test_mode']}, {r['test_size']}" if r.get('test_mode') else '-',
            _fmt(r.get('infer_s')), _fmt(r.get('infer_gflop')), _fmt(r.get('infer_gflops_per_s')),
            pct('infer_peak_frac'), _fmt(r.get('infer_mem_gb'))]
            + [_fmt(r.get(f'{k}_vs_{REFERENCE}')) for k in RATIO_FIELDS])
    return _md_table(head, body)


def format_process(rows: List[dict]) -> str:
    """The per-process cost of a mini job (:mod:`benchmarks.process_cost`), one line per method."""
    from benchmarks.process_cost import TEST_IMAGES, TRAIN_ITERS
    body = [[r['label'], _fmt(r.get('process_train_s')), _fmt(r.get('process_test_s'))]
            for r in rows if r.get('process_test_s') is not None]
    return (f'Per-process cost of a mini job (benchmarks.process_cost: wall of `benchmarks.train` '
            f'for {TRAIN_ITERS} steps / `benchmarks.test` on {TEST_IMAGES} images at these threads, '
            f'minus those steps / images at the s above; what the dry-run adds per process):\n\n'
            + _md_table(['method', 'train process s', 'test process s'], body))


def format_changes(rows: List[dict]) -> str:
    head = ['change', 'method', 'scale', 'part', 'before s', 'after s', 'speedup (wall)',
            'before CPU s', 'after CPU s', 'speedup (CPU)', 'max |score diff|']
    body = [[r['change'], r['method'], r['scale'], r['part'], _fmt(r['before_s']), _fmt(r['after_s']),
             f"{r['speedup']:.2f}x", _fmt(r['before_cpu_s']), _fmt(r['after_cpu_s']),
             f"{r['speedup_cpu']:.2f}x", '-' if r['max_abs_diff'] is None else f"{r['max_abs_diff']:.2g}"]
            for r in rows]
    return _md_table(head, body)


def _cpuinfo(key: str) -> Optional[str]:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.split(':', 1)[0].strip() == key:
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _cpuinfo('model name') or platform.processor() or platform.machine()


def _cpu_isa() -> Optional[str]:
    """Widest x86 vector ISA the CPU has (the kernels torch picks): 'AVX512', 'AVX2' or None.
    Virtual machines name CPU generations alike ('AMD EPYC' with AVX2 and with AVX-512, measured
    1.8-3.5x apart per mini job: docs/measurements.md), so the speed file's name carries it."""
    flags = set((_cpuinfo('flags') or '').split())
    return 'AVX512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else None


def _cpu_name() -> str:
    """The CPU model, with its ISA when known: 'AMD EPYC, AVX512'."""
    isa = _cpu_isa()
    return f'{_cpu_model()}, {isa}' if isa else _cpu_model()


def _this_device_file(root: Path, threads: Optional[int] = None) -> Optional[Path]:
    """This machine's speed file without importing torch (the dry run stays fast): the first
    GPU's (its model from /proc/driver/nvidia, as torch.cuda.get_device_name names it), else the
    CPU's (model and ISA) at ``threads`` (what one job will run on, e.g. a slot of ``benchmarks.run
    --parallel``), else at os.cpu_count() threads, else at any thread count (most threads first);
    then the same for the model name alone (files named before the ISA was)."""
    gpus = sorted(Path('/proc/driver/nvidia/gpus').glob('*/information'))
    if gpus:
        for line in gpus[0].read_text(errors='replace').splitlines():
            if line.startswith('Model:'):
                return root / f'{device_slug(line.split(":", 1)[1].strip())}.csv'
    for cpu in dict.fromkeys(device_slug(f'CPU {n}') for n in (_cpu_name(), _cpu_model())):
        for n in dict.fromkeys(n for n in (threads, os.cpu_count()) if n):
            exact = root / f'{cpu}-{n}-threads.csv'
            if exact.is_file():
                return exact
        found = [p for p in root.glob(f'{cpu}-*-threads.csv')
                 if re.fullmatch(r'\d+', p.stem[len(cpu) + 1:-8])]
        if found:
            return max(found, key=lambda p: int(p.stem[len(cpu) + 1:-8]))
    return None


def load_speed(device: Optional[str] = None, root: Path = SPEED_DIR, slug: bool = False,
               threads: Optional[int] = None) -> Tuple[Dict[tuple, dict], Optional[Path]]:
    """{(method, scale, dataset): row} of ``<root>/<device_slug>.csv`` (this machine's device when
    ``device`` is None: :func:`_this_device_file`, preferring a CPU file measured at ``threads``;
    ``slug``: ``device`` is already the file stem), plus {(method, scale): its iSAID row}, and the
    file read (None when it does not exist). Files from before the dataset column hold iSAID rows.
    Numbers are floats, empty cells None; rows without figures (not built, errors) are left out."""
    if device is None:
        path = _this_device_file(Path(root), threads)
    else:
        path = Path(root) / f'{device if slug else device_slug(device)}.csv'
    if path is None or not path.is_file():
        return {}, None
    out = {}
    with open(path, newline='', encoding='utf-8') as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                try:
                    r[k] = None if v == '' else float(v)
                except (TypeError, ValueError):
                    pass
            if str(r.get('status', '')).startswith('ok'):
                r['dataset'] = r.get('dataset') or 'isaid'
                out[(r['method'], r['scale'], r['dataset'])] = r
                if r['dataset'] == 'isaid':
                    out[(r['method'], r['scale'])] = r
    return out, path


# ----------------------------------------------------------------------------- driver
def parse_args(argv=None, prog='python -m benchmarks.speed'):
    keys = [m.key for m in methods()]
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
    ap.add_argument('--methods', nargs='+', default=keys, help=f'method keys (default: all, {keys})')
    ap.add_argument('--scales', nargs='+', choices=SCALES, default=list(SCALES))
    ap.add_argument('--datasets', nargs='+', choices=DATASETS, default=None,
                    help='configs measured, per dataset (its class count sets the per-class work); '
                         'default: all three at mini, iSAID at full size (CPU budget)')
    ap.add_argument('--parts', nargs='+', choices=('train', 'infer'), default=['train', 'infer'])
    ap.add_argument('--batch', type=int, default=None,
                    help='training batch (default: 1 at full size, the recipe at mini)')
    ap.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    ap.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none',
                    help='autocast dtype for training and inference (off by default: reproduction)')
    ap.add_argument('--repeats', type=int, default=None,
                    help='timed calls after the warm-up (default 1 at full size, 3 at mini)')
    ap.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', default=str(SPEED_DIR), help='folder of <device>.csv / .md')
    ap.add_argument('--no-write', action='store_true', help='print only')
    ap.add_argument('--no-compare', action='store_true', help='skip the before/after table')
    ap.add_argument('--compare-scale', choices=SCALES, default='mini',
                    help='scale of the before/after table (default mini; full on a GPU, where the '
                         'full-size models take seconds)')
    ap.add_argument('--no-process', action='store_true',
                    help='skip the per-process cost of a mini job (benchmarks.process_cost: one short '
                         'train and test process per method, ~15 s a method on 2 CPU cores)')
    ap.add_argument('--against', default=None, metavar='COMMIT',
                    help='also time this checkout against the code at COMMIT (mini iSAID, CPU, fresh '
                         'processes: e.g. the commit before a speed change)')
    ap.add_argument('--malloc', choices=('retain', 'system'), default=None,
                    help="this process's allocator policy (aeroseg.utils.malloc; default $AEROSEG_MALLOC "
                         "or 'retain', as the suite's entry points)")
    ap.add_argument('--json', default=None, help='also write every row to this JSON file')
    args = ap.parse_args(argv)
    unknown = [k for k in args.methods if k not in keys]
    if unknown:
        ap.error(f'unknown method(s) {unknown}: choose from {keys} (benchmarks/methods.py)')
    if args.batch is not None and args.batch < 1:
        ap.error('--batch must be >= 1')
    if not (args.device == 'cpu' or args.device.startswith('cuda')):
        ap.error("--device must be 'cpu' or 'cuda[:N]'")
    return args


def main(argv=None, prog='python -m benchmarks.speed') -> int:
    args = parse_args(argv, prog)
    from aeroseg.utils.malloc import retain_freed_memory
    policy = retain_freed_memory(args.malloc)  # before any model: as benchmarks.train / test run
    import torch
    note = _setup_imports()
    if args.device == 'cpu':
        torch.set_num_threads(args.threads)
    elif not torch.cuda.is_available():
        print('--device cuda asked for, but torch sees no CUDA device', file=sys.stderr)
        return 2
    from benchmarks.methods import get_method
    label = device_label(args.device)
    peak = matmul_peak(args.device, 'bf16' if args.amp == 'bf16' and args.device != 'cpu' else 'fp32')
    print(f'[speed] {label}: peak {peak[0] / 1e9:.1f} GFLOP/s ({peak[1]}); '
          f'load average {os.getloadavg()[0]:.2f}', flush=True)
    out, slug = Path(args.out), device_slug(label)
    # the before/after first (at mini, minutes), so a long full-size pass cannot lose it
    changes = [] if args.no_compare else compare_changes(
        args.methods, args.device, args.amp, args.repeats or 3, scale=args.compare_scale, seed=args.seed,
        log=lambda s: print(s, flush=True))
    if changes and args.device == 'cpu' and args.compare_scale == 'mini':
        changes += compare_malloc(args.methods, args.threads, args.repeats or 3, seed=args.seed,
                                  log=lambda s: print(s, flush=True))
    if args.against and args.device == 'cpu':
        changes += compare_commit(args.against, args.methods, args.threads, args.repeats or 3, seed=args.seed,
                                  log=lambda s: print(s, flush=True))
    if changes and not args.no_write:
        write_csv(out / f'{slug}_changes.csv', changes, CHANGE_COLUMNS)
        print(format_changes(changes), flush=True)
    rows = []
    for scale in args.scales:
        for ds in args.datasets or DEFAULT_DATASETS[scale]:
            for key in args.methods:
                rows.append(measure_method(get_method(key), scale, args.device, args.batch, args.amp,
                                           args.repeats, args.parts, peak, args.seed,
                                           log=lambda s: print(s, flush=True), dataset=ds))
                print(f"[speed] {key} {scale} {ds}: {rows[-1]['status']}", flush=True)
                if scale == 'mini' and ds == PROCESS_DATASET and not args.no_process:
                    add_process_cost(rows[-1], log=lambda s: print(s, flush=True))
                if not args.no_write:  # after every method, so a crash keeps what was measured
                    write_csv(out / f'{slug}.csv', add_ratios(rows))
    add_ratios(rows)
    # the peak again at the end: on a shared machine the higher of the two is the device's
    again = matmul_peak(args.device, 'bf16' if args.amp == 'bf16' and args.device != 'cpu' else 'fp32')
    if again[0] > peak[0]:
        peak = (again[0], again[1] + ', the higher of the run\'s start and end')
        set_peak(rows, peak)
    head = (f'Device: {label}; peak {peak[0] / 1e9:.1f} GFLOP/s ({peak[1]}); torch {torch.__version__}; '
            f'amp {args.amp}; malloc {policy}; load average at the end {os.getloadavg()[0]:.2f}; '
            f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.\n'
            f'Command: `python -m benchmarks.speed {" ".join(argv if argv is not None else sys.argv[1:])}`'
            f'. {WEIGHTS_NOTE}. FLOPs: FlopCounterMode (matmul / conv, forward + backward). Memory: '
            f'CPU = the call\'s working set (peak RSS during it - RSS before + model tensors), CUDA = '
            f'max_memory_allocated. Ratios: / CAT-Seg at the same scale on the same dataset, same run.')
    md = head + '\n\n' + format_table(rows)
    if any(r.get('process_test_s') is not None for r in rows):
        md += '\n\n' + format_process(rows)
    if changes:
        md += ('\n\nBefore / after, same process, interleaved repeats (median s per call); `all` = every '
               'applicable switch off vs on, which only approximates the old code (with the text cache off '
               f'the text is encoded per forward, as no version did); `{MALLOC_CHANGE}` and `code@<commit>` '
               '(--against): fresh processes in turn:\n\n' + format_changes(changes))
    if note:
        md += f'\n\nnote: {note}'
    print()
    print(md)
    if not args.no_write:
        write_csv(out / f'{slug}.csv', rows)
        atomic_write_text(out / f'{slug}.md', md + '\n')
        print(f'\nwrote {out / slug}.csv / .md' + (' / _changes.csv' if changes else ''))
    if args.json:
        atomic_write_text(args.json, json.dumps(dict(rows=rows, changes=changes, device=label,
                                                     peak_flops=peak[0]), indent=2, default=str))
    return 1 if any(r['status'].startswith('error') for r in rows) else 0


if __name__ == '__main__':
    from aeroseg.utils.process import exit_now
    exit_now(main())

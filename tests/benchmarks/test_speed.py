"""benchmarks.speed: FLOP counts, ratios, atomic CSV, 'not built' rows, sizes, one real mini row,
and the runner's dry-run estimate reading the speed file."""
import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip('torch')

from benchmarks import speed  # noqa: E402
from benchmarks.common import REPO_ROOT  # noqa: E402
from benchmarks.methods import _METHODS, Method  # noqa: E402


def test_flop_count_of_a_known_module_forward_and_backward():
    lin = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64, requires_grad=True)
    flops, y = speed.count_flops(lambda: lin(x))
    assert flops == 2 * 8 * 64 * 32 and y.shape == (8, 32)
    # backward: grad of input and of weight, one matmul each as large as the forward
    flops_b, _ = speed.count_flops(lambda: lin(x).sum().backward())
    assert flops_b == 3 * 2 * 8 * 64 * 32


def test_fused_attention_on_cpu_is_counted_as_its_explicit_matmuls():
    """torch counts the CPU SDPA kernel as 0 FLOPs; ours counts it as q k^T + att v (and backward)."""
    b, h, s, d = 2, 4, 64, 16
    q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
    mask = torch.randn(b, h, s, s)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    fused, _ = speed.count_flops(lambda: sdpa(q, k, v, attn_mask=mask))
    explicit, _ = speed.count_flops(lambda: ((q @ k.transpose(-2, -1) + mask).softmax(-1) @ v))
    assert fused == explicit == 2 * (2 * b * h * s * s * d)
    fused_b, _ = speed.count_flops(lambda: sdpa(q, k, v, attn_mask=mask).sum().backward())
    assert fused_b == fused + 2.5 * fused  # forward + the registered CUDA kernels' backward formula


def test_ratio_columns_are_value_over_catseg_at_the_same_scale():
    rows = [dict(method='catseg', scale='mini', train_s=2.0, infer_s=0.5, train_gflop=10.0),
            dict(method='ovrs', scale='mini', train_s=5.0, infer_s=2.0, train_gflop=None),
            dict(method='ovrs', scale='full', train_s=6.0),
            dict(method='catseg', scale='full', train_s=0.0)]
    speed.add_ratios(rows)
    assert rows[0]['train_s_vs_catseg'] == 1.0
    assert rows[1]['train_s_vs_catseg'] == 2.5 and rows[1]['infer_s_vs_catseg'] == 4.0
    assert rows[1]['train_gflop_vs_catseg'] is None       # a missing value gives no ratio
    assert rows[2]['train_s_vs_catseg'] is None            # reference is 0: no ratio
    assert rows[1]['infer_mem_gb_vs_catseg'] is None
    # per dataset: a row is compared with CAT-Seg's on the same dataset, never another's
    oem = [dict(method='catseg', scale='mini', dataset='oem', train_s=1.0),
           dict(method='ovrs', scale='mini', dataset='oem', train_s=3.0),
           dict(method='ovrs', scale='mini', dataset='dlrsd', train_s=3.0)]
    speed.add_ratios(oem)
    assert oem[1]['train_s_vs_catseg'] == 3.0 and oem[2]['train_s_vs_catseg'] is None


def test_a_dataset_with_fewer_classes_is_measured_on_its_own_config():
    """The per-class work follows the config's classes: OEM's 8 cost less than iSAID's 15."""
    torch.set_num_threads(1)
    speed._setup_imports()
    rows = {ds: speed.measure_method(_METHODS['catseg'], 'mini', repeats=1, parts=('infer',),
                                     log=lambda s: None, dataset=ds) for ds in ('isaid', 'oem')}
    assert all(r['status'] == 'ok' for r in rows.values())
    assert rows['oem']['config'].endswith('catseg_vitb16_oem.py') and rows['oem']['dataset'] == 'oem'
    assert 0 < rows['oem']['infer_gflop'] < rows['isaid']['infer_gflop']


def test_csv_is_written_atomically_and_a_bad_row_keeps_the_old_file(tmp_path):
    p = tmp_path / 'speed' / 'dev.csv'
    speed.write_csv(p, [dict(method='catseg', scale='mini', status='ok', train_s=1.23456789)])
    rows = list(csv.DictReader(open(p)))
    assert rows[0]['train_s'] == '1.234568' and rows[0]['infer_s'] == ''
    assert list(rows[0]) == list(speed.COLUMNS)
    with pytest.raises(ValueError, match='not in the columns'):
        speed.write_csv(p, [dict(method='x', scale='mini', status='ok', bogus=1)])
    assert list(csv.DictReader(open(p)))[0]['method'] == 'catseg'   # untouched
    assert sorted(x.name for x in p.parent.iterdir()) == ['dev.csv']  # no temp file left


def test_a_method_without_config_is_reported_not_built():
    m = Method('zz_future', 'Future', 'configs/zz_future/zz_future_{ds}.py', 'none')
    row = speed.measure_method(m, 'mini')
    assert row['status'].startswith('not built') and 'zz_future_isaid.py' in row['status']
    assert row.get('train_s') is None
    md = speed.format_table(speed.add_ratios([row]))
    assert 'Future' in md and 'not built' in md


def test_each_method_gets_its_own_input_sizes():
    from aeroseg.config import load_config
    sizes = {k: speed.input_sizes(load_config(str(REPO_ROOT / c)))
             for k, c in speed.method_configs(trained_only=False).items()}
    assert sizes['catseg'] == (384, 640) and sizes['aeroseg'] == (384, 640)  # SAM resizes inside
    assert sizes['san'] == (640, 640)
    assert sizes['segearthov'][1] == 448
    assert speed.input_sizes(load_config(str(REPO_ROOT / 'configs/ovrs/ovrs_vitb16_isaid.py'),
                                         scale='mini')) == (128, 128)


def test_one_real_mini_row_in_process(tmp_path):
    torch.set_num_threads(1)
    speed._setup_imports()
    peak = (1e10, 'fixed for the test')
    row = speed.measure_method(_METHODS['catseg'], 'mini', repeats=1, peak=peak, log=lambda s: None)
    assert row['status'] == 'ok', row['status']
    assert row['train_batch'] == 4 and row['train_size'] == 128 and row['test_mode'] == 'whole'
    assert row['train_gflop'] > row['infer_gflop'] > 0 and row['train_s'] > 0 and row['infer_s'] > 0
    assert row['train_peak_frac'] == pytest.approx(row['train_gflops_per_s'] * 1e9 / 1e10)
    assert row['train_mem_gb'] > 0 and row['params_m'] > row['trainable_m'] > 0
    speed.add_ratios([row])
    assert row['infer_s_vs_catseg'] == 1.0
    speed.write_csv(tmp_path / 'dev.csv', [row])
    rows, path = speed.load_speed('dev', root=tmp_path, slug=True)
    assert path == tmp_path / 'dev.csv' and rows[('catseg', 'mini')]['train_s'] == pytest.approx(row['train_s'])
    assert rows[('catseg', 'mini', 'isaid')] is rows[('catseg', 'mini')]
    # a file from before the dataset column: its rows are iSAID's
    (tmp_path / 'old.csv').write_text('method,scale,status,train_s,infer_s\ncatseg,mini,ok,0.5,0.1\n')
    rows, _ = speed.load_speed('old', root=tmp_path, slug=True)
    assert rows[('catseg', 'mini', 'isaid')]['train_s'] == 0.5 and ('catseg', 'mini', 'oem') not in rows


def test_device_label_names_the_cpu_and_threads():
    lab = speed.device_label('cpu', threads=3)
    assert lab.startswith('CPU ') and lab.endswith('(3 threads)')
    assert speed.device_slug('CPU Intel(R) Xeon(R) (2 threads)') == 'cpu-intel-r-xeon-r-2-threads'


def _job(method, dataset, train=True, config='configs/catseg/catseg_vitb16_isaid.py'):
    spec = SimpleNamespace(method=method, dataset=dataset, train=train, config=config)
    return SimpleNamespace(spec=spec, path=REPO_ROOT / config, exists=True, iters=None,
                           est_train_s=0.0, est_test_s=0.0, basis='')


def test_dry_run_estimate_reads_the_speed_file_per_method(tmp_path):
    from benchmarks.runner import cli
    f = tmp_path / 'speed' / 'my-gpu.csv'
    speed.write_csv(f, [
        dict(method='catseg', scale='full', status='ok', train_batch=1, train_s=0.5, infer_s=0.2),
        dict(method='catseg', scale='mini', status='ok', train_batch=4, train_s=0.1, train_cpu_s=0.19,
             infer_s=0.05),  # no infer_cpu_s: its wall time stands in
        dict(method='ovrs', scale='full', status='not built')])
    jobs = [_job('catseg', 'isaid'), _job('ovrs', 'isaid', config='configs/ovrs/ovrs_vitb16_isaid.py')]
    cli.estimate(jobs, tmp_path / 'work', 'full', speed_file=f)
    cat, ovrs = jobs
    # catseg: config batch 4 (configs/catseg), step measured at batch 1 -> x4; 10k iterations
    assert cat.est_train_s == pytest.approx(cli.config_iters(cat.path) * 0.5 * 4)
    assert cat.est_test_s == pytest.approx(cli.VAL_IMAGES['isaid'] * 0.2)
    assert 'speed file speed/my-gpu.csv, batch 1 -> 4' in cat.basis
    assert 'assumed' in ovrs.basis                      # no figures for it: the assumed numbers
    mini = [_job('catseg', 'isaid')]
    cli.estimate(mini, tmp_path / 'work', 'mini', speed_file=f)
    # mini: CPU s (one thread per slot) + the fixed cost of each of the job's two processes
    assert mini[0].est_train_s == pytest.approx(cli.MINI_ITERS * 0.19 + cli.MINI_PROCESS_S)
    assert mini[0].est_test_s == pytest.approx(cli.MINI_VAL_IMAGES * 0.05 + cli.MINI_PROCESS_S)
    assert 'speed file' in mini[0].basis and 'per process (assumed)' in mini[0].basis
    # a file with this machine's measured process cost: that instead of the constant
    speed.write_csv(f, [dict(method='catseg', scale='mini', status='ok', train_batch=4, train_s=0.1,
                             train_cpu_s=0.19, infer_s=0.05, process_train_s=7.5, process_test_s=4.0)])
    cli.estimate(mini, tmp_path / 'work', 'mini', speed_file=f)
    assert mini[0].est_train_s == pytest.approx(cli.MINI_ITERS * 0.19 + 7.5)
    assert mini[0].est_test_s == pytest.approx(cli.MINI_VAL_IMAGES * 0.05 + 4.0)
    assert '200 it x CPU s/step + 100 img x CPU s/image + 8 / 4 s per train / test process (measured)' \
        in mini[0].basis
    # a measured 0 s stays 0 (not the constant); a file without the train process: the constant
    speed.write_csv(f, [dict(method='catseg', scale='mini', status='ok', train_batch=4, train_s=0.1,
                             train_cpu_s=0.19, infer_s=0.05, process_train_s=0.0, process_test_s=4.0)])
    cli.estimate(mini, tmp_path / 'work', 'mini', speed_file=f)
    assert mini[0].est_train_s == pytest.approx(cli.MINI_ITERS * 0.19)
    speed.write_csv(f, [dict(method='catseg', scale='mini', status='ok', train_batch=4, train_s=0.1,
                             train_cpu_s=0.19, infer_s=0.05, process_test_s=4.0)])
    cli.estimate(mini, tmp_path / 'work', 'mini', speed_file=f)
    assert mini[0].est_train_s == pytest.approx(cli.MINI_ITERS * 0.19 + cli.MINI_PROCESS_S)
    assert '25 / 4 s per train / test process (measured where the file has it, else 25 s)' in mini[0].basis
    speed.write_csv(f, [dict(method='catseg', scale='mini', status='ok', train_batch=4, train_s=0.1,
                             train_cpu_s=0.19, infer_s=0.05, process_train_s=7.5, process_test_s=4.0)])
    free = [_job('catseg', 'isaid', train=False)]                 # a test-only job: one process
    cli.estimate(free, tmp_path / 'work', 'mini', speed_file=f)
    assert free[0].est_train_s == 0.0 and free[0].est_test_s == pytest.approx(mini[0].est_test_s)
    assert 'test only: 100 img x CPU s/image + 4 s per test process (measured)' in free[0].basis
    # a row of the job's own dataset first (its class count), the process cost from the iSAID row
    speed.write_csv(f, [dict(method='catseg', scale='mini', dataset='isaid', status='ok', train_s=0.1,
                             train_cpu_s=0.19, infer_s=0.05, process_train_s=7.5, process_test_s=4.0),
                        dict(method='catseg', scale='mini', dataset='oem', status='ok', train_s=0.06,
                             train_cpu_s=0.11, infer_s=0.03)])
    by_ds = [_job('catseg', 'oem', config='configs/catseg/catseg_vitb16_oem.py'), _job('catseg', 'dlrsd')]
    cli.estimate(by_ds, tmp_path / 'work', 'mini', speed_file=f)
    assert by_ds[0].est_train_s == pytest.approx(cli.MINI_ITERS * 0.11 + 7.5)
    assert by_ds[0].est_test_s == pytest.approx(cli.MINI_VAL_IMAGES * 0.03 + 4.0)
    assert '(oem row)' in by_ds[0].basis and '(measured)' in by_ds[0].basis
    assert by_ds[1].est_train_s == pytest.approx(cli.MINI_ITERS * 0.19 + 7.5)   # no dlrsd row: iSAID's
    cli.estimate(mini, tmp_path / 'work', 'mini', speed_file=tmp_path / 'none.csv')
    assert 'assumed' in mini[0].basis                   # no file: assumed


def test_amp_is_off_by_default_and_bf16_when_asked():
    from mmengine.config import Config
    from benchmarks import test as bench_test
    from benchmarks import train as bench_train
    a = bench_train.parse_args(['configs/catseg/catseg_vitb16_isaid.py'])
    assert a.amp is False
    a = bench_train.parse_args(['configs/catseg/catseg_vitb16_isaid.py', '--amp'])
    assert a.amp and a.amp_dtype == 'bf16'
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))))
    bench_train.enable_amp(cfg, 'bf16')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    assert 'loss_scale' not in cfg.optim_wrapper
    with bench_test.amp_autocast(None):
        pass
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='no CUDA device'):
            bench_test.amp_autocast('bf16')


def test_this_devices_file_is_found_without_torch(tmp_path, monkeypatch):
    if list(Path('/proc/driver/nvidia/gpus').glob('*/information')):
        pytest.skip('a GPU machine reads the GPU file')
    monkeypatch.setattr(speed, '_cpu_model', lambda: 'AMD EPYC')
    monkeypatch.setattr(speed, '_cpu_isa', lambda: 'AVX512')
    monkeypatch.setattr(speed.os, 'cpu_count', lambda: 8)
    assert speed._this_device_file(tmp_path) is None
    (tmp_path / 'cpu-amd-epyc-avx2-8-threads.csv').write_text('method,scale,status\n')
    assert speed._this_device_file(tmp_path) is None          # another ISA: another CPU
    (tmp_path / 'cpu-amd-epyc-8-threads.csv').write_text('method,scale,status\n')
    assert speed._this_device_file(tmp_path).name == 'cpu-amd-epyc-8-threads.csv'  # named before the ISA
    for n in (2, 4):
        (tmp_path / f'cpu-amd-epyc-avx512-{n}-threads.csv').write_text('method,scale,status\n')
    assert speed._this_device_file(tmp_path).name == 'cpu-amd-epyc-avx512-4-threads.csv'   # most threads
    (tmp_path / 'cpu-amd-epyc-avx512-8-threads.csv').write_text('method,scale,status\n')
    assert speed._this_device_file(tmp_path).name == 'cpu-amd-epyc-avx512-8-threads.csv'   # this machine's
    # a job of `benchmarks.run --parallel 4` runs on 2 threads: that file first, when there is one
    assert speed._this_device_file(tmp_path, threads=2).name == 'cpu-amd-epyc-avx512-2-threads.csv'
    assert speed._this_device_file(tmp_path, threads=1).name == 'cpu-amd-epyc-avx512-8-threads.csv'
    assert speed.device_label('cpu', threads=2) == 'CPU AMD EPYC, AVX512 (2 threads)'
    assert speed.device_slug(speed.device_label('cpu', threads=2)) == 'cpu-amd-epyc-avx512-2-threads'


def test_cpu_isa_is_read_from_the_flags(monkeypatch):
    for flags, isa in (('fpu sse2 avx avx2 fma', 'AVX2'), ('avx2 avx512f avx512bw', 'AVX512'), ('fpu sse2', None)):
        monkeypatch.setattr(speed, '_cpuinfo', lambda key, f=flags: f if key == 'flags' else 'X')
        assert speed._cpu_isa() == isa


def test_peak_fraction_follows_the_higher_peak():
    rows = [dict(method='catseg', scale='mini', status='ok', train_gflops_per_s=20.0, infer_gflops_per_s=None),
            dict(method='sed', scale='mini', status='not built')]
    speed.set_peak(rows, (200e9, 'x'))
    assert rows[0]['train_peak_frac'] == pytest.approx(0.1) and rows[0]['peak_gflops'] == 200
    assert 'infer_peak_frac' not in rows[0] and 'peak_gflops' not in rows[1]


def test_each_speed_change_applies_to_the_models_that_have_its_code():
    """The before / after table switches a change only where the model runs that code: the SAM
    attention only in AerOSeg, window batching only in slide mode, neither attention change in SAN
    (its own head, no SAM), neither padding nor shared guidance in SED's class refinement."""
    speed._setup_imports()
    applies = {}
    for key in ('catseg', 'aeroseg', 'san', 'sed'):
        model, _ = speed.build_model(speed.resolve_config(key), 'mini')
        applies[key] = {c.name for c in speed.CHANGES if c.applies(model)}
    assert applies['aeroseg'] == {'window_batch', 'fused_attention', 'fused_sam_attention',
                                  'dedup_padding', 'guidance_once', 'text_cache'}
    assert applies['catseg'] == {'fused_attention', 'dedup_padding', 'guidance_once', 'text_cache'}
    assert 'fused_attention' not in applies['san'] and 'fused_sam_attention' not in applies['san']
    # SED's class refinement has no guidance (and no padding): nothing to project once
    assert not {'guidance_once', 'dedup_padding'} & applies['sed']


def test_a_slot_gets_the_cores_over_parallel_unless_omp_threads_is_set(monkeypatch):
    from types import SimpleNamespace
    from benchmarks.runner import launch
    monkeypatch.setattr(launch.os, 'cpu_count', lambda: 8)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    monkeypatch.setattr(launch, '_cuda_count', lambda: 0)
    opts = SimpleNamespace(parallel=4, devices=None, gpus=1)
    assert launch.slot_threads(opts) == 2
    assert [e['OMP_NUM_THREADS'] for e in launch.slot_envs(opts)] == ['2'] * 4   # the same rule
    assert launch.slot_threads(SimpleNamespace(parallel=1)) == 8
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert launch.slot_threads(opts) == 3


@pytest.mark.skipif(not speed.sys.platform.startswith('linux'), reason="glibc's mallopt")
def test_the_allocator_before_after_runs_fresh_processes_and_changes_no_score():
    # catseg: trained (both parts) and cheap; one round of the two process states
    rows = speed.compare_malloc(['catseg'], threads=1, repeats=1, rounds=1, log=lambda s: None)
    got = {(r['change'], r['part']): r for r in rows}
    assert set(got) == {(speed.MALLOC_CHANGE, 'train'), (speed.MALLOC_CHANGE, 'infer')}
    assert got[(speed.MALLOC_CHANGE, 'infer')]['max_abs_diff'] == 0.0   # same kernels, same values
    assert all(r['before_s'] > 0 and r['after_s'] > 0 and r['speedup'] == r['before_s'] / r['after_s']
               for r in rows)


def test_against_a_commit_times_that_code_in_its_own_tree():
    import subprocess
    head = subprocess.run(['git', '-C', str(REPO_ROOT), 'rev-parse', '--short', 'HEAD'],
                          capture_output=True, text=True, check=True).stdout.strip()
    logs = []
    rows = speed.compare_commit('HEAD', ['catseg'], threads=1,
                                repeats=1, rounds=1, log=logs.append)
    assert {(r['change'], r['part']) for r in rows} == {(f'code@{head}', 'train'), (f'code@{head}', 'infer')}
    # the committed tree computes what this checkout computes (up to local edits of a model file)
    assert rows[1]['max_abs_diff'] is not None and rows[1]['max_abs_diff'] < 1e-3
    with pytest.raises(ValueError, match=r"--against 'no-such-commit': not a commit"):
        speed.compare_commit('no-such-commit', ['catseg'])

"""Runner without training: dry-run, lock, commands, job states (fast; no mmengine runs)."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.runner import cli, launch, plan
from benchmarks.runner.plan import JobState
from benchmarks.tables import TABLES, cells, plan_jobs

from bench_helpers import REPO, bench_env, fake_steps, run_bench


def test_dry_run_full_prints_every_job_and_touches_nothing(tmp_path):
    work, res, cache, data = (tmp_path / n for n in ('work', 'results', 'cache', 'data'))
    env = bench_env(AEROSEG_CACHE=cache)
    for scale in ('full', 'mini'):
        r = run_bench(['--dry-run', '--scale', scale, '--work-dir', work, '--results-dir', res,
                       '--data-root', data, '--commands'], env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        out = r.stdout
        # 45 (config, seed) jobs; Table 3's Baseline resolves to the OVRS config: 3 shared; at
        # mini scale Table 6's SAM ViT-H and Table 7's three CLIPs are the main AerOSeg row (one
        # tiny SAM, one tiny CLIP) and SAM 2.1 is SAM 2 (one tiny Hiera): 5 more shared
        assert f'Plan: {dict(full=42, mini=37)[scale]} jobs (scale {scale}' in out
        same_at_mini = ('configs/aeroseg/ablations/t6_sam-vith_isaid.py = '
                        'configs/aeroseg/aeroseg_vitb16_isaid.py')
        assert (same_at_mini in out) == (scale == 'mini')
        assert 'configs/aeroseg/ablations/t3_baseline_oem.py = configs/ovrs/ovrs_vitb16_oem.py' in out
        for j in plan_jobs(cells(TABLES)):
            assert j.config in out                     # every job listed (and its command)
            assert f'{Path(j.config).with_suffix("").as_posix()[len("configs/"):]}' in out
        assert 'Estimate:' in out and ('GPU-h' if scale == 'full' else 'CPU-h') in out
        assert '--cfg-options randomness.seed=0' in out
    assert not any(p.exists() for p in (work, res, cache, data)), 'dry-run must not write anything'
    assert list(tmp_path.iterdir()) == []


def test_dry_run_uses_config_iterations_and_states(fake_world, tmp_path):
    pytest.importorskip('mmengine')
    root, spec = fake_world
    r = run_bench(['--dry-run', '--spec', spec, '--work-dir', tmp_path / 'w', '--results-dir',
                   tmp_path / 'r', '--commands'])
    assert r.returncode == 0, r.stderr
    assert 'Plan: 3 jobs' in r.stdout                  # AerOSeg shared by T2 and T8: once
    assert 'missing config' in r.stdout and 'T2 SAN' in r.stdout
    assert '20 it (train_cfg.max_iters)' in r.stdout   # read from the config, not the paper
    assert 'test only' in r.stdout                     # training-free row
    assert not (tmp_path / 'w').exists()


def _opts(**kw):
    base = dict(python='py', gpus=1, launcher='none', scale='full', partition=None, gpus_per_node=8,
                cpus_per_task=5, srun_args='', job_name='b')
    base.update(kw)
    return SimpleNamespace(**base)


def _job(tmp_path, train=True):
    spec = plan_jobs(cells(TABLES, methods=['Config-A'], datasets=['oem']), seeds=[3])[0]
    spec.train = train
    return plan.Job(spec, plan.job_name(spec), REPO / spec.config, tmp_path / 'job',
                   plan.data_root_for('/data', spec.dataset), True, hash='abc')


def test_commands_single_multi_gpu_and_slurm(tmp_path):
    j = _job(tmp_path)
    c = launch.train_command(j, _opts(), resume=True)
    assert c[:4] == ['py', '-m', 'benchmarks.train', 'configs/aeroseg/ablations/t3_config-a_oem.py']
    assert c[c.index('--data-root') + 1] == '/data/oem'
    assert c[c.index('--cfg-options') + 1] == 'randomness.seed=3'
    assert '--resume' in c and c[-2:] == ['--launcher', 'none']
    c = launch.test_command(j, _opts(gpus=4))
    assert c[:6] == ['py', '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=4', '-m']
    assert c[6:9] == ['benchmarks.test', 'configs/aeroseg/ablations/t3_config-a_oem.py',
                      str(tmp_path / 'job' / 'final_weights.pth')]
    assert c[-2:] == ['--launcher', 'pytorch']
    c = launch.train_command(j, _opts(gpus=2, launcher='slurm', partition='gpu'), resume=False)
    assert c[:3] == ['srun', '-p', 'gpu'] and '--gres=gpu:2' in c and '--ntasks=2' in c
    assert c[-2:] == ['--launcher', 'slurm'] and '--resume' not in c
    free = launch.test_command(_job(tmp_path, train=False), _opts())
    assert 'final_weights.pth' not in ' '.join(free)


def test_amp_reaches_both_commands_and_the_job_identity(tmp_path):
    """--amp on the runner: train and test get --amp --amp-dtype; the job hash (built by the runner)
    equals the one the entry points record for the same flags and differs from the fp32 one, so a
    finished fp32 job is not taken for an AMP one (nor the reverse)."""
    pytest.importorskip('mmengine')
    from benchmarks import test as bench_test
    from benchmarks.common import amp_of, config_hash
    j = _job(tmp_path)
    for cmd in (launch.train_command(j, _opts(amp='fp16'), resume=False), launch.test_command(j, _opts(amp='fp16'))):
        assert cmd[cmd.index('--amp') + 1:cmd.index('--amp') + 3] == ['--amp-dtype', 'fp16']
    assert '--amp' not in launch.train_command(j, _opts(), resume=False)
    assert cli.parse_args(['--amp']).amp == 'bf16' and cli.parse_args([]).amp is None
    spec = plan_jobs(cells(TABLES, methods=['CAT-Seg'], datasets=['isaid']))[0]
    fp32, bf16 = (plan.build_jobs([spec], tmp_path / 'w', 'full', None, amp=a)[0] for a in (None, 'bf16'))
    assert fp32.hash != bf16.hash
    args = bench_test.parse_args([spec.config, '--amp', '--cfg-options', 'randomness.seed=0'])
    assert amp_of(args) == 'bf16'
    assert config_hash(spec.config, 'full', None, args.cfg_options, amp=amp_of(args)) == bf16.hash
    assert config_hash(spec.config, 'full', None, args.cfg_options) == fp32.hash


def test_assess_states(tmp_path):
    j = _job(tmp_path)
    assert plan.assess(j) == JobState.TODO
    j.dir.mkdir()
    ck = j.dir / 'iter_5.pth'
    ck.write_bytes(b'x')
    (j.dir / 'last_checkpoint').write_text(str(ck))
    (j.dir / 'job.json').write_text(json.dumps({'config_hash': 'abc', 'status': 'running'}))
    assert plan.assess(j) == JobState.RESUME
    (j.dir / 'train_done.json').write_text(json.dumps({'config_hash': 'abc'}))
    (j.dir / 'final_weights.pth').write_bytes(b'x')
    assert plan.assess(j) == JobState.TEST
    (j.dir / 'metrics.json').write_text(json.dumps({'config_hash': 'abc', 'metrics': {'h-mIoU': 1}}))
    assert plan.assess(j) == JobState.DONE
    assert plan.assess(j, force=True) == JobState.FORCED
    j.hash = 'changed'                                  # config edited since: start afresh
    assert plan.assess(j) == JobState.STALE
    j.exists = False
    assert plan.assess(j) == JobState.MISSING


def test_lock_refuses_live_owner_and_takes_over_stale(tmp_path):
    a = launch.RunLock(tmp_path)
    a.acquire()
    info = json.loads((tmp_path / launch.LOCK_NAME).read_text())
    assert info['pid'] == os.getpid() and info['host'] == platform.node()
    with pytest.raises(launch.LockedError, match=f'pid {os.getpid()}'):
        launch.RunLock(tmp_path).acquire()
    a.release()
    assert not (tmp_path / launch.LOCK_NAME).exists()
    # stale: the owner pid is gone
    p = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    (tmp_path / launch.LOCK_NAME).write_text(json.dumps({'pid': int(p.stdout), 'host': platform.node(),
                                                      'started': 'x', 'argv': []}))
    b = launch.RunLock(tmp_path)
    b.acquire()
    assert json.loads((tmp_path / launch.LOCK_NAME).read_text())['pid'] == os.getpid()
    b.release()
    # pid reused by another process: start time differs -> stale
    (tmp_path / launch.LOCK_NAME).write_text(json.dumps({'pid': os.getpid(), 'host': platform.node(),
                                                      'proc_start': '1', 'argv': []}))
    launch.RunLock(tmp_path).acquire()


def test_second_runner_process_refuses(fake_world, tmp_path):
    root, spec = fake_world
    lock = launch.RunLock(tmp_path)
    lock.acquire()
    try:
        r = run_bench(['--spec', spec, '--work-dir', tmp_path, '--results-dir', tmp_path / 'r'], timeout=120)
    finally:
        lock.release()
    assert r.returncode == 2
    assert 'another benchmark runner holds' in r.stderr and str(os.getpid()) in r.stderr
    assert not (tmp_path / 'r').exists()


def test_error_line_from_log(tmp_path):
    log = tmp_path / 'run.log'
    log.write_text('Traceback (most recent call last):\n  File "x"\nKeyError: \'FooHead is not in the '
                   'mmseg::model registry\'\nsome trailing line\n')
    assert launch.error_from_log(log, 1) == "exit 1: KeyError: 'FooHead is not in the mmseg::model registry'"


@pytest.mark.skipif(not (REPO / '.venv' / 'bin' / 'python').is_file(), reason='no .venv')
def test_run_all_sh_defaults_to_mini_without_data_root(tmp_path):
    env = bench_env(AEROSEG_CACHE=tmp_path / 'cache')
    common = ['--dry-run', '--work-dir', tmp_path / 'w', '--results-dir', tmp_path / 'r']
    sh = lambda *a: subprocess.run(['bash', str(REPO / 'run_all.sh'), *map(str, a)], cwd=tmp_path,
                                   env=env, capture_output=True, text=True, timeout=120)
    r = sh(*common)
    assert r.returncode == 0, r.stderr
    assert 'Plan: 37 jobs (scale mini' in r.stdout and 'running --scale mini' in r.stderr
    r = sh(*common, '--data-root', tmp_path / 'data', '--tables', '6')
    assert r.returncode == 0, r.stderr
    assert 'Plan: 4 jobs (scale full' in r.stdout
    env['AEROSEG_DATA'] = str(tmp_path / 'data')
    r = subprocess.run(['bash', str(REPO / 'run_all.sh'), *map(str, common)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert 'Plan: 42 jobs (scale full' in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_config_hash_is_content_based(tmp_path, monkeypatch):
    pytest.importorskip('mmengine')
    from benchmarks.common import config_hash
    (tmp_path / 'base.py').write_text('a = 1\nb = dict(c=2)\n')
    (tmp_path / 'x.py').write_text("_base_ = ['base.py']\nb = dict(c=3)\nwork_dir = 'anywhere'\n")
    h = config_hash(tmp_path / 'x.py')
    monkeypatch.chdir(tmp_path)
    assert config_hash('x.py') == h                                   # path form does not matter
    assert config_hash('x.py', cfg_options={'work_dir': 'elsewhere'}) == h
    assert config_hash('x.py', cfg_options={'randomness.seed': 1}) != h
    assert config_hash('x.py', scale='mini') != h
    assert config_hash('x.py', data_root='/data/isaid') != h
    (tmp_path / 'base.py').write_text('a = 2\nb = dict(c=2)\n')      # an edited _base_ counts
    assert config_hash('x.py') != h


def test_mini_hash_follows_tiny_weights_and_generator(tmp_path, monkeypatch):
    """A retrained tiny CLIP / SAM or a new generator version makes finished mini jobs stale;
    full-scale hashes do not depend on the mini world; given data, the generator does not count."""
    pytest.importorskip('mmengine')
    import benchmarks.common as common
    root = tmp_path / 'repo'
    (root / 'configs/_base_/scale').mkdir(parents=True)
    gen = root / common.MINI_GENERATOR
    gen.parent.mkdir(parents=True)
    (root / 'assets').mkdir()
    (root / 'configs/_base_/scale/mini.py').write_text(
        "clip = dict(pretrained='assets/clip.pt')\nsam = dict(checkpoint='assets/sam.pth')\n"
        "sam2 = dict(checkpoint=None)\niters = dict(default=200)\n")
    (root / 'assets/clip.pt').write_bytes(b'clip v1')
    (root / 'assets/sam.pth').write_bytes(b'sam v1')
    gen.write_text('GENERATOR_VERSION = 1\n')
    (tmp_path / 'x.py').write_text('a = 1\n')
    monkeypatch.setattr(common, 'REPO_ROOT', root)
    x = tmp_path / 'x.py'
    mini, full, given = (common.config_hash(x, 'mini'), common.config_hash(x),
                         common.config_hash(x, 'mini', data_root='/d'))
    (root / 'assets/clip.pt').write_bytes(b'clip v2 (retrained)')
    assert common.config_hash(x, 'mini') != mini
    assert common.config_hash(x, 'mini', data_root='/d') != given
    assert common.config_hash(x) == full
    mini2, given2 = common.config_hash(x, 'mini'), common.config_hash(x, 'mini', data_root='/d')
    gen.write_text('GENERATOR_VERSION = 2\n')
    assert common.config_hash(x, 'mini') != mini2
    assert common.config_hash(x, 'mini', data_root='/d') == given2
    (root / 'configs/_base_/scale/mini.py').write_text(
        "clip = dict(pretrained='assets/clip.pt')\nsam = dict(checkpoint='assets/sam.pth')\n"
        "sam2 = dict(checkpoint=None)\niters = dict(default=400)\n")
    assert common.config_hash(x, 'mini', data_root='/d') != given2   # overlay values count


def test_mini_hash_is_the_overlaid_config_and_location_free(monkeypatch):
    """At mini scale the hash is that of the config the run uses (overlay applied): variants
    that the overlay maps to the same tiny encoders hash equal, those it keeps apart do not;
    asset paths enter relative to the checkout."""
    pytest.importorskip('mmengine')
    import benchmarks.common as common
    main = 'configs/aeroseg/aeroseg_vitb16_isaid.py'
    vith = 'configs/aeroseg/ablations/t6_sam-vith_isaid.py'
    assert common.config_hash(main, 'mini') == common.config_hash(vith, 'mini')
    assert common.config_hash(main) != common.config_hash(vith)
    finetuned = 'configs/aeroseg/ablations/t4_guidance-finetuned_isaid.py'
    assert common.config_hash(main, 'mini') != common.config_hash(finetuned, 'mini')  # kept by the overlay
    assert common.config_hash(main, 'mini') != common.config_hash(main, 'mini', cfg_options={
        'model.vocabulary.train': 'all'})
    root = str(common.REPO_ROOT)
    assert common._repo_relative({'a': [root + '/x/y.pt', '/elsewhere/z.pt'], 'b': (root,)}) == \
        {'a': ['x/y.pt', '/elsewhere/z.pt'], 'b': (root,)}


def test_failing_job_does_not_stop_others(fake_world, tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    root, spec = fake_world
    monkeypatch.setattr(launch, 'run_logged', fake_steps(fail_train_of='fake_isaid'))
    rc = cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'), '--results-dir', str(tmp_path / 'r')])
    out = capsys.readouterr().out
    assert rc == 1
    assert 'FAIL  ext/fake_isaid seed0' in out and 'OK    ext/free_isaid seed0' in out  # went on
    assert 'Failures (1):' in out and 'train exit 1: ValueError: boom' in out
    res = tmp_path / 'r' / 'full'
    import csv
    runs = {r['job']: r for r in csv.DictReader(open(res / 'runs.csv'))}
    assert runs['ext/fake_isaid']['status'] == 'failed'
    assert runs['ext/fake_isaid']['error'] == 'train exit 1: ValueError: boom'
    assert runs['ext/free_isaid']['status'] == 'ok' and runs['ext/free_isaid']['mIoU'] == '12.5'
    t8 = {r['config']: r for r in csv.DictReader(open(res / 'table8.csv'))}
    assert t8['SegEarth-OV']['value'] == '12.5000' and t8['AerOSeg']['value'] == ''
    assert 'AerOSeg / iSAID: failed: train exit 1: ValueError: boom' in (res / 'table2.md').read_text()
    assert not (tmp_path / 'w' / launch.LOCK_NAME).exists()
    # the next run retries only the failed job
    monkeypatch.setattr(launch, 'run_logged', fake_steps())
    assert cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'), '--results-dir', str(tmp_path / 'r')]) == 0
    out = capsys.readouterr().out
    assert 'RUN   ext/fake_isaid seed0' in out and 'SKIP  done: ext/free_isaid seed0' in out


def test_interrupt_marks_job_and_frees_lock(fake_world, tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    root, spec = fake_world
    monkeypatch.setattr(launch, 'run_logged', fake_steps(fail_train_of='fake_isaid', interrupt=True))
    rc = cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'), '--results-dir', str(tmp_path / 'r')])
    assert rc == 130
    assert 'rerun the same command to resume' in capsys.readouterr().err
    jd = tmp_path / 'w' / 'full' / 'ext' / 'fake_isaid' / 'seed0'
    assert json.loads((jd / 'job.json').read_text())['status'] == 'interrupted'
    assert not (tmp_path / 'w' / launch.LOCK_NAME).exists()
    assert (tmp_path / 'r' / 'full' / 'runs.csv').is_file()


def _parallel_steps(seen, barrier, interrupt_of=None):
    """Fake steps that must overlap: each job's first step waits at a barrier both slots reach,
    and records its slot's environment. With ``interrupt_of`` that job raises Ctrl-C once both run; the
    other behaves like run_logged does when the runner stops (raises once _STOP is set)."""
    base = fake_steps()

    def fake(cmd, log, verbose, env_extra=None):
        wd = Path(cmd[cmd.index('--work-dir') + 1])
        if wd.parent.name not in seen:
            seen[wd.parent.name] = dict(env_extra or {})
            barrier.wait(timeout=20)  # BrokenBarrierError (job fails) if the jobs ran one by one
            if interrupt_of:
                if interrupt_of in str(wd):
                    raise KeyboardInterrupt
                assert launch._STOP.wait(timeout=20)
                raise KeyboardInterrupt
        return base(cmd, log, verbose)
    return fake


def test_parallel_slots_run_together_with_own_devices(fake_world, tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    import csv
    import threading
    root, spec = fake_world
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 8)
    seen = {}
    monkeypatch.setattr(launch, 'run_logged', _parallel_steps(seen, threading.Barrier(2)))
    args = ['--spec', str(spec), '--work-dir', str(tmp_path / 'w'), '--results-dir', str(tmp_path / 'r')]
    assert cli.main(args + ['--parallel', '2', '--devices', '3,5']) == 0
    out = capsys.readouterr().out
    assert sorted(e['CUDA_VISIBLE_DEVICES'] for e in seen.values()) == ['3', '5']
    assert {e['OMP_NUM_THREADS'] for e in seen.values()} == {'4'}
    assert 'slot 0: CUDA_VISIBLE_DEVICES=3 OMP_NUM_THREADS=4' in out and '3/3 jobs' in out
    runs = {r['job']: r for r in csv.DictReader(open(tmp_path / 'r' / 'full' / 'runs.csv'))}
    assert runs['ext/fake_isaid']['status'] == 'ok' and runs['ext/free_isaid']['status'] == 'ok'
    # more slots than GPUs: refused before anything runs
    assert cli.main(args + ['--parallel', '3', '--devices', '3,5', '--force']) == 2
    assert 'needs 3 GPUs, found 2' in capsys.readouterr().err


def test_parallel_interrupt_stops_every_slot(fake_world, tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    import threading
    root, spec = fake_world
    monkeypatch.setattr(launch, 'run_logged', _parallel_steps({}, threading.Barrier(2), interrupt_of='fake_isaid'))
    rc = cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'), '--results-dir',
                   str(tmp_path / 'r'), '--parallel', '2', '--devices', '0,1'])
    assert rc == 130
    for name in ('fake_isaid', 'free_isaid'):
        rec = json.loads((tmp_path / 'w' / 'full' / 'ext' / name / 'seed0' / 'job.json').read_text())
        assert rec['status'] == 'interrupted', name
    assert not (tmp_path / 'w' / launch.LOCK_NAME).exists()


def test_configs_resolving_to_the_same_content_run_once(fake_world, tmp_path, monkeypatch, capsys):
    """A second config file with the same resolved content (as Table 3's Baseline is OVRS) adds
    its cells to the first job instead of training again; a different dataset never merges."""
    pytest.importorskip('mmengine')
    import csv
    root, _ = fake_world
    cfg = root / 'configs'
    (tmp_path / 'alias_isaid.py').write_text((cfg / 'fake_isaid.py').read_text())
    spec = tmp_path / 'spec.py'
    spec.write_text(
        'from benchmarks.tables import Row, Table\n'
        f'C, A = {str(cfg)!r}, {str(tmp_path)!r}\n'
        'TABLES = (\n'
        "    Table('T2', 'x', (Row('AerOSeg', C + '/fake_{ds}.py'),), ('isaid', 'dlrsd'), ('h-mIoU',)),\n"
        "    Table('T3', 'x', (Row('Baseline', A + '/alias_{ds}.py'),), ('isaid',), ('h-mIoU',)),\n"
        ')\n')
    monkeypatch.setattr(launch, 'run_logged', fake_steps())
    assert cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'), '--results-dir', str(tmp_path / 'r')]) == 0
    out = capsys.readouterr().out
    assert 'Plan: 2 jobs' in out and out.count('RUN   ') == 2   # isaid (+ alias) and dlrsd
    assert 'fills T2 AerOSeg, T3 Baseline' in out
    assert not (tmp_path / 'w' / 'full' / 'alias_isaid').exists()
    res = tmp_path / 'r' / 'full'
    t2 = {r['dataset']: r['value'] for r in csv.DictReader(open(res / 'table2.csv'))}
    t3 = {r['config']: r['value'] for r in csv.DictReader(open(res / 'table3.csv'))}
    assert t3['Baseline'] == t2['iSAID'] != ''

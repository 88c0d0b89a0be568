"""benchmarks.ov_transfer: argument parsing, the runs as runner jobs, the report and its last line.

No training: the runs' steps (or whole runs) and the CLIP zero-shot evaluation are stubbed.
"""
import re

import pytest

from benchmarks import ov_transfer as ov

LAST = re.compile(r'^u-mIoU gap \(AerOSeg\): iSAID (-?\d+\.\d|n/a), DLRSD (-?\d+\.\d|n/a), '
                  r'OEM (-?\d+\.\d|n/a)$')


def test_defaults_and_parsing():
    a = ov.parse_args([])
    assert a.datasets == ['isaid', 'dlrsd', 'oem'] and a.models == ['catseg', 'ovrs', 'aeroseg']
    assert a.iters == ov.DEFAULT_ITERS and a.val_limit == ov.DEFAULT_VAL_LIMIT and a.threads == 1
    a = ov.parse_args(['--datasets', 'OEM', 'isaid', 'oem', '--models', 'AerOSeg', 'CAT-Seg',
                       '--iters', '7', '--val-limit', '0', '--force'])
    assert a.datasets == ['oem', 'isaid'] and a.models == ['aeroseg', 'catseg']
    assert a.iters == 7 and a.val_limit == 0 and a.force
    assert [s.name for s in ov.plan(a)][:2] == ['aeroseg_oem_pretrained', 'aeroseg_oem_random']
    assert len(ov.plan(a)) == 16                  # per dataset: AerOSeg 3 seeds x 2, CAT-Seg 2
    assert len(ov.plan(ov.parse_args(['--seed', '4', '--datasets', 'oem']))) == 6
    assert {s.seed for s in ov.plan(ov.parse_args(['--seed', '4']))} == {4}


@pytest.mark.parametrize('bad', [['--datasets', 'loveda'], ['--models', 'san'], ['--iters', '0'],
                                 ['--val-limit', '-1'], ['--cfg-options', 'novalue'],
                                 ['--seed', '1', '--seeds', '2'], ['--parallel', '0']])
def test_bad_arguments_exit(bad, capsys):
    with pytest.raises(SystemExit):
        ov.parse_args(bad)
    assert 'error' in capsys.readouterr().err


def test_run_options():
    a = ov.parse_args(['--iters', '150', '--val-limit', '50', '--seed', '3',
                       '--sam-checkpoint', 's.pth', '--cfg-options', 'x.y=1'])
    assert {s.seed for s in ov.plan(a)} == {3}
    pre = ov.run_cfg_options(ov.RunSpec('catseg', 'isaid', 'pretrained', 3), a)
    rnd = ov.run_cfg_options(ov.RunSpec('aeroseg', 'isaid', 'random', 3), a)
    for o in ('randomness.seed=3', 'train_cfg.max_iters=150', 'param_scheduler.0.T_max=150',
              'param_scheduler.0.end=150', 'train_cfg.val_begin=151',
              'test_dataloader.dataset.indices=50', 'x.y=1'):
        assert o in pre and o in rnd
    # outside weights by role: the random arm's VL encoder at random init; the SAM override only
    # for configs with guidance (CAT-Seg has none)
    assert ov.run_weights(ov.RunSpec('aeroseg', 'isaid', 'random', 3), a) == {'vl': None, 'guidance': 's.pth'}
    assert ov.run_weights(ov.RunSpec('catseg', 'isaid', 'random', 3), a) == {'vl': None}
    assert ov.run_weights(ov.RunSpec('catseg', 'isaid', 'pretrained', 3), a) == {}
    assert not any('indices' in o for o in ov.run_cfg_options(
        ov.RunSpec('catseg', 'isaid', 'random'), ov.parse_args(['--val-limit', '0'])))
    assert ov.RunSpec('ovrs', 'dlrsd', 'random').config == 'configs/ovrs/ovrs_vitb16_dlrsd.py'


def test_runs_are_runner_jobs_with_resolved_weights(tmp_path):
    """Each run is a runner job in the run-dir layout; the random arm's command sets the model's
    own VL weight field to None (through the model's hook), and its hash is the one
    benchmarks.train will compute from exactly those --cfg-options."""
    pytest.importorskip('mmengine')
    from aeroseg.hooks import weight_fields
    from benchmarks.common import config_hash, parse_options, read_config
    from benchmarks.runner import launch, plan
    a = ov.parse_args(['--datasets', 'oem', '--models', 'catseg', 'aeroseg', '--seeds', '0', '1',
                       '--sam-checkpoint', 'none', '--work-dir', str(tmp_path)])
    jobs = plan.build_jobs(ov.job_specs(a), tmp_path, 'mini', None)
    names = [j.label for j in jobs]
    assert names == ['catseg/catseg_vitb16_oem@ov-pretrained seed0', 'catseg/catseg_vitb16_oem@ov-random seed0',
                     'aeroseg/aeroseg_vitb16_oem@ov-pretrained seed0', 'aeroseg/aeroseg_vitb16_oem@ov-random seed0',
                     'aeroseg/aeroseg_vitb16_oem@ov-pretrained seed1', 'aeroseg/aeroseg_vitb16_oem@ov-random seed1']
    assert all(j.state == plan.JobState.TODO and j.error is None for j in jobs)
    assert jobs[1].dir == tmp_path / 'mini' / 'catseg' / 'catseg_vitb16_oem@ov-random' / 'seed0'
    assert len({j.hash for j in jobs}) == len(jobs)
    opts = ov.runner_options(a)
    for j in jobs:
        cmd = launch.train_command(j, opts, resume=False)
        words = cmd[cmd.index('--cfg-options') + 1:cmd.index('--no-validate')]
        model = read_config(ov.REPO_ROOT / j.spec.config).model
        vl = f'model.{weight_fields(model)["vl"]}=None'
        assert (vl in words) == j.name.endswith('@ov-random'), (j.name, words)
        assert ('guidance' in ' '.join(words)) == j.name.startswith('aeroseg'), words
        assert words[0] == f'randomness.seed={j.spec.seed}' and 'train_cfg.max_iters=200' in words
        assert j.hash == config_hash(j.spec.config, 'mini', None, parse_options(words))


def test_finished_runs_are_skipped_failed_ones_retried(tmp_path, monkeypatch, capsys):
    """Through the runner: a finished run is not recomputed (its metrics are read back), a changed
    option or --force recomputes, a failed train is reported and retried on the next call."""
    pytest.importorskip('mmengine')
    from bench_helpers import fake_steps
    from benchmarks.runner import launch
    calls = []
    monkeypatch.setattr(launch, 'run_logged', fake_steps(calls=calls, fail_train_of='@ov-random',
                                                         error='RuntimeError: out of memory'))
    argv = ['--work-dir', str(tmp_path), '--models', 'catseg', '--datasets', 'oem', '--seeds', '0',
            '--skip-zero-shot']
    assert ov.main(argv) == 1
    out = capsys.readouterr().out
    assert [c[0] for c in calls] == ['benchmarks.train', 'benchmarks.test', 'benchmarks.train']
    assert 'FAILED random: train exit 1: RuntimeError: out of memory' in out
    assert '[ov_transfer] 1/2 catseg_oem_pretrained: s-mIoU 20.0 u-mIoU 10.0' in out
    assert not (tmp_path / launch.LOCK_NAME).exists()
    calls.clear()
    monkeypatch.setattr(launch, 'run_logged', fake_steps(calls=calls))
    assert ov.main(argv) == 0
    out = capsys.readouterr().out
    assert [c[0] for c in calls] == ['benchmarks.train', 'benchmarks.test']   # only the failed run
    assert calls[0][1].name == 'seed0' and calls[0][1].parent.name == 'catseg_vitb16_oem@ov-random'
    assert 'catseg_oem_pretrained: s-mIoU 20.0 u-mIoU 10.0 [cached]' in out
    assert out.rstrip('\n').splitlines()[-1] == 'u-mIoU gap (AerOSeg): iSAID n/a, DLRSD n/a, OEM n/a'
    calls.clear()
    assert ov.main(argv) == 0 and calls == []
    assert ov.main(argv + ['--iters', '7']) == 0 and len(calls) == 4          # options changed
    assert (tmp_path / 'mini' / 'catseg' / 'catseg_vitb16_oem@ov-random' / 'seed0.prev').is_dir()
    assert ov.main(argv + ['--iters', '7', '--force']) == 0 and len(calls) == 8


def _fake_metrics(spec):
    u = {'pretrained': {'isaid': 41.26, 'dlrsd': 30.0, 'oem': 12.0}, 'random': 1.0}[spec.clip]
    u = u[spec.ds] if isinstance(u, dict) else u
    return {'s-mIoU': 60.0, 'u-mIoU': u, 'h-mIoU': 2 * 60 * u / (60 + u), 'mIoU': 50.0}


def _zs(args):
    r = {k: 0.5 for k in ('img_rs_seen', 'img_rs_unseen', 'img_scene_seen', 'img_scene_unseen',
                          'img_chance_seen', 'img_chance_unseen', 'dense_value_seen',
                          'dense_value_unseen', 'dense_plain_seen', 'dense_plain_unseen')}
    return {'pretrained': {d: r for d in args.datasets}, 'random': {d: r for d in args.datasets}}


def test_report_last_line_with_stub_runner(tmp_path, capsys):
    calls = []

    def run(spec, args):
        calls.append(spec)
        return {'ok': True, 'metrics': _fake_metrics(spec), 'train_s': 60, 'test_s': 30,
                'vocabulary': {'train': 'seen', 'test': 'all', 'n_train': 1, 'n_test': 3,
                               'n_classes': 3}}

    rc = ov.main(['--work-dir', str(tmp_path)], run_fn=run, zero_shot_fn=_zs)
    out = capsys.readouterr().out.rstrip('\n').splitlines()
    assert rc == 0 and len(calls) == 30        # AerOSeg 3 seeds x 2 CLIPs x 3 datasets + 12
    assert {c.seed for c in calls if c.model == 'aeroseg'} == {0, 1, 2}
    assert {c.seed for c in calls if c.model != 'aeroseg'} == {0}
    assert out[-1] == 'u-mIoU gap (AerOSeg): iSAID 40.3, DLRSD 29.0, OEM 11.0'
    assert LAST.match(out[-1])
    assert any('MET (iSAID, DLRSD)' in ln for ln in out)
    assert any('every run trains on the seen names' in ln for ln in out)
    assert (tmp_path / 'report.txt').read_text().rstrip('\n').splitlines()[-1] == out[-1]


def test_last_line_marks_missing_and_failed(tmp_path, capsys):
    def run(spec, args):
        if spec.clip == 'random':
            return {'ok': False, 'error': 'train exit 1: RuntimeError: boom'}
        return {'ok': True, 'metrics': _fake_metrics(spec)}

    rc = ov.main(['--work-dir', str(tmp_path), '--datasets', 'oem', '--skip-zero-shot'], run_fn=run)
    out = capsys.readouterr().out.rstrip('\n').splitlines()
    assert rc == 1
    assert out[-1] == 'u-mIoU gap (AerOSeg): iSAID n/a, DLRSD n/a, OEM n/a'
    assert any('FAILED random: train exit 1: RuntimeError: boom' in ln for ln in out)
    assert any('NOT MET' in ln for ln in out)


def test_negative_gap_and_runner_exception(tmp_path, capsys):
    def run(spec, args):
        if spec.model == 'catseg':
            raise ValueError('bad config')
        return {'ok': True, 'metrics': {'s-mIoU': 1.0, 'u-mIoU': 2.0 if spec.clip == 'pretrained' else 5.55}}

    ov.main(['--work-dir', str(tmp_path), '--skip-zero-shot', '--datasets', 'isaid', 'dlrsd', 'oem'],
            run_fn=run)
    out = capsys.readouterr().out.rstrip('\n').splitlines()
    assert out[-1] == 'u-mIoU gap (AerOSeg): iSAID -3.5, DLRSD -3.5, OEM -3.5'
    assert LAST.match(out[-1])
    assert any('ValueError: bad config' in ln for ln in out)


def test_sam_none_means_random_sam():
    a = ov.parse_args(['--sam-checkpoint', 'none'])
    assert ov.run_weights(ov.RunSpec('aeroseg', 'oem', 'pretrained'), a) == {'guidance': None}


def test_zero_shot_table_lines():
    lines = ov._zero_shot_lines(_zs(ov.parse_args([])), ['isaid'])
    rows = [ln for ln in lines if ln.strip().startswith('iSAID')]
    assert len(rows) == 2 and '0.50 / 0.50' in rows[0] and 'pretrained' in rows[0] and 'random' in rows[1]


def test_several_seeds_average_and_report_each(tmp_path, capsys):
    """Cells are means over the seeds, the gap is mean(pretrained) - mean(random), each seed's
    gap is listed; --seed-models limits the extra seeds; a missing seed blanks the mean."""
    import threading
    barrier = threading.Barrier(2)

    def run(spec, args):
        if spec.model == 'catseg' and args.parallel == 2:  # its two runs must overlap
            barrier.wait(timeout=10)
        u = {'pretrained': 20.0 + 4 * spec.seed, 'random': 2.0 + spec.seed}[spec.clip]
        return {'ok': True, 'metrics': {'s-mIoU': 30.0, 'u-mIoU': u, 'h-mIoU': 1.0}}

    rc = ov.main(['--work-dir', str(tmp_path), '--datasets', 'dlrsd', '--seeds', '0', '1', '2',
                  '--seed-models', 'aeroseg', '--parallel', '2', '--skip-zero-shot'], run_fn=run)
    out = capsys.readouterr().out.rstrip('\n').splitlines()
    assert rc == 0
    # AerOSeg: pretrained 20, 24, 28 (mean 24); random 2, 3, 4 (mean 3) -> gap 21.0
    assert out[-1] == 'u-mIoU gap (AerOSeg): iSAID n/a, DLRSD 21.0, OEM n/a'
    assert any('seeds 0,1,2: gap per seed 18.0 / 21.0 / 24.0' in ln for ln in out)
    catseg = next(ln for ln in out if ln.lstrip().startswith('CAT-Seg'))
    assert catseg.split('|')[3].strip() == '18.0'          # seed 0 only: 20 - 2
    assert any('seed 0 for the others' in ln for ln in out)
    names = {s.name for s in ov.plan(ov.parse_args(['--datasets', 'dlrsd', '--seeds', '0', '1',
                                                    '--seed-models', 'aeroseg']))}
    assert {'aeroseg_dlrsd_random', 'aeroseg_dlrsd_random_s1', 'catseg_dlrsd_random'} <= names
    assert 'catseg_dlrsd_random_s1' not in names

    def run_missing(spec, args):
        if spec.seed == 2 and spec.clip == 'random':
            return {'ok': False, 'error': 'boom'}
        return run(spec, args)

    ov.main(['--work-dir', str(tmp_path), '--datasets', 'dlrsd', '--models', 'aeroseg',
             '--seeds', '0', '1', '2', '--skip-zero-shot'], run_fn=run_missing)
    out = capsys.readouterr().out.rstrip('\n').splitlines()
    assert out[-1] == 'u-mIoU gap (AerOSeg): iSAID n/a, DLRSD n/a, OEM n/a'
    assert any('FAILED random seed 2: boom' in ln for ln in out)

"""The method list: one entry per method, matching the configs; a method defined outside (a
test, a user's spec module) joins through register_method and fills its table row through the
runner (fake tiny mmengine model, no real training)."""
import csv
import json
import os
import textwrap

import pytest

from benchmarks import methods as M
from benchmarks.tables import DATASETS, TABLES, cells

from bench_helpers import FAKE_CONFIG, REPO, bench_env, run_bench


def test_method_list_matches_configs_and_tables():
    keys = [m.key for m in M.methods()]
    assert keys == ['san', 'scan', 'sed', 'catseg', 'ovrs', 'aeroseg', 'segearthov']
    for m in M.methods():
        assert all(t.startswith(f'configs/{m.key}/') and '{ds}' in t for t in m.templates())
        if (REPO / 'configs' / m.key).is_dir():      # implemented: every config set complete
            for t in m.templates():
                for ds in DATASETS:
                    assert (REPO / t.format(ds=ds)).is_file(), t.format(ds=ds)
    assert [t for _, t in M.get_method('catseg').variants] == ['configs/catseg/catseg_vitl14_{ds}.py']
    t2 = next(t for t in TABLES if t.id == 'T2')
    assert [(r.label, r.config, r.method) for r in t2.rows] == \
        [(M.get_method(k).label, M.get_method(k).config, k) for k in keys if M.get_method(k).train]
    free = {c.config for c in cells(TABLES) if not c.train}
    assert free == {M.get_method('segearthov').config_for(d) for d in DATASETS}


def test_register_method(monkeypatch):
    monkeypatch.setattr(M, '_METHODS', dict(M._METHODS))
    new = M.Method('mine', 'Mine', 'x/mine_{ds}.py', 'CLIP ViT-B/16', assumed_full=(2.0, 0.5))
    assert M.register_method(new) is new and M.get_method('mine') is new
    assert M.register_method(M.Method('mine', 'Mine', 'x/mine_{ds}.py', 'CLIP ViT-B/16',
                                      assumed_full=(2.0, 0.5))) == new   # the same again: no-op
    with pytest.raises(ValueError, match="'mine' is already registered"):
        M.register_method(M.Method('mine', 'Other', 'y/{ds}.py', 'b'))
    M.register_method(M.Method('mine', 'Other', 'y/{ds}.py', 'b'), replace=True)
    assert M.get_method('mine').label == 'Other' and M.methods()[-1].key == 'mine'
    with pytest.raises(KeyError, match='unknown method .nope.*register_method'):
        M.get_method('nope')


SPEC = '''
from benchmarks.methods import Method, register_method
from benchmarks.tables import Table, method_row

register_method(Method('fakeseg', 'FakeSeg', {cfg!r}, 'linear probe', assumed_full=(2.5, 0.5)))
TABLES = (
    Table('T2', 'a method from outside', (method_row('fakeseg'),), ('isaid', 'dlrsd'),
          ('s-mIoU', 'u-mIoU', 'h-mIoU'), average=True),
)
'''


@pytest.fixture()
def outside_spec(tmp_path):
    """A spec module in a tmp dir (not under the repository) registering the method 'fakeseg'."""
    pytest.importorskip('mmengine')
    for ds in ('isaid', 'dlrsd'):
        (tmp_path / f'fakeseg_{ds}.py').write_text(FAKE_CONFIG.format(model='FakeSegmentor'))
    spec_dir = tmp_path / 'spec'
    spec_dir.mkdir()
    (spec_dir / 'outside_spec.py').write_text(textwrap.dedent(SPEC.format(cfg=str(tmp_path / 'fakeseg_{ds}.py'))))
    env = bench_env()
    env['PYTHONPATH'] = str(spec_dir) + os.pathsep + env['PYTHONPATH']
    return spec_dir / 'outside_spec.py', env


def test_outside_method_dry_run_uses_its_own_entry(outside_spec, tmp_path):
    spec, env = outside_spec
    r = run_bench(['--dry-run', '--spec', spec, '--methods', 'fakeseg', '--work-dir', tmp_path / 'w',
                   '--results-dir', tmp_path / 'r', '--commands'], env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'Plan: 2 jobs' in r.stdout and 'ext/fakeseg_isaid' in r.stdout
    assert '20 it (train_cfg.max_iters) x 2.50 s/it (assumed) + 6363 img x 0.50 s' in r.stdout
    assert not (tmp_path / 'w').exists()


def test_outside_method_fills_its_table_row(outside_spec, tmp_path):
    """``--spec <module on PYTHONPATH>`` (the .py path form is the dry-run's above): train +
    test run as subprocesses; the row's cell is the job's metrics, the unselected dataset stays
    empty."""
    _, env = outside_spec
    work, res = tmp_path / 'w', tmp_path / 'r'
    r = run_bench(['--spec', 'outside_spec', '--methods', 'FakeSeg', '--datasets', 'isaid',
                   '--work-dir', work, '--results-dir', res], env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'OK    ext/fakeseg_isaid seed0' in r.stdout
    m = json.loads((work / 'full' / 'ext' / 'fakeseg_isaid' / 'seed0' / 'metrics.json').read_text())['metrics']
    rows = {(x['dataset'], x['metric']): x for x in csv.DictReader(open(res / 'full' / 'table2.csv'))}
    assert {x['config'] for x in rows.values()} == {'FakeSeg'}
    for k in ('s-mIoU', 'u-mIoU', 'h-mIoU'):
        assert float(rows[('iSAID', k)]['value']) == pytest.approx(m[k], abs=1e-4)
        assert rows[('DLRSD', k)]['value'] == '' and rows[('iSAID', k)]['paper'] == ''
    lead = (res / 'full' / 'leaderboard.md').read_text()
    assert '| – | FakeSeg |' in lead                        # one dataset only: listed, unranked
    runs = list(csv.DictReader(open(res / 'full' / 'runs.csv')))
    assert [(x['job'], x['status']) for x in runs] == [('ext/fakeseg_isaid', 'ok'), ('ext/fakeseg_dlrsd', 'pending')]
    assert json.loads((work / 'full' / 'ext' / 'fakeseg_isaid' / 'seed0' / 'job.json').read_text())['method'] == 'fakeseg'

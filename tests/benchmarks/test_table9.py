"""Table 9 (cross-dataset zero-shot): the seen-name / novel-name split, the runner's test-only
jobs reusing the Table 2 checkpoints (fake steps, no training), the written tables."""
import csv
import json
import re
from pathlib import Path

import pytest

from benchmarks import results as R
from benchmarks.runner import cli, launch
from benchmarks.tables import CROSS_TABLES, TABLES, cross_cells

from bench_helpers import bench_env, fake_steps, run_bench, write_fake_world


def test_seen_name_and_novel_name_for_a_fixed_pair_of_splits():
    from aeroseg.datasets.splits import get_split, name_split
    names = get_split('dlrsd').classes
    seen, novel = name_split('isaid', 'dlrsd')
    # iSAID trains on 'plane' (synonym 'airplane'), 'ship', 'storage tank' (DLRSD 'tanks' has it
    # as a synonym); 'cars' = iSAID's unseen 'small vehicle': never a training name
    assert [names[i] for i in seen] == ['airplane', 'ship', 'tanks']
    assert names.index('cars') in novel and sorted(seen + novel) == list(range(len(names)))
    seen, _ = name_split('dlrsd', 'isaid')
    # DLRSD's 'airplane' (synonym 'plane') is unseen in DLRSD training: iSAID 'plane' is novel
    assert [get_split('isaid').classes[i] for i in seen] == ['ship', 'storage tank']
    m = R.cross_cell_metrics({'mIoU': 30.0, 'IoU.ship': 60.0, 'IoU.storage tank': float('nan'),
                              'IoU.plane': 10.0, 'IoU.bridge': 20.0}, 'dlrsd', 'isaid')
    assert m == {'mIoU': 30.0, 'seen-name mIoU': 60.0, 'novel-name mIoU': 15.0}


def test_t9_spec_is_off_diagonal_and_beyond_the_paper():
    c = cross_cells(CROSS_TABLES)
    t9 = CROSS_TABLES[0]
    assert [r.label for r in t9.rows] == [r.label for r in TABLES[0].rows] + ['SegEarth-OV']
    assert all(x.source != x.dataset for x in c)
    assert len(c) == len(t9.rows) * 3 * 5           # 3 sources x 5 other targets
    one = next(x for x in c if x.row == 'CAT-Seg iSAID→LoveDA')
    assert (one.config, one.source_config) == ('configs/catseg/catseg_vitb16_loveda.py',
                                               'configs/catseg/catseg_vitb16_isaid.py')
    assert 'T9' not in {r['table'] for r in csv.DictReader(open(R.PAPER_CSV))}


def _cross_world(root: Path) -> Path:
    spec = write_fake_world(root)
    text = spec.read_text().replace("('isaid',), ('s-mIoU'", "('isaid', 'dlrsd'), ('s-mIoU'")  # T2
    spec.write_text(text + '''
from benchmarks.tables import CrossTable
CROSS_TABLES = (CrossTable('T9', 'fake cross', (
    Row('AerOSeg', C + '/fake_{ds}.py'),
    Row('SegEarth-OV', C + '/free_{ds}.py', train=False),
), ('isaid', 'dlrsd'), ('isaid', 'dlrsd')),)
''')
    return spec


def test_t9_reuses_table2_checkpoints_and_trains_nothing_when_done(tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    spec = _cross_world(tmp_path / 'world')
    w, r = tmp_path / 'w', tmp_path / 'r'
    base = ['--spec', str(spec), '--work-dir', str(w), '--results-dir', str(r)]
    dry = run_bench(base + ['--tables', '9', '--dry-run'], env=bench_env())
    assert dry.returncode == 0, dry.stderr
    assert _states(dry.stdout) == {'ext/fake_isaid': 'train+test', 'ext/fake_dlrsd': 'train+test',
                                   'ext/fake_dlrsd@from-isaid': 'test after its source',
                                   'ext/fake_isaid@from-dlrsd': 'test after its source',
                                   'ext/free_isaid': 'test only', 'ext/free_dlrsd': 'missing config'}
    assert 'ext/fake_dlrsd@from-isaid seed0 <- ext/fake_isaid/seed0/final_weights.pth (runs first: ' \
           'train+test)' in dry.stdout
    assert dry.stdout.index('ext/fake_isaid ') < dry.stdout.index('ext/fake_dlrsd@from-isaid')
    # Table 2 first: the source jobs train
    calls = []
    monkeypatch.setattr(launch, 'run_logged', fake_steps(calls=calls))
    assert cli.main(base + ['--tables', '2']) == 0
    assert ('benchmarks.train', w / 'full' / 'ext' / 'fake_isaid' / 'seed0') in calls
    capsys.readouterr()
    # Table 9: test-only jobs on the Table 2 checkpoints, no training step at all
    calls.clear()
    commands = []
    real = fake_steps(calls=calls)
    monkeypatch.setattr(launch, 'run_logged', lambda cmd, *a, **k: (commands.append(cmd), real(cmd, *a, **k))[1])
    assert cli.main(base + ['--tables', '9']) == 0
    out = capsys.readouterr().out
    assert calls and {step for step, _ in calls} == {'benchmarks.test'}
    assert 'SKIP  done: ext/fake_isaid seed0' in out and 'SKIP  done: ext/fake_dlrsd seed0' in out
    src = w / 'full' / 'ext' / 'fake_isaid' / 'seed0' / 'final_weights.pth'
    assert f'reusing checkpoint {src} (trained by ext/fake_isaid seed0; no training)' in out
    cross = w / 'full' / 'ext' / 'fake_dlrsd@from-isaid' / 'seed0'
    assert f'reusing checkpoint {src}' in (cross / 'run.log').read_text()
    rec = json.loads((cross / 'job.json').read_text())
    assert rec['weights_from']['checkpoint'] == str(src) and rec['train_cmd'] == ''
    cmd = next(c for c in commands if str(cross) in c)
    assert cmd[cmd.index('benchmarks.test') + 2] == str(src)        # CONFIG, then the checkpoint
    assert cmd[cmd.index('benchmarks.test') + 1].endswith('fake_dlrsd.py')  # the target's config
    assert ('benchmarks.test', w / 'full' / 'ext' / 'free_isaid' / 'seed0') in calls  # training-free
    # the tables: long form, blocks, no paper column; the leaderboard's cross section
    res = r / 'full'
    rows = list(csv.DictReader(open(res / 'table9.csv')))
    assert list(rows[0]) == list(R.CROSS_COLUMNS) and 'paper' not in rows[0]
    got = {(x['config'], x['source'], x['dataset'], x['metric']): x for x in rows}
    cell = got[('AerOSeg', 'iSAID', 'DLRSD', 'mIoU')]
    assert cell['value'] == '12.5000'
    seen = got[('AerOSeg', 'iSAID', 'DLRSD', 'seen-name mIoU')]
    assert seen['classes'] == 'airplane; ship; tanks' and seen['value'] == '1.0000'  # IoU.ship
    assert got[('SegEarth-OV', 'DLRSD', 'iSAID', 'mIoU')]['value'] == '12.5000'
    assert got[('SegEarth-OV', 'iSAID', 'DLRSD', 'mIoU')]['value'] == ''   # no free_dlrsd.py
    md = (res / 'table9.md').read_text()
    assert 'beyond the paper' in md.lower() and '## Trained on iSAID' in md and '(paper)' not in md
    assert 'SegEarth-OV / DLRSD: not implemented' in md
    lb = (res / 'leaderboard.md').read_text()
    assert '## Cross-dataset zero-shot (Table 9, beyond the paper' in lb
    assert "| 1 | AerOSeg | 12.50 | 12.50 | 12.50 |" in lb and "| – | SegEarth-OV (training-free) |" in lb
    # once done: nothing runs; a retrained source makes its cross jobs rerun, never the reverse
    calls.clear()
    assert cli.main(base + ['--tables', '9']) == 0 and calls == []
    capsys.readouterr()
    (tmp_path / 'world' / 'configs' / 'fake_isaid.py').write_text(
        (tmp_path / 'world' / 'configs' / 'fake_isaid.py').read_text().replace('max_iters=20', 'max_iters=10'))
    st = _states(run_bench(base + ['--tables', '9', '--dry-run'], env=bench_env()).stdout)
    assert st['ext/fake_dlrsd@from-isaid'] == 'rerun (config changed)'   # its source changed
    assert st['ext/fake_dlrsd'] == 'done (skip)' and st['ext/free_isaid'] == 'done (skip)'


def _states(plan: str) -> dict:
    """job -> state from the plan's table lines."""
    out = {}
    for line in plan.splitlines():
        m = re.match(r'\s+\d+\s+(.+?)\s+(ext/\S+)\s+\d+\s', line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def test_parallel_cross_job_waits_for_its_source(tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmengine')
    spec = _cross_world(tmp_path / 'world')
    order = []
    real = fake_steps()

    def steps(cmd, log, verbose, env_extra=None):
        wd = Path(cmd[cmd.index('--work-dir') + 1])
        order.append(wd.parent.name)
        if '@from-' in wd.parent.name:  # its checkpoint must exist when its test starts
            assert Path(cmd[cmd.index('benchmarks.test') + 2]).is_file()
        return real(cmd, log, verbose, env_extra)
    monkeypatch.setattr(launch, 'run_logged', steps)
    assert cli.main(['--spec', str(spec), '--work-dir', str(tmp_path / 'w'), '--results-dir',
                     str(tmp_path / 'r'), '--tables', '9', '--parallel', '2']) == 0
    assert order.index('fake_dlrsd@from-isaid') > order.index('fake_isaid')
    assert order.index('fake_isaid@from-dlrsd') > order.index('fake_dlrsd')
    assert 'FAIL' not in capsys.readouterr().out

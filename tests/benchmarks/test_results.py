"""Writers: long-form CSVs join the paper exactly, Markdown layout, leaderboard, atomic writes."""
import csv
import os

import pytest

from benchmarks import common, results as R
from benchmarks.tables import TABLES, cells


def fake_values(skip_rows=('SCAN',), seeds=2):
    """Paper value + 1 (seed 0) and + 3 (seed 1) for every cell except ``skip_rows``."""
    paper = R.load_paper()
    vals = {}
    for c in cells(TABLES):
        if c.row in skip_rows:
            continue
        for m in c.metrics:
            p = paper[(c.table, c.row, c.dataset_label, m)]
            vals.setdefault((c.table, c.row, c.dataset), {})[m] = [p + 1, p + 3][:seeds]
    return vals


def read(p):
    with open(p, newline='') as f:
        return list(csv.DictReader(f))


def test_table_csvs_join_paper_exactly(tmp_path):
    paper = R.load_paper(averages=None)
    R.write_all(tmp_path, TABLES, fake_values(), R.load_paper(), runs=[], notes={})
    got = set()
    for t in TABLES:
        p = tmp_path / f'table{t.number}.csv'
        with open(p, newline='') as f:
            assert f.readline().strip() == 'table,config,dataset,metric,value,paper,delta'
        for r in read(p):
            key = (r['table'], r['config'], r['dataset'], r['metric'])
            assert key in paper, key
            assert float(r['paper']) == pytest.approx(paper[key])
            got.add(key)
            if r['config'] == 'SCAN':                 # missing method: empty value, never a number
                assert r['value'] == '' and r['delta'] == ''
            else:                                     # mean of 2 seeds = paper + 2
                assert float(r['value']) == pytest.approx(paper[key] + 2)
                assert float(r['delta']) == pytest.approx(2)
    assert got == set(paper)


def test_markdown_layout_and_notes(tmp_path):
    paper = R.load_paper()
    notes = {('T2', 'SCAN', d): 'not implemented (config file missing: x)' for d in ('isaid', 'dlrsd', 'oem')}
    R.write_all(tmp_path, TABLES, fake_values(), paper, [], notes)
    md = (tmp_path / 'table2.md').read_text().splitlines()
    head = next(ln for ln in md if ln.startswith('| Method'))
    cols = [c.strip() for c in head.strip('|').split('|')]
    assert cols == ['Method'] + [f'{d} {m}' for d in ('iSAID', 'DLRSD', 'OEM')
                                 for m in ('s-mIoU', 'u-mIoU', 'h-mIoU')] + \
        ['Average s-mIoU', 'Average u-mIoU', 'Average h-mIoU']
    aero = next(ln for ln in md if ln.startswith('| AerOSeg'))
    assert '63.20 ± 1.41 (61.20)' in aero           # h-mIoU iSAID: mean, std of 2 seeds, paper
    assert aero.rstrip(' |').endswith('54.78 (52.78)')  # average h-mIoU: ours, paper's printed 52.78
    scan = next(ln for ln in md if ln.startswith('| SCAN'))
    assert '– (44.31)' in scan
    assert scan.startswith('| SCAN [no CS-CLIP: crops scored by the original CLIP] |')  # Row.note
    assert any('SCAN / iSAID: not implemented' in ln for ln in md)
    t3 = (tmp_path / 'table3.md').read_text()
    assert '| Method | iSAID | DLRSD | OEM | Average |' in t3
    assert '| Config-C | 63.20 ± 1.41 (61.20) | 49.48 ± 1.41 (47.48) | 51.66 ± 1.41 (49.66) | 54.78 (52.78) |' in t3
    t6 = (tmp_path / 'table6.md').read_text()
    assert '| Method | iSAID s-mIoU | iSAID u-mIoU | iSAID h-mIoU |' in t6


def test_leaderboard_sorted_by_average_h(tmp_path):
    paper = R.load_paper()
    vals = fake_values(skip_rows=('SCAN',), seeds=1)
    for d in ('isaid', 'dlrsd', 'oem'):
        vals[('T2', 'SAN', d)]['h-mIoU'] = [99.0]   # SAN jumps to the top
    R.write_all(tmp_path, TABLES, vals, paper, [], {})
    rows = [ln for ln in (tmp_path / 'leaderboard.md').read_text().splitlines()
            if ln.startswith('| ') and not ln.startswith('| Rank')]
    names = [r.split('|')[2].strip() for r in rows]
    assert names[0] == 'SAN' and names[-1] == 'SCAN'
    assert rows[-1].split('|')[1].strip() == '–'       # incomplete: unranked
    assert names[1:-1] == ['AerOSeg', 'OVRS', 'SED', 'CAT-Seg']


def test_runs_csv_has_all_fields(tmp_path):
    run = {'job': 'aeroseg/aeroseg_vitb16_isaid', 'seed': 0, 'status': 'ok', 'h-mIoU': 61.2,
           'iou_per_class': {'ship': 70.1}, 'versions': {'torch': '2.14.1'}, 'custom': 'x'}
    R.write_all(tmp_path, TABLES, {}, R.load_paper(), [run], {})
    rows = read(tmp_path / 'runs.csv')
    assert list(rows[0])[:len(R.RUNS_COLUMNS)] == list(R.RUNS_COLUMNS) and 'custom' in rows[0]
    assert rows[0]['iou_per_class'] == '{"ship": 70.1}'


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / 'table2.csv'
    common.atomic_write_text(p, 'old\n')

    def boom(fd):
        raise OSError('disk full')
    monkeypatch.setattr(common.os, 'fsync', boom)
    with pytest.raises(OSError, match='disk full'):
        common.atomic_write_text(p, 'new content that must not be half-written\n')
    assert p.read_text() == 'old\n'
    assert os.listdir(tmp_path) == ['table2.csv']   # no temp file left behind
    monkeypatch.undo()
    common.atomic_write_json(p, {'a': 1})
    assert common.read_json(p) == {'a': 1}


def test_compare_expected_hook(tmp_path):
    paper = R.load_paper()
    R.write_all(tmp_path, TABLES, fake_values(seeds=1), paper, [], {})
    exp = tmp_path / 'expected.csv'
    n = R.write_expected(tmp_path, exp, keys=[('T2', 'AerOSeg', 'iSAID', 'h-mIoU'),
                                              ('T8', 'AerOSeg', 'OEM', 'mIoU')])
    assert n == 2
    assert R.compare_expected(tmp_path, exp, tolerance=0.01) == []
    vals = fake_values(seeds=1)
    vals[('T2', 'AerOSeg', 'isaid')]['h-mIoU'] = [10.0]
    del vals[('T8', 'AerOSeg', 'oem')]
    R.write_all(tmp_path, TABLES, vals, paper, [], {})
    bad = R.compare_expected(tmp_path, exp, tolerance=1.0)
    assert len(bad) == 2 and 'got 10.00' in bad[0] and 'no result' in bad[1]


def test_printed_paper_averages_match_the_per_dataset_values():
    cells_ = R.load_paper(averages=None)
    avgs = {k: v for k, v in R.load_paper().items() if k[2] == 'Average'}
    assert len(avgs) == 6 * 3 + 4 + 2 + 3
    for (t, row, _, m), v in avgs.items():
        table = next(x for x in TABLES if x.id == t)
        assert table.average and row in [r.label for r in table.rows]
        per_ds = [cells_[(t, row, d, m)] for d in ('iSAID', 'DLRSD', 'OEM')]
        assert abs(sum(per_ds) / 3 - v) <= 0.011, (t, row, m)   # transcription check
    md_row = R.table_markdown(next(x for x in TABLES if x.id == 'T3'), {}, R.load_paper())
    assert '| Baseline | – (57.88) | – (28.69) | – (46.86) | – (44.47) |' in md_row


def test_write_expected_refuses_an_empty_reference(tmp_path):
    (tmp_path / 'table2.csv').write_text('table,config,dataset,metric,value,paper,delta\n'
                                         'T2,SAN,iSAID,s-mIoU,,62.28,\n')
    with pytest.raises(ValueError, match='nothing to freeze'):
        R.write_expected(tmp_path, tmp_path / 'expected.csv')
    assert not (tmp_path / 'expected.csv').exists()


def test_leaderboard_lists_training_free_rows_beyond_the_paper(tmp_path):
    """SegEarth-OV (a train=False row of T8) gets its s/u/h-mIoU beside Table 2, unranked."""
    def run(ds, h, status='ok'):
        return {'job': f'segearthov/segearthov_vitb16_{ds}', 'dataset': ds, 'status': status,
                'fills': 'T8 SegEarth-OV', 's-mIoU': h + 2, 'u-mIoU': h - 2, 'h-mIoU': h}
    runs = [run('iSAID', 10.0), run('DLRSD', 20.0), run('OEM', 30.0),
            {'job': 'catseg/catseg_vitb16_isaid', 'dataset': 'iSAID', 'status': 'ok',
             'fills': 'T2 CAT-Seg', 's-mIoU': 1, 'u-mIoU': 1, 'h-mIoU': 1}]
    free = R.training_free_values(TABLES, runs)
    assert set(free) == {'SegEarth-OV'} and free['SegEarth-OV']['dlrsd']['u-mIoU'] == 18.0
    R.write_all(tmp_path, TABLES, fake_values(), R.load_paper(), runs=runs, notes={})
    lead = (tmp_path / 'leaderboard.md').read_text()
    row = next(ln for ln in lead.splitlines() if 'SegEarth-OV (training-free)' in ln)
    assert row.startswith('| beyond the paper |')
    assert row.split('|')[3:9] == [' 10.00 ', ' 20.00 ', ' 30.00 ', ' 22.00 ', ' 18.00 ', ' 20.00 ']
    assert 'not ranked with the trained methods' in lead
    runs[1]['status'] = 'failed'  # a dataset missing: no average
    lead = R.leaderboard_markdown(TABLES[0], fake_values(), R.load_paper(),
                                  training_free=R.training_free_values(TABLES, runs))
    row = next(ln for ln in lead.splitlines() if 'SegEarth-OV (training-free)' in ln)
    assert row.split('|')[7:9] == [' – ', ' – ']
    assert '[Fig. 5](figures/fig5_isaid.png)' in lead


def test_mini_tables_have_no_paper_delta_and_mark_rows_sharing_a_job(tmp_path):
    """At mini scale ours - paper is meaningless: no delta; the paper column says it is the
    full-scale number; rows one job fills (every SAM of Table 6 at mini scale) are marked."""
    runs = [{'job': 'aeroseg/aeroseg_vitb16_isaid', 'dataset': 'iSAID', 'status': 'ok',
             'fills': 'T2 AerOSeg; T6 SAM ViT-L; T6 SAM ViT-H; T8 AerOSeg'}]
    assert R.shared_rows(runs) == {'T6': {'SAM ViT-L': ['SAM ViT-H'], 'SAM ViT-H': ['SAM ViT-L']}}
    for scale in ('mini', 'full'):
        out = tmp_path / scale
        R.write_all(out, TABLES, fake_values(), R.load_paper(), runs=runs, notes={}, scale=scale)
        rows = read(out / 'table2.csv')
        deltas = {r['delta'] for r in rows if r['value']}
        assert (deltas == {''}) == (scale == 'mini') and all(r['paper'] for r in rows)
        md = (out / 'table6.md').read_text()
        assert '| SAM ViT-H (same job as SAM ViT-L) |' in md
        assert ('its full-scale number' in (out / 'table2.md').read_text()) == (scale == 'mini')

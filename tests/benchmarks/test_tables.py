"""The table spec: it covers the paper's numbers exactly and plans de-duplicated jobs."""
import csv
import filecmp
from pathlib import Path

import pytest

from benchmarks.tables import DATASETS, TABLES, cells, plan_jobs, select_tables

PAPER = Path(__file__).resolve().parents[2] / 'benchmarks' / 'paper_tables.csv'
SHARED = Path('/work/shared/paper/paper_tables.csv')
MAIN = 'configs/aeroseg/aeroseg_vitb16_{}.py'


def paper_keys():
    with open(PAPER, newline='') as f:
        return {(r['table'], r['config'], r['dataset'], r['metric']) for r in csv.DictReader(f)}


def spec_keys():
    return {(c.table, c.row, c.dataset_label, m) for c in cells(TABLES) for m in c.metrics}


def test_spec_and_paper_csv_cover_each_other_exactly():
    assert spec_keys() == paper_keys()


@pytest.mark.skipif(not SHARED.is_file(), reason='shared paper copy not on this machine')
def test_paper_csv_is_the_shared_reference():
    assert filecmp.cmp(PAPER, SHARED, shallow=False)


def test_full_plan_dedups_shared_configs():
    jobs = plan_jobs(cells(TABLES), seeds=[0])
    # 6 T2 methods x 3 + T3 3x3 + T4 3 + T5 2x3 + T6 3 + T7 3 + T8 SegEarth-OV 3
    assert len(jobs) == 45
    assert len({j.key for j in jobs}) == 45
    main = {j.dataset: j for j in jobs if j.config == MAIN.format(j.dataset)}
    assert set(main) == set(DATASETS)
    assert main['isaid'].fills() == ['T2 AerOSeg', 'T3 Config-C', 'T4 Guidance frozen',
                                     'T5 Reconstruct SAM features', 'T6 SAM ViT-L', 'T7 CLIP ViT-B',
                                     'T8 AerOSeg']
    assert main['oem'].fills() == ['T2 AerOSeg', 'T3 Config-C', 'T4 Guidance frozen',
                                   'T5 Reconstruct SAM features', 'T8 AerOSeg']
    free = [j for j in jobs if not j.train]
    assert {j.config for j in free} == {f'configs/segearthov/segearthov_vitb16_{d}.py' for d in DATASETS}


def test_seeds_multiply_jobs_not_cells():
    jobs = plan_jobs(cells(TABLES), seeds=[0, 1, 2])
    assert len(jobs) == 42 * 3 + 3                     # training-free SegEarth-OV: first seed only
    assert sorted({j.seed for j in jobs}) == [0, 1, 2]
    assert {j.seed for j in jobs if not j.train} == {0}


def test_filters():
    t = select_tables(TABLES, ['3', 'T6'])
    assert [x.id for x in t] == ['T3', 'T6']
    jobs = plan_jobs(cells(t, methods=['Config-C', 'SAM ViT-H'], datasets=['iSAID']))
    assert [j.config for j in jobs] == [MAIN.format('isaid'),
                                        'configs/aeroseg/ablations/t6_sam-vith_isaid.py']
    # a method folder selects every config under it
    jobs = plan_jobs(cells(TABLES, methods=['aeroseg']))
    assert all(j.config.startswith('configs/aeroseg/') for j in jobs) and len(jobs) == 3 + 9 + 3 + 6 + 3 + 3
    jobs = plan_jobs(cells(TABLES, methods=['san'], datasets=['oem']))
    assert [j.config for j in jobs] == ['configs/san/san_vitb16_oem.py']


@pytest.mark.parametrize('kw', [dict(tables=['9']), dict(methods=['Nope']), dict(datasets=['potsdam'])])
def test_bad_selection_is_a_clear_error(kw):
    with pytest.raises(ValueError, match='unknown'):
        t = select_tables(TABLES, kw.get('tables'))
        cells(t, kw.get('methods'), kw.get('datasets'))

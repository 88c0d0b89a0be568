"""The preflight (issue #19, item 1): every missing input of every job listed, with where to get
it, before anything starts; at mini scale everything is in the repository."""
import textwrap

import pytest

from benchmarks.runner.plan import build_jobs
from benchmarks.runner.preflight import preflight, readme_row
from benchmarks.tables import TABLES, cells, plan_jobs, select_tables

from bench_helpers import REPO, bench_env, run_bench


def _spec(tmp_path, clip, sam):
    """A one-row spec whose AerOSeg config names ``clip`` / ``sam`` as its outside weights."""
    cfg = tmp_path / 'mine_isaid.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = [{str(REPO / 'configs/aeroseg/aeroseg_vitb16_isaid.py')!r}]
        model = dict(clip=dict(pretrained={clip!r}, cache_dir={str(tmp_path / 'clip_cache')!r}),
                     guidance=dict(checkpoint={sam!r}))
    '''))
    spec = tmp_path / 'spec.py'
    spec.write_text(textwrap.dedent(f'''
        from benchmarks.tables import Row, Table
        TABLES = (Table('T2', 'mine', (Row('AerOSeg', {str(tmp_path)!r} + '/mine_{{ds}}.py'),),
                        ('isaid',), ('h-mIoU',)),)
    '''))
    return spec


def test_real_run_on_empty_data_root_lists_every_missing_input_and_starts_nothing(tmp_path):
    sam, clip = tmp_path / 'ckpt' / 'sam_vit_l_0b3195.pth', tmp_path / 'ckpt' / 'my_clip.pt'
    data, work, res = tmp_path / 'data', tmp_path / 'work', tmp_path / 'results'
    data.mkdir()
    r = run_bench(['--spec', _spec(tmp_path, str(clip), str(sam)), '--scale', 'full',
                   '--data-root', data, '--work-dir', work, '--results-dir', res],
                  env=bench_env(), timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr
    assert f'dataset isaid: {data / "isaid"}: missing' in err
    assert '18,076 train / 6,363 val' in err and 'prepare isaid' in err      # counts, how to get it
    assert f'{sam}: missing. Get: facebookresearch/segment-anything' in err   # README's "from"
    assert f'{clip}: missing' in err
    assert 'nothing was started' in err
    assert not work.exists() and not res.exists()                            # no lock, no tables


def test_open_clip_tag_needs_network_blocking_only_offline(tmp_path, monkeypatch):
    spec = _spec(tmp_path, 'openai', str(REPO / 'README.md'))  # any existing file for SAM
    from benchmarks.runner.plan import load_spec
    specs = plan_jobs(cells(load_spec(str(spec))))
    jobs = build_jobs(specs, tmp_path / 'w', 'full', str(REPO / 'tests'))
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    vl = [m for m in preflight(jobs, 'full') if m.what.startswith('vl')]
    assert len(vl) == 1 and not vl[0].blocking and 'needs internet' in vl[0].fix
    assert str(tmp_path / 'clip_cache') in vl[0].fix
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    assert [m.blocking for m in preflight(jobs, 'full') if m.what.startswith('vl')] == [True]


def test_mini_scale_needs_nothing_outside_the_repository(tmp_path):
    specs = plan_jobs(cells(select_tables(TABLES, ['2', '6'])))
    jobs = build_jobs(specs, tmp_path, 'mini', None)
    assert preflight(jobs, 'mini') == []


@pytest.mark.parametrize('section,key', [('Checkpoints', 'sam_vit_l_0b3195.pth'),
                                         ('Checkpoints', 'openai'), ('Datasets', 'prepare oem ')])
def test_sources_come_from_the_readme_tables(section, key):
    row = readme_row(section, key)
    assert row is not None and len(row) == 3

"""`python -m aeroseg.datasets.prepare dlrsd` on a fabricated UC Merced + DLRSD release."""
import json

import numpy as np
import pytest
from PIL import Image

from aeroseg.datasets.prepare import main
from aeroseg.datasets.prepare.dlrsd import assign_splits
from dataset_fakes import fake_dlrsd


@pytest.fixture
def release(tmp_path):
    raw = tmp_path / 'raw'
    return raw, tmp_path / 'out', fake_dlrsd(raw, scenes=('airplane', 'beach'), per_scene=5)


def run(raw, out, *extra):
    return main(['dlrsd', '--raw', str(raw), '--out', str(out), *extra])


def test_values_shifted_images_jpeg_and_split(release, capsys):
    raw, out, exp = release
    assert run(raw, out) == 0
    seen = {}
    for split in ('train', 'val'):
        for p in (out / 'ann_dir' / split).iterdir():
            seen[p.stem] = split
            assert Image.open(p).mode == 'L'
            np.testing.assert_array_equal(np.asarray(Image.open(p)), exp[p.stem])
            img = Image.open(out / 'img_dir' / split / f'{p.stem}.jpg')
            assert img.format == 'JPEG' and img.mode == 'RGB' and img.size == (16, 16)
            src = np.asarray(Image.open(raw / 'UCMerced_LandUse' / 'Images' / p.stem[:-2]
                                        / f'{p.stem}.tif')).astype(int)
            assert np.abs(np.asarray(img).astype(int) - src).mean() < 8  # q95 4:4:4, same image
    assert set(seen) == set(exp)
    # 80 / 20 within each scene class: 1 of 5 per scene in val
    for scene in ('airplane', 'beach'):
        assert sum(1 for s, v in seen.items() if v == 'val' and s.startswith(scene)) == 1
    text = capsys.readouterr().out
    assert 'paper 5,601' in text and 'paper 1,401' in text and '2,100' in text
    rep = json.loads((out / 'prepare_report.json').read_text())
    assert rep['counts'] == {'train': 8, 'val': 2}


def test_split_is_deterministic_and_stable_under_limit(release, tmp_path):
    raw, out, _ = release
    assert run(raw, out) == 0
    assert run(raw, tmp_path / 'lim', '--limit', '3') == 0
    for split in ('train', 'val'):
        full = {p.name for p in (out / 'ann_dir' / split).iterdir()}
        lim = {p.name for p in (tmp_path / 'lim' / 'ann_dir' / split).glob('*')}
        assert lim <= full
    pairs = [('s', f's{i:02d}', None, None) for i in range(100)]
    a = assign_splits(pairs, 0.2, None)
    assert a == assign_splits(list(reversed(pairs)), 0.2, None)
    assert sum(v == 'val' for v in a.values()) == 20


def test_val_list(release, tmp_path):
    raw, out, _ = release
    lst = tmp_path / 'val.txt'
    lst.write_text('beach03.png\nairplane00\n')
    assert run(raw, out, '--val-list', str(lst)) == 0
    assert sorted(p.stem for p in (out / 'ann_dir' / 'val').iterdir()) == ['airplane00', 'beach03']
    lst.write_text('nothere07\n')
    assert run(raw, tmp_path / 'o2', '--val-list', str(lst)) == 1


def test_labels_folder_variants(tmp_path):
    raw = tmp_path / 'raw'
    exp = fake_dlrsd(raw, per_scene=3, labels_dir='DLRSD/Labels')
    assert run(raw, tmp_path / 'out') == 0
    assert len(list((tmp_path / 'out').rglob('*.png'))) == len(exp)


def _err(capsys):
    return capsys.readouterr().err


def test_value_zero_is_an_error(release, capsys):
    raw, out, _ = release
    p = raw / 'DLRSD' / 'Images' / 'beach' / 'beach02.png'
    im = Image.open(p)
    a = np.asarray(im).copy()
    a[0, 0] = 0
    m = Image.fromarray(a, 'P')
    m.putpalette(im.getpalette())
    m.save(p)
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'beach02.png' in err and '[0]' in err


def test_value_above_17_is_an_error(release, capsys):
    raw, out, _ = release
    p = raw / 'DLRSD' / 'Images' / 'airplane' / 'airplane01.png'
    a = np.asarray(Image.open(p)).copy()
    a[1, 1] = 18
    Image.fromarray(a, 'L').save(p)
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'airplane01.png' in err and '[18]' in err


def test_colour_mask_is_refused(release, capsys):
    raw, out, _ = release
    p = raw / 'DLRSD' / 'Images' / 'airplane' / 'airplane01.png'
    Image.open(p).convert('RGB').save(p)
    assert run(raw, out) == 1
    assert "airplane01.png" in _err(capsys)


def test_image_without_mask(release, capsys):
    raw, out, _ = release
    (raw / 'DLRSD' / 'Images' / 'beach' / 'beach04.png').unlink()
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'image without mask' in err and 'beach04.tif' in err


def test_size_mismatch(release, capsys):
    raw, out, _ = release
    p = raw / 'UCMerced_LandUse' / 'Images' / 'beach' / 'beach01.tif'
    Image.fromarray(np.zeros((16, 15, 3), np.uint8)).save(p)
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'size mismatch' in err and 'beach01.tif' in err


def test_missing_folders(tmp_path, capsys):
    assert run(tmp_path / 'nope', tmp_path / 'out') == 1
    assert 'nope' in _err(capsys)
    (tmp_path / 'raw' / 'UCMerced_LandUse' / 'Images' / 'a').mkdir(parents=True)
    assert run(tmp_path / 'raw', tmp_path / 'out') == 1
    assert 'no DLRSD masks' in _err(capsys)


def test_single_class_label_set_fails(tmp_path, capsys):
    raw = tmp_path / 'raw'
    fake_dlrsd(raw, per_scene=3)
    for p in (raw / 'DLRSD' / 'Images').rglob('*.png'):
        Image.fromarray(np.full((16, 16), 5, np.uint8), 'L').save(p)
    assert run(raw, tmp_path / 'out') == 1
    assert 'only class 4 (chaparral)' in _err(capsys)


def test_idempotent(release):
    raw, out, _ = release
    assert run(raw, out) == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob('*') if p.is_file()
              and p.name != 'prepare_report.json'}
    assert run(raw, out) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

"""`python -m aeroseg.datasets.prepare isaid` on fabricated releases in the official format."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from aeroseg.datasets.prepare import main
from dataset_fakes import fake_isaid, zip_isaid

LAYOUT_TRAIN = {'P0001': (70, 100, [0, 3, 13]), 'P0002': (40, 40, [5, 8])}
LAYOUT_VAL = {'P0003': (50, 64, [1, 14])}


@pytest.fixture
def release(tmp_path):
    raw = tmp_path / 'raw'
    # train: masks where the official download puts them; val: the devkit layout
    exp = fake_isaid(raw, {'train': LAYOUT_TRAIN}, masks_in='Semantic_masks/images')
    exp.update(fake_isaid(raw, {'val': LAYOUT_VAL}))
    return raw, tmp_path / 'out', exp


def run(raw, out, *extra):
    return main(['isaid', '--raw', str(raw), '--out', str(out), '--patch-size', '32', *extra])


def boxes(h, w, size=32):
    """The devkit's rule at stride = size: starts 0, size, ... and the last one shifted back."""
    def starts(n):
        if n <= size:
            return [0]
        return sorted({min(s, n - size) for s in range(0, n, size)})
    return [(y, min(y + size, h), x, min(x + size, w)) for y in starts(h) for x in starts(w)]


def test_crops_match_source_and_background_is_ignored(release):
    raw, out, exp = release
    assert run(raw, out) == 0
    written = {s: sorted(p.name for p in (out / 'ann_dir' / s).iterdir()) for s in ('train', 'val')}
    want = {}
    for split, layout in (('train', LAYOUT_TRAIN), ('val', LAYOUT_VAL)):
        for stem, (h, w, _) in layout.items():
            src_img = np.asarray(Image.open(
                next(raw.glob(f'{split}/images/{stem}.png'))).convert('RGB'))
            for y0, y1, x0, x1 in boxes(h, w):
                lab = np.full((32, 32), 255, np.uint8)
                lab[:y1 - y0, :x1 - x0] = exp[split][stem][y0:y1, x0:x1]
                name = f'{stem}_{y0}_{y1}_{x0}_{x1}.png'
                if (lab != 255).any():
                    want.setdefault(split, []).append(name)
                    got = np.asarray(Image.open(out / 'ann_dir' / split / name))
                    assert Image.open(out / 'ann_dir' / split / name).mode == 'L'
                    np.testing.assert_array_equal(got, lab)
                    img = np.asarray(Image.open(out / 'img_dir' / split / name))
                    np.testing.assert_array_equal(img[:y1 - y0, :x1 - x0],
                                                  src_img[y0:y1, x0:x1])
    assert written == {s: sorted(v) for s, v in want.items()}
    rep = json.loads((out / 'prepare_report.json').read_text())
    assert rep['counts'] == {s: len(v) for s, v in want.items()}
    assert rep['paper_counts'] == {'train': 18076, 'val': 6363}
    hist = {int(k): v for k, v in rep['histogram'].items()}
    assert set(hist) <= set(range(15)) | {255}
    assert not list(out.rglob('*.tmp'))


def test_report_prints_counts_vs_paper_and_histogram(release, capsys):
    raw, out, _ = release
    assert run(raw, out) == 0
    text = capsys.readouterr().out
    assert 'paper 18,076' in text and 'paper 6,363' in text
    assert 'ship' in text and 'harbor' in text and '(ignore)' in text


def test_idempotent_and_force(release):
    raw, out, _ = release
    assert run(raw, out) == 0
    files = sorted(out.rglob('*.png'))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    rep1 = json.loads((out / 'prepare_report.json').read_text())
    assert run(raw, out) == 0
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert json.loads((out / 'prepare_report.json').read_text())['histogram'] == rep1['histogram']
    # a crop deleted by hand is rewritten on the next run
    os.unlink(files[0])
    assert run(raw, out) == 0 and files[0].exists()
    os.utime(files[1], ns=(1, 1))
    assert run(raw, out, '--force') == 0
    assert files[1].stat().st_mtime_ns != 1


def test_limit(release):
    raw, out, _ = release
    assert run(raw, out, '--limit', '1') == 0
    assert {p.name.split('_')[0] for p in (out / 'ann_dir' / 'train').iterdir()} == {'P0001'}


def test_overlap_adds_windows(release):
    raw, out, _ = release
    assert run(raw, out / 'a') == 0
    assert run(raw, out / 'b', '--overlap', '16') == 0
    n = lambda d: len(list((d / 'ann_dir' / 'train').iterdir()))  # noqa: E731
    assert n(out / 'b') > n(out / 'a')


def _err(capsys):
    return capsys.readouterr().err


def test_missing_raw_folder(tmp_path, capsys):
    assert run(tmp_path / 'nope', tmp_path / 'out') == 1
    assert 'nope' in _err(capsys)


def test_missing_split_folder(release, capsys):
    raw, out, _ = release
    for p in sorted((raw / 'val').rglob('*'), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (raw / 'val').rmdir()
    assert run(raw, out) == 1
    assert "iSAID val folder" in _err(capsys)


def test_image_without_mask(release, capsys):
    raw, out, _ = release
    (raw / 'train' / 'Semantic_masks' / 'images' / 'P0002_instance_color_RGB.png').unlink()
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'image without mask' in err and 'P0002.png' in err


def test_size_mismatch(release, capsys):
    raw, out, _ = release
    p = raw / 'val' / 'images' / 'P0003_instance_color_RGB.png'
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(p)
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'size mismatch' in err and 'P0003_instance_color_RGB.png' in err


def test_unknown_colour(release, capsys):
    raw, out, _ = release
    p = raw / 'val' / 'images' / 'P0003_instance_color_RGB.png'
    a = np.asarray(Image.open(p)).copy()
    a[3, 3] = (1, 2, 3)
    Image.fromarray(a).save(p)
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'P0003_instance_color_RGB.png' in err and '(1, 2, 3)' in err


def test_palette_mode_mask_is_refused(release, capsys):
    raw, out, _ = release
    p = raw / 'val' / 'images' / 'P0003_instance_color_RGB.png'
    Image.open(p).convert('P').save(p)
    assert run(raw, out) == 1
    err = _err(capsys)
    assert 'palette-mode' in err and 'P0003_instance_color_RGB.png' in err


def test_all_background_labels_fail(tmp_path, capsys):
    raw = tmp_path / 'raw'
    fake_isaid(raw, {'train': {'P0001': (40, 40, [])}, 'val': {'P0002': (40, 40, [])}})
    assert run(raw, tmp_path / 'o1') == 1  # every crop dropped
    assert 'no image/label pair' in _err(capsys)
    assert run(raw, tmp_path / 'o2', '--min-labelled-pixels', '0') == 1
    assert 'every label pixel is ignore' in _err(capsys)


def test_single_class_label_set_fails(tmp_path, capsys):
    raw = tmp_path / 'raw'
    fake_isaid(raw, {'train': {'P0001': (40, 40, [3])}, 'val': {'P0002': (40, 40, [3])}})
    assert run(raw, tmp_path / 'out') == 1
    assert 'only class 3 (tennis court)' in _err(capsys)


def _tree(root):
    """Every output file's bytes (the per-source markers, which name the source, left out)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file() and '.prepare' not in p.parts and p.name != 'prepare_report.json'}


def test_official_zips_read_in_place_give_the_same_output(release, tmp_path, capsys):
    """#19 item 6: the download as it comes (mmseg's documented zip layout), streamed from the
    archives, gives byte for byte what the extracted layout gives, and extracts nothing."""
    raw, out, _ = release
    zipped = tmp_path / 'zipped'
    zip_isaid(raw, zipped)
    assert run(raw, out / 'extracted') == 0
    before = sorted(p for p in zipped.rglob('*'))
    assert run(zipped, out / 'zips') == 0
    assert sorted(p for p in zipped.rglob('*')) == before            # nothing extracted
    a, b = _tree(out / 'extracted'), _tree(out / 'zips')
    assert len([k for k in a if k.startswith('ann_dir')]) > 4 and a.keys() == b.keys()
    assert a == b
    ra, rb = (json.loads((out / d / 'prepare_report.json').read_text()) for d in ('extracted', 'zips'))
    assert ra['counts'] == rb['counts'] and ra['histogram'] == rb['histogram']
    # and again: the markers written from the zips let a rerun reuse every crop
    assert run(zipped, out / 'zips') == 0
    assert 'kept from an earlier run' in capsys.readouterr().out


def test_damaged_zip_is_one_line_naming_it(tmp_path, capsys):
    raw = tmp_path / 'raw'
    for s in ('train', 'val'):
        (raw / s / 'images').mkdir(parents=True)
        (raw / s / 'images' / 'part1.zip').write_bytes(b'PK')
    assert run(raw, tmp_path / 'out') == 1
    err = _err(capsys).strip().splitlines()
    assert err == [f"error: '{raw / 'train' / 'images' / 'part1.zip'}' is not a readable zip "
                   f"archive (File is not a zip file); download it again"]


def test_zips_without_images_say_what_is_expected(tmp_path, capsys):
    import zipfile
    raw = tmp_path / 'raw'
    for s in ('train', 'val'):
        (raw / s / 'images').mkdir(parents=True)
        with zipfile.ZipFile(raw / s / 'images' / 'part1.zip', 'w') as z:
            z.writestr('readme.txt', 'x')
    assert run(raw, tmp_path / 'out') == 1
    err = _err(capsys)
    assert 'no iSAID images' in err and 'part1.zip' in err and 'train/images/part*.zip' in err


def test_colour_decoding_literal_devkit_colours(tmp_path):
    """Colours written by hand from the devkit's labels.py (RGB order), not from splits.py."""
    from aeroseg.datasets.prepare.isaid import decode_colour_mask
    a = np.zeros((2, 3, 3), np.uint8)
    a[0, 0] = (0, 0, 63)      # ship -> 0
    a[0, 1] = (0, 100, 155)   # harbor -> 14
    a[0, 2] = (0, 127, 255)   # plane -> 13
    a[1, 0] = (0, 0, 127)     # small vehicle -> 8
    Image.fromarray(a, 'RGB').save(tmp_path / 'm.png')
    np.testing.assert_array_equal(decode_colour_mask(tmp_path / 'm.png'),
                                  [[0, 14, 13], [8, 255, 255]])


def test_decoding_in_row_blocks_matches_whole(tmp_path):
    from aeroseg.datasets.prepare.isaid import decode_colour_mask
    from dataset_fakes import isaid_colour
    ids = np.random.default_rng(0).integers(0, 16, (37, 23)).astype(np.uint8)
    ids[ids == 15] = 255
    Image.fromarray(isaid_colour(ids), 'RGB').save(tmp_path / 'm.png')
    for rows in (1, 5, 1024):
        np.testing.assert_array_equal(decode_colour_mask(tmp_path / 'm.png', rows), ids)


def test_image_smaller_than_patch_is_padded(tmp_path):
    raw = tmp_path / 'raw'
    exp = fake_isaid(raw, {'train': {'P0001': (20, 40, [0, 2, 4, 7])},
                           'val': {'P0002': (40, 40, [1, 3])}})
    assert run(raw, tmp_path / 'out') == 0
    ann = tmp_path / 'out' / 'ann_dir' / 'train'
    names = sorted(p.name for p in ann.iterdir())
    assert set(names) <= {'P0001_0_20_0_32.png', 'P0001_0_20_8_40.png'} and names
    for n in names:
        x0 = int(n.split('_')[3])
        lab = np.asarray(Image.open(ann / n))
        img = np.asarray(Image.open(tmp_path / 'out' / 'img_dir' / 'train' / n))
        assert lab.shape == (32, 32) and img.shape == (32, 32, 3)
        np.testing.assert_array_equal(lab[:20], exp['train']['P0001'][:, x0:x0 + 32])
        assert (lab[20:] == 255).all() and (img[20:] == 0).all()

"""get_split returns exactly the classes, ids and seen/unseen split of docs/design.md §2 (paper Table 1)."""
import pytest

from aeroseg.datasets import get_split
from aeroseg.datasets.splits import Split, register_split, resolve_class_names

EXPECTED = {
    'isaid': (('ship', 'storage tank', 'baseball diamond', 'tennis court', 'basketball court',
               'ground track field', 'bridge', 'large vehicle', 'small vehicle', 'helicopter',
               'swimming pool', 'roundabout', 'soccer ball field', 'plane', 'harbor'),
              (0, 1, 2, 4, 5, 7, 10, 11, 13), (3, 6, 8, 9, 12, 14)),
    'dlrsd': (('airplane', 'bare soil', 'buildings', 'cars', 'chaparral', 'court', 'dock', 'field',
               'grass', 'mobile home', 'pavement', 'sand', 'sea', 'ship', 'tanks', 'trees', 'water'),
              (4, 5, 6, 7, 8, 9, 11, 13, 14, 16), (0, 1, 2, 3, 10, 12, 15)),
    'oem': (('bareland', 'rangeland', 'developed space', 'road', 'tree', 'water',
             'agriculture land', 'building'), (0, 1, 3, 7), (2, 4, 5, 6)),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_split_matches_table_1(name):
    classes, seen, unseen = EXPECTED[name]
    s = get_split(name)
    assert s.classes == classes and s.seen == seen and s.unseen == unseen
    assert len(s.palette) == len(classes)


def test_aliases_and_oem_raw_mapping():
    assert get_split('OpenEarthMap') is get_split('oem') is get_split('OEM')
    oem = get_split('oem')
    assert oem.raw_to_id[0] == 255 and oem.raw_to_id[1] == 0 and oem.raw_to_id[8] == 7
    assert get_split('dlrsd').raw_to_id[17] == 16 and 0 not in get_split('dlrsd').raw_to_id


def test_errors_name_the_problem():
    with pytest.raises(KeyError, match='unknown dataset'):
        get_split('coco')
    with pytest.raises(KeyError, match="unknown class 'boat'.*valid names"):
        get_split('isaid').index('boat')
    with pytest.raises(ValueError, match='duplicate'):
        resolve_class_names(['a', 'a'])
    with pytest.raises(ValueError, match='cover ids'):
        Split(name='x', display='X', classes=('a', 'b'), seen=(0,), unseen=(0,), palette=((0, 0, 0),) * 2)


def test_alternative_reading_of_table_1_can_be_registered():
    s = get_split('oem')
    alt = register_split(Split(name='oem-swapped', display='OEM', classes=s.classes, seen=s.unseen,
                               unseen=s.seen, palette=s.palette, raw_to_id=s.raw_to_id), overwrite=True)
    assert get_split('oem-swapped').seen == (2, 4, 5, 6) and alt.unseen == (0, 1, 3, 7)

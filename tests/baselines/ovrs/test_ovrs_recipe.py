"""OVRS's configs: CAT-Seg + 4 rotations, the attention upsampler, sliding-window evaluation."""
import pytest

from aeroseg.config import REPO_ROOT, load_config


@pytest.mark.parametrize('ds', ['isaid', 'dlrsd', 'oem'])
def test_ovrs_model(ds):
    m = load_config(str(REPO_ROOT / f'configs/ovrs/ovrs_vitb16_{ds}.py')).model
    assert m.clip.rotations == (0, 90, 180, 270) and m.head.decoder_type == 'ovrs'
    assert m.guidance is None and m.templates == 'generic'
    # caoql98/OVRS evaluation: resize 640, 384 windows at stride 256, plus one global view
    assert m.test_cfg == dict(mode='slide', resize=640, crop_size=384, stride=256, global_view=True)

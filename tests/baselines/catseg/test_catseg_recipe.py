"""CAT-Seg's configs, and the CAT-Seg training recipe OVRS and AerOSeg keep (paper §4.2)."""
import glob
import os

import pytest

from aeroseg.config import REPO_ROOT, load_config

ITERS = {'isaid': 10000, 'dlrsd': 5000, 'oem': 15000}  # AerOSeg §4.2, per dataset
# the configs that train (the cross-dataset targets' configs only test, Table 9)
RECIPE_CONFIGS = sorted(c for folder in ('catseg', 'ovrs', 'aeroseg')
                        for c in glob.glob(str(REPO_ROOT / 'configs' / folder / '**' / '*.py'),
                                           recursive=True)
                        if os.path.basename(c)[:-3].rsplit('_', 1)[-1] in ITERS)


def _rel(p):
    return os.path.relpath(p, REPO_ROOT)


@pytest.mark.parametrize('path', RECIPE_CONFIGS, ids=_rel)
def test_catseg_training_recipe(path):
    """AdamW 2e-4, wd 1e-4, CLIP x0.01, grad clip 0.01, batch 4, Q/V fine-tuning of CLIP."""
    cfg = load_config(path)
    ds = os.path.basename(path)[:-3].rsplit('_', 1)[-1]
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 2e-4
    assert opt.optimizer.weight_decay == 1e-4 and opt.clip_grad.max_norm == 0.01
    assert opt.paramwise_cfg.custom_keys['clip.'].lr_mult == 0.01
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_cfg.max_iters == ITERS[ds] == cfg.param_scheduler[0].end
    assert cfg.model.clip.finetune == 'qv'


@pytest.mark.parametrize('ds', sorted(ITERS))
@pytest.mark.parametrize('backbone', ['vitb16', 'vitl14'])
def test_catseg_model(ds, backbone):
    m = load_config(str(REPO_ROOT / f'configs/catseg/catseg_{backbone}_{ds}.py')).model
    assert m.type == 'OpenVocabCostSegmentor' and m.guidance is None and m.back_projection is None
    assert m.clip.rotations == (0,) and m.head.decoder_type == 'catseg'
    assert m.templates == 'generic' and m.test_cfg == dict(mode='whole')

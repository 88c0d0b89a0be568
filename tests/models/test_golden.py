"""Numerical equivalence of our cost-aggregation blocks with the official CAT-Seg / OVRS modules.

Each tests/golden/*.pt file holds an official module's state dict, its inputs and its output,
recorded by running the upstream code (see tests/golden/README.md). We map the keys into our
module, run it on the same inputs and require max |diff| <= 1e-5 x max(1, max |official|)
(float32: the rounding of sums over hundreds of terms grows with the values' magnitude; the
refined features reach ~9, where the speed changes' equal maths in another order, e.g.
ClassRefinement.dedup_padding, differ by 1.0e-5 abs = 1.1e-6 of the magnitude).
"""
import json
import os
from pathlib import Path

import pytest
import torch

from aeroseg.models.cost_volume import cosine_cost_volume, derotate_dense_features
from aeroseg.models.decoders import AttentionUpsampleBlock
from aeroseg.models.head import CostAggregationHead
from baselines.catseg import convert_official_aggregator_state_dict
from aeroseg.models.losses import OpenVocabBCELoss
from aeroseg.models.refinement import AggregatorLayer
from aeroseg.utils.checkpoint import load_into

# AEROSEG_GOLDEN_DIR: run against freshly recorded files (tests/golden/record_catseg_ovrs.py --out DIR)
GOLDEN = Path(os.environ.get('AEROSEG_GOLDEN_DIR') or Path(__file__).resolve().parents[1] / 'golden')
ATOL = 1e-5


def _load(name):
    path = GOLDEN / f'{name}.pt'
    if not path.is_file():
        pytest.fail(f'golden file missing: {path} (regenerate: tests/golden/README.md)')
    return torch.load(path, map_location='cpu', weights_only=True)


def _close(ours, ref, what):
    assert ours.shape == ref.shape, f'{what}: shape {tuple(ours.shape)} vs official {tuple(ref.shape)}'
    diff = (ours - ref).abs().max().item()
    tol = ATOL * max(1.0, ref.abs().max().item())
    assert diff <= tol, f'{what}: max |ours - official| = {diff:.3g} > {tol:.3g}'


def _head_from_official(cfg, num_rotations, decoder_type):
    """Our head configured as the official ``Aggregator(**cfg)`` (+ CATSeg upsample1/2)."""
    return CostAggregationHead(
        num_templates=cfg['prompt_channel'], num_rotations=num_rotations, corr_kernel_size=7,
        hidden_dim=cfg['hidden_dim'], num_heads=cfg['nheads'], num_layers=cfg['num_layers'],
        window_size=cfg['window_size'], pooling_size=cfg['pooling_size'], test_pooling_size=None,
        attention_type=cfg['attention_type'], pad_len=cfg['pad_len'],
        text_guidance_dim=cfg['text_guidance_dim'], text_guidance_proj_dim=cfg['text_guidance_proj_dim'],
        appearance_guidance_dim=cfg['appearance_guidance_dim'],
        appearance_guidance_proj_dim=cfg['appearance_guidance_proj_dim'],
        decoder_type=decoder_type, decoder_dims=cfg['decoder_dims'], decoder_guidance_mode='transpose',
        decoder_guidance_in_dims=cfg['decoder_guidance_in_dims'],
        decoder_guidance_dims=cfg['decoder_guidance_dims'],
        decoder_guidance_proj_dims=cfg['decoder_guidance_proj_dims']).eval()


@pytest.mark.parametrize('name', ['catseg_aggregator_layer', 'catseg_aggregator_layer_noguidance'])
def test_aggregator_layer_matches_official(name):
    g = _load(name)
    cfg = g['config']
    layer = AggregatorLayer(hidden_dim=cfg['hidden_dim'], text_guidance_dim=cfg['text_guidance_dim'],
                            appearance_guidance_dim=cfg['appearance_guidance'], num_heads=cfg['nheads'],
                            window_size=cfg['window_size'], pooling_size=cfg['pooling_size'],
                            test_pooling_size=None, attention_type=cfg['attention_type'],
                            pad_len=cfg['pad_len']).eval()
    load_into(layer, convert_official_aggregator_state_dict(g['state_dict'], prefix=''), what=name)
    inp = g['inputs']
    with torch.no_grad():
        out = layer(inp['x'], inp.get('appearance_guidance'), inp.get('text_guidance'))
    _close(out, g['output'], name)


@pytest.mark.parametrize('name,rotations,decoder_type', [
    ('catseg_aggregator', False, 'catseg'),
    ('catseg_aggregator_topk', False, 'catseg'),
    ('ovrs_aggregator', True, 'ovrs'),
])
def test_head_matches_official_aggregator(name, rotations, decoder_type):
    g = _load(name)
    inp = g['inputs']
    img = inp['img_feats']
    if rotations:   # OVRS: the maps of the rot90(k) inputs, rotated back inside its correlation
        img = derotate_dense_features(img, ks=(0, 1, 2, 3))
    corr = cosine_cost_volume(img, inp['text_feats'])
    _close(corr, g['corr'], f'{name}: cost volume')

    head = _head_from_official(g['config'], 4 if rotations else 1, decoder_type)
    load_into(head, convert_official_aggregator_state_dict(g['state_dict']), what=name)
    with torch.no_grad():
        out = head(corr, inp['appearance_guidance'], inp['text_feats'], inp['decoder_guidance'])
    _close(out['logits'], g['output'], f'{name}: logits')
    # the official hook saw the kept classes only (all of them unless N > pad_len), in this order
    kept = g['kept_classes'][0]
    _close(out['refined'][:, :, kept], g['refined'], f'{name}: refined features')
    dropped = torch.ones(corr.shape[2], dtype=torch.bool)
    dropped[kept] = False
    assert (out['refined'][:, :, dropped] == 0).all()
    assert (out['logits'][:, dropped] == -100).all()


def test_ovrs_up_block_matches_official():
    g = _load('ovrs_up')
    cfg, inp = g['config'], g['inputs']
    block = AttentionUpsampleBlock(cfg['in_channels'], cfg['out_channels'], cfg['guidance_channels']).eval()
    load_into(block, g['state_dict'], what='ovrs_up')
    B = inp['batch']
    x = inp['x']                                         # official layout (B T) C H W
    x5 = x.view(B, -1, *x.shape[1:]).transpose(1, 2)     # ours: B C T H W
    with torch.no_grad():
        y = block(x5, inp['guidance'])
    y = y.transpose(1, 2).reshape(-1, *y.shape[1:2], *y.shape[-2:])
    _close(y, g['output'], 'ovrs_up')


def test_loss_matches_official():
    g = _load('catseg_loss')
    inp = g['inputs']
    loss = OpenVocabBCELoss(ignore_mode='zero_target')(inp['logits'], inp['targets'])
    _close(loss, g['output'], 'catseg_loss')


@pytest.mark.parametrize('key,kwargs', [
    ('catseg_vitb', dict()),
    ('ovrs_vitb', dict(num_rotations=4, decoder_type='ovrs')),
])
def test_default_head_has_the_official_vitb_parameters(key, kwargs):
    """Our defaults = configs/vitb_384.yaml: every official tensor maps to one of ours, same shape."""
    official = json.loads((GOLDEN / 'official_vitb_shapes.json').read_text())[key]
    mapped = convert_official_aggregator_state_dict({k: torch.empty(s, device='meta') for k, s in official.items()})
    shapes = {k: list(v.shape) for k, v in mapped.items()}
    ours = {k: list(v.shape) for k, v in CostAggregationHead(**kwargs).state_dict().items()}
    assert ours == shapes


OUR_FILES = ('catseg_aggregator_layer', 'catseg_aggregator_layer_noguidance', 'catseg_aggregator',
             'catseg_aggregator_topk', 'ovrs_aggregator', 'ovrs_up', 'catseg_loss')


def test_golden_files_name_upstream_and_stay_small():
    total = 0
    for name in OUR_FILES:
        g = _load(name)
        repo, _, sha = g['upstream'].partition('@')
        assert repo in ('cvlab-kaist/CAT-Seg', 'caoql98/OVRS'), name
        assert len(sha) == 40, f'{name}: upstream commit must be a full sha'
        total += (GOLDEN / f'{name}.pt').stat().st_size
    assert 0 < total < 2 * 1024 * 1024, f'golden files take {total} bytes (keep them under 2 MB)'

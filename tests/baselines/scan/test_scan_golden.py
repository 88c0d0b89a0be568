"""SCAN's own blocks vs the official yongliu20/SCAN code, on shared random weights.

``tests/golden/scan/scan_goldens.pt`` was recorded by ``tests/golden/scan/record_goldens.py``
from the official modules (commit in the file). Official state dicts load strictly into ours
(same attribute names), so a renamed or missing parameter fails here too. Tolerance 1e-5.
"""
import os
import random

import pytest
import torch
from open_clip.transformer import VisionTransformer

from baselines.scan.modules import (LFM, SemanticIntegration, clip_layer_outputs, crop_with_mask,
                                    encode_with_contextual_shift, mask_boxes)

GOLDEN = os.path.join(os.path.dirname(__file__), '..', '..', 'golden', 'scan', 'scan_goldens.pt')
TOL = 1e-5


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, weights_only=True)


def _close(a, b, what):
    err = (a - b).abs().max().item()
    assert err <= TOL, f'{what}: max |ours - official| = {err:.3g}'


def _vit(golden):
    c = golden['config']
    vit = VisionTransformer(image_size=c['image'], patch_size=c['patch'], width=c['width'],
                            layers=c['layers'], heads=c['heads'], mlp_ratio=4.0,
                            output_dim=c['embed']).eval()
    vit.load_state_dict(golden['clip']['state_dict'], strict=True)
    return vit


def test_upstream_commit_named(golden):
    assert golden['upstream'] == 'yongliu20/SCAN@097fbbdaf7789ac6d2da44533e95521e73fd7c4f'


def test_lfm(golden):
    g = golden['lfm']
    lfm = LFM(8)
    lfm.load_state_dict(g['state_dict'], strict=True)
    _close(lfm(g['inputs']['x'], sigma=g['inputs']['sigma']), g['output'], 'LFM')


def test_original_clip_layers(golden):
    """Every layer's tokens and class token and the final embedding (get_embedding=True)."""
    g = golden['clip']
    with torch.no_grad():
        ours = clip_layer_outputs(_vit(golden), g['inputs']['x'])
    for k in ('tokens', 'cls', 'embed'):
        _close(ours[k], g['output'][k], f'CLIP {k}')


def test_integration_stack(golden):
    """LFM per SI layer + projection + CA stack + CLS term + sequence-length-1 encoder (eval)."""
    c, g = golden['config'], golden['integration']
    si = SemanticIntegration(c['width'], c['si_layers'], c['sigmas'], c['scan_dim'], c['num_ca'],
                             c['num_enc'], 8, c['enc_ffn']).eval()
    sd = {k.replace('lightweight_transformer.', 'lightweight_transformer.encoder.'): v
          for k, v in g['state_dict'].items()}
    si.load_state_dict(sd, strict=True)
    clip_out = golden['clip']['output']
    with torch.no_grad():
        memory = si.memory(clip_out)
        out = si(g['inputs']['queries'], memory, clip_out['embed'])
        alone = si.lightweight_transformer(g['inputs']['queries'])
    _close(memory, g['memory'], 'SI memory (LFM + projection)')
    _close(out, g['output'], 'integrated queries')
    _close(alone, g['encoder_alone'], 'sequence-length-1 encoder')


@pytest.mark.parametrize('ratio_key', ['output', 'ratio0'])
def test_contextual_shift(golden, ratio_key):
    """Seeded replacement (random.Random(seed) draws what random.seed(seed) + random.sample drew
    upstream) and ratio 0 (the masked-crop forward without replacement)."""
    c, g = golden['config'], golden['shift']
    vit = _vit(golden)
    cls = golden['clip']['output']['cls']
    ratio = c['replace_ratio'] if ratio_key == 'output' else 0.0
    idx = torch.zeros(g['inputs']['regions'].shape[0], dtype=torch.long)  # crops of image 0
    with torch.no_grad():
        ours = encode_with_contextual_shift(vit, g['inputs']['regions'], g['inputs']['masks'], cls,
                                            idx, ratio, c['replace_layer'],
                                            random.Random(c['shift_seed']))
    _close(ours, g[ratio_key], f'contextual shift ({ratio_key})')


def test_shift_changes_the_output(golden):
    """The replacement is not a no-op on these crops (else the test above could not fail)."""
    g = golden['shift']
    assert (g['output'] - g['ratio0']).abs().max() > 1e-3


@pytest.mark.parametrize('ratio', ['1.0', '1.3'])
def test_crop_with_mask(golden, ratio):
    g = golden['crop']
    i = g['inputs']
    box = mask_boxes(i['mask'][None] > 0)[0]
    assert torch.equal(box, i['box'])  # detectron2 BitMasks.get_bounding_boxes
    region, m = crop_with_mask(i['image'], i['mask'], box, fill=i['fill'].tolist(),
                               expand_ratio=float(ratio))
    assert region.shape == g['output'][ratio]['region'].shape
    _close(region, g['output'][ratio]['region'], f'crop region x{ratio}')
    _close(m, g['output'][ratio]['mask'], f'crop mask x{ratio}')


def test_deformable_attention_torch_kernel(golden):
    """mmcv's pure-torch kernel (what PortableMSDeformAttn routes to without a compiled CUDA op)
    equals the official pure-torch reference of the compiled op."""
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    i = golden['msda']['inputs']
    ours = multi_scale_deformable_attn_pytorch(i['value'], i['shapes'], i['loc'], i['weights'])
    _close(ours, golden['msda']['output'], 'deformable attention core')

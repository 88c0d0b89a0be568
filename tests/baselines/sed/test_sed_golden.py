"""SED's blocks vs the official xb534/SED code on shared random weights (tolerance 1e-5, float32, CPU).

``tests/golden/sed/sed_goldens.pt`` was recorded by ``tests/golden/sed/record_goldens.py`` from the
official modules (commit in the file). Official state dicts are mapped by
``convert_official_head_state_dict`` and loaded strictly, so a wrong key map fails here too.
"""
import os
import sys

import pytest
import torch

from aeroseg.models.convnext_clip import convnext_features
from aeroseg.models.cost_volume import cosine_cost_volume
from aeroseg.models.prompts import IMAGENET80_TEMPLATES
from baselines.sed import SEDHead, SEDUp, SEDSegmentor, convert_official_head_state_dict, topk_valid_classes
from baselines.sed.head import REJECTED_LOGIT

GOLDEN = os.path.join(os.path.dirname(__file__), '..', '..', 'golden', 'sed', 'sed_goldens.pt')
TOL = 1e-5


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, weights_only=True)


def _close(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err <= TOL, err


def _tiny_head(g, **kw):
    c = g['aggregator']['config']
    head = SEDHead(num_templates=c['prompt_channel'], hidden_dim=c['hidden_dim'], decoder_dims=c['decoder_dims'],
                   decoder_guidance_dims=c['decoder_guidance_dims'],
                   decoder_guidance_proj_dims=c['decoder_guidance_proj_dims'], num_heads=c['nheads'],
                   kernel_size=c['kernel_size'], pooling_size=c['pooling_size'], test_pooling_size=None, **kw)
    head.load_state_dict(convert_official_head_state_dict(g['aggregator']['state_dict']), strict=True)
    return head.eval()


def test_upstream_commit_and_templates(golden):
    assert golden['upstream'] == 'xb534/SED@db20d93c0ec8b0ce7fae267a10f826dfc7da15f5'
    # the cost volume's channel order = the templates' order (conv1 weights depend on it)
    assert tuple(golden['imagenet_templates']) == IMAGENET80_TEMPLATES


def test_convnext_block(golden):
    from timm.models.convnext import ConvNeXtBlock
    g = golden['convnext_block']
    m = ConvNeXtBlock(16, kernel_size=9, ls_init_value=1.0).eval()
    sd = convert_official_head_state_dict({'decoder1.cnext.' + k: v for k, v in g['state_dict'].items()})
    m.load_state_dict({k[len('decoders.0.cnext.'):]: v for k, v in sd.items()}, strict=True)
    with torch.no_grad():
        _close(m(g['inputs']['x']), g['output'])


@pytest.mark.parametrize('pool', [2, 1])
def test_class_attention(golden, pool):
    from aeroseg.models.refinement import ClassRefinement
    g = golden[f'class_attention_pool{pool}']
    m = ClassRefinement(16, guidance_dim=0, num_heads=4, pooling_size=(pool, pool), test_pooling_size=None,
                        pad_len=0).eval()
    m.load_state_dict({k.replace('MLP.', 'mlp.'): v for k, v in g['state_dict'].items()}, strict=True)
    with torch.no_grad():
        _close(m(g['inputs']['x'], None), g['output'])


def test_up(golden):
    g = golden['up']
    c = g['config']
    m = SEDUp(c['in_channels'], c['out_channels'], c['guidance_channels'], c['nheads'], c['kernel_size'],
              pooling_size=c['pooling_size'], test_pooling_size=None).eval()
    sd = convert_official_head_state_dict({'decoder1.' + k: v for k, v in g['state_dict'].items()})
    m.load_state_dict({k[len('decoders.0.'):]: v for k, v in sd.items()}, strict=True)
    i = g['inputs']
    with torch.no_grad():
        _close(m(i['x'], i['guidance'], i['corr_guidance']), g['output'])


def test_correlation_is_the_suite_cost_volume(golden):
    g = golden['aggregator']
    i = g['inputs']
    _close(cosine_cost_volume(i['img_feats'], i['text_feats']), g['corr'])


def _agg_forward(head, i):
    corr = cosine_cost_volume(i['img_feats'], i['text_feats'])
    return head(corr, [i['res4'], i['res3'], i['res2']])


def test_aggregator(golden):
    g = golden['aggregator']
    head = _tiny_head(golden)
    with torch.no_grad():
        outs = _agg_forward(head, g['inputs'])
    _close(outs[0], g['output'])
    for a, b in zip(outs[1:], g['aux']):
        _close(a, b)


def test_aggregator_topk_early_rejection(golden):
    g = golden['aggregator_topk']
    head = _tiny_head(golden, fast_inference=True, topk=1)
    with torch.no_grad():
        logits = _agg_forward(head, g['inputs'])[0]
    scores = logits.sigmoid()  # upstream returns sigmoid scores, 0 for rejected classes
    _close(scores, g['output'])
    rejected = ~g['head0_kept']
    assert rejected.any()  # the golden exercises the rejection
    assert (logits[:, rejected] == REJECTED_LOGIT).all() and (scores[:, rejected] == 0).all()
    # the head0 selection itself (upstream get_valid_idx_from_mask)
    head.fast_inference = False
    with torch.no_grad():
        aux0 = _agg_forward(head, g['inputs'])[1]
    assert torch.equal(topk_valid_classes(aux0, 1), g['head0_kept'])


def test_official_full_size_layout(golden):
    """Our default SEDHead (convnextB_768.yaml) holds exactly the official Aggregator's tensors."""
    head = SEDHead()
    want = {k: tuple(v) for k, v in convert_official_head_state_dict(
        {k: torch.empty(0) for k in golden['official_shapes']}).items()}
    shapes = dict(zip(want, (tuple(s) for s in golden['official_shapes'].values())))
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == shapes


def test_dense_convnext_clip_features(golden):
    """SED's bundled TimmModel.forward(dense=True) == convnext_features on open_clip 3.3.0's TimmModel."""
    from open_clip.timm_model import TimmModel
    import importlib.util
    spec = importlib.util.spec_from_file_location('sed_record_goldens', os.path.join(os.path.dirname(GOLDEN), 'record_goldens.py'))
    rec = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = rec  # timm's register_model looks the module up
    spec.loader.exec_module(rec)
    rec.register_golden_convnext()
    g = golden['clip_dense']
    c = g['config']
    m = TimmModel(c['timm_model_name'], c['embed_dim'], image_size=c['image_size'], pool=c['timm_pool'],
                  proj=c['timm_proj'], drop_path=0.0).eval()
    m.load_state_dict(g['state_dict'], strict=True)
    with torch.no_grad():
        out = convnext_features(m, g['inputs']['x'])
    assert set(out) == set(g['output'])
    for k in out:
        _close(out[k], g['output'][k])


def test_text_embeddings_synonyms(golden):
    """SEDSegmentor.text_features == SEDPredictor.class_embeddings (templates kept, ', ' synonyms
    averaged per template and re-normalised), on a stand-in text encoder."""
    import open_clip
    g = golden['class_embeddings']
    tok = open_clip.get_tokenizer('convnext_base_w_320')

    class StandIn:  # CLIPDenseBackbone.encode_text's contract: (N, P, D), L2-normalised
        def encode_text(self, names, templates):
            e = tok([t.format(n) for n in names for t in templates]).float() @ g['W']
            return torch.nn.functional.normalize(e, dim=-1).view(len(names), len(templates), -1)

    seg = SEDSegmentor.__new__(SEDSegmentor)
    object.__setattr__(seg, '_modules', {})
    seg.__dict__.update(clip=StandIn(), templates=g['templates'])
    _close(SEDSegmentor.text_features(seg, g['names']), g['output'])

"""Helpers of the SegEarth-OV tests: golden files, official-layout checkpoint files, tiny models."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

open_clip = pytest.importorskip('open_clip')
pytest.importorskip('mmseg')

GOLDEN = Path(__file__).resolve().parents[2] / 'golden' / 'segearthov'
ARCH = 'aeroseg-test-segearthov-golden'


def load_golden(name: str) -> dict:
    path = GOLDEN / f'{name}.pt'
    if not path.is_file():
        pytest.fail(f'golden file missing: {path} (tests/golden/segearthov/README.md says how to record it)')
    return torch.load(path, map_location='cpu', weights_only=True)


def lightning_file(path: Path, state_dict: dict) -> Path:
    """``state_dict`` saved as the official SimFeatUp / FeatUp checkpoints are (Lightning, ``upsampler.``)."""
    torch.save({'epoch': 0, 'global_step': 0, 'pytorch-lightning_version': '1.9.4',
                'state_dict': {f'upsampler.{k}': v.float() for k, v in state_dict.items()},
                'optimizer_states': [], 'lr_schedulers': []}, path)
    return path


def build_model(golden_arch, upsampler_ckpt=None, upsampler=True, **kw):
    """A SegEarthOV on the golden tiny CLIP (its official visual weights loaded), eval mode."""
    from baselines.segearthov import SegEarthOV
    args = dict(clip=dict(type='SegEarthCLIP', model_name=golden_arch, pretrained=None),
                upsampler=(dict(type='SimFeatUp', model_name='jbu_one',
                                checkpoint=None if upsampler_ckpt is None else str(upsampler_ckpt))
                           if upsampler else None),
                vocabulary=dict(split='isaid', train='all', test='all'))
    args.update(kw)
    torch.manual_seed(0)  # the (random, unused-by-goldens) text tower: the same in every build
    model = SegEarthOV(**args)
    model.clip.clip.visual.load_state_dict(load_golden('clip')['visual'])  # packed keys -> split Q/K/V
    return model.eval()


def fixed_text(model, monkeypatch, golden):
    """Make ``model`` embed its queries with the golden query features (looked up by query name)."""
    table = dict(zip(golden['queries'], golden['query_features']))
    monkeypatch.setattr(model, 'text_embeddings', lambda queries: torch.stack([table[q] for q in queries]))

"""Checkpoints under torch >= 2.6: the run's own resume checkpoints load with weights_only=True
(no unsafe global), resume continues exactly, and outside weights refuse pickled objects."""
import collections
import os

import pytest
import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aeroseg.utils.checkpoint import CheckpointError, load_external_state_dict, load_into
from aeroseg.utils.resume import AerosegRunner, from_safe, to_safe


class _Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, inputs, labels, mode='loss'):
        out = self.fc(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            return {'loss': nn.functional.cross_entropy(out, torch.as_tensor(labels))}
        return out


class _Data(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=g)
        self.y = torch.randint(0, 3, (16,), generator=g)

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


def _runner(work_dir, max_iters, resume=False):
    torch.manual_seed(0)
    return AerosegRunner(
        model=_Toy(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=_Data(), batch_size=4,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05, weight_decay=1e-4)),
        param_scheduler=dict(type='CosineAnnealingLR', by_epoch=False, T_max=6, end=6),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), resume=resume, default_scope='mmengine',
        experiment_name=f'toy_{max_iters}_{resume}')


def test_own_checkpoint_loads_weights_only_and_resume_is_exact(tmp_path):
    full = _runner(tmp_path / 'full', 6)
    full.train()
    ref = {k: v.clone() for k, v in full.model.state_dict().items()}

    part = tmp_path / 'part'
    _runner(part, 3).train()  # "interrupted" after iteration 3 (its last checkpoint)
    ckpt = part / 'iter_3.pth'
    obj = torch.load(ckpt, map_location='cpu', weights_only=True)  # no unsafe global needed
    assert obj['meta']['iter'] == 3 and 'message_hub' in obj
    resumed = _runner(part, 6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    for k, v in resumed.model.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=1e-6)
    # the message hub came back as HistoryBuffers (losses logged before the interruption)
    assert 'train/loss' in resumed.message_hub.log_scalars


def test_plain_mmengine_checkpoint_fails_weights_only_without_our_hook(tmp_path):
    """The problem the hook solves: mmengine's own format needs unsafe globals."""
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(1.0)
    torch.save({'message_hub': {'log_scalars': {'loss': buf}}}, tmp_path / 'x.pth')
    with pytest.raises(Exception, match='HistoryBuffer|weights_only|Unsupported global'):
        torch.load(tmp_path / 'x.pth', weights_only=True)
    safe = to_safe({'log_scalars': {'loss': buf}})
    torch.save(safe, tmp_path / 'y.pth')
    back = from_safe(torch.load(tmp_path / 'y.pth', weights_only=True))
    assert back['log_scalars']['loss'].current() == 1.0


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_outside_weights_refuse_pickled_objects(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'extra': _Payload()}, path)
    with pytest.raises(CheckpointError, match='evil.pth.*weights_only'):
        load_external_state_dict(path, what='SAM ViT-L')
    with pytest.raises(CheckpointError, match='file not found'):
        load_external_state_dict(tmp_path / 'missing.pth')


def test_outside_weights_unwrap_and_key_mismatch(tmp_path):
    m = nn.Linear(2, 2)
    torch.save({'model': collections.OrderedDict(m.state_dict())}, tmp_path / 'ok.pth')
    sd = load_external_state_dict(tmp_path / 'ok.pth')
    load_into(nn.Linear(2, 2), sd)
    with pytest.raises(CheckpointError, match=r'missing in file.*\n.*unexpected in file'):
        load_into(nn.Linear(2, 2), {'weight': sd['weight'], 'foo': sd['bias']}, what='x')
    with pytest.raises(CheckpointError, match='shape mismatch'):
        load_into(nn.Linear(3, 2), sd, what='x')

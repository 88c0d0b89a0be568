"""A fake tiny mmengine world for the runner's tests: a linear classifier on seeded random
vectors, trained by mmengine's Runner through ``benchmarks.train`` / ``benchmarks.test`` exactly
like a real config. Its metric is a *soft* IoU (from softmax probabilities), so any difference in
the final weights - e.g. a resume that lost the optimizer state or replayed other batches - shows
in the numbers. Registered in mmengine's root registries (the configs use no default scope).

``FAKE_SLEEP`` (seconds per training step, environment) slows training down so a test can kill
a run after its first checkpoint; it is not part of the config (so not of its hash).
"""
import os
import time

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch import nn

CLASSES = ('ship', 'plane', 'harbor', 'bridge')
SEEN = (0, 1)


@DATASETS.register_module()
class FakeVectors(torch.utils.data.Dataset):
    """``n`` random vectors labelled by a fixed random linear map (same map for every split)."""

    def __init__(self, n=64, seed=1, dim=6, num_classes=len(CLASSES)):
        truth = torch.randn(dim, num_classes, generator=torch.Generator().manual_seed(1234))
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = (self.x @ truth).argmax(1)
        self.metainfo = {'classes': CLASSES}

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {'inputs': self.x[i], 'labels': self.y[i]}


@MODELS.register_module()
class FakeSegmentor(BaseModel):
    def __init__(self, dim=6, num_classes=len(CLASSES)):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, inputs, labels=None, mode='tensor'):
        logits = self.fc(inputs)
        if mode == 'loss':
            delay = float(os.environ.get('FAKE_SLEEP', '0') or 0)
            if delay:
                time.sleep(delay)
            return {'loss': F.cross_entropy(logits, labels)}
        if mode == 'predict':
            return [{'prob': p, 'label': t} for p, t in zip(logits.softmax(-1), labels)]
        return logits


@MODELS.register_module()
class FakeTrainingFree(FakeSegmentor):
    """A 'training-free' model: fixed weights from its constructor."""

    def __init__(self, **kw):
        super().__init__(**kw)
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g))
            self.fc.bias.zero_()


@METRICS.register_module()
class FakeOpenVocabMetric(BaseMetric):
    """Soft IoU per class (percent) with s-/u-/h-mIoU and mIoU, keys as OpenVocabIoUMetric's."""

    def process(self, data_batch, data_samples):
        for d in data_samples:
            self.results.append((d['prob'].cpu(), int(d['label'])))

    def compute_metrics(self, results):
        p = torch.stack([r[0] for r in results]).double()
        t = F.one_hot(torch.tensor([r[1] for r in results]), p.shape[1]).double()
        inter = (p * t).sum(0)
        iou = (inter / (p.sum(0) + t.sum(0) - inter)) * 100
        s = iou[list(SEEN)].mean().item()
        u = iou[[i for i in range(len(CLASSES)) if i not in SEEN]].mean().item()
        out = {'mIoU': iou.mean().item(), 's-mIoU': s, 'u-mIoU': u,
               'h-mIoU': 2 * s * u / (s + u) if s + u else 0.0}
        out.update({f'IoU.{c}': iou[i].item() for i, c in enumerate(CLASSES)})
        return out

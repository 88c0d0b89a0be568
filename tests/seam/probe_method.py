"""A minimal method written only against the public seam: the test of "adding a method".

``LinearProbeSegmentor``: a frozen CLIP's dense features through one learnable 1x1 projection,
cosine-scored against the prompt-averaged text embeddings. It is its own package-less module
(imported by name through a config's ``custom_imports``), declares its hooks, and registers its
row in the runner's method list with ``benchmarks.methods.register_method``; nothing else in the
suite knows it.
"""
import copy

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn

from aeroseg.datasets.transforms import HIDDEN_INDEX
from aeroseg.models import OpenVocabSegmentor
from aeroseg.models.base_segmentor import resize_to


@MODELS.register_module()
class LinearProbeSegmentor(OpenVocabSegmentor):
    def __init__(self, clip: dict, templates='generic', logit_scale: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.clip = MODELS.build(dict(clip, finetune='frozen'))
        self.proj = nn.Conv2d(self.clip.embed_dim, self.clip.embed_dim, 1)
        self.templates, self.logit_scale = templates, logit_scale

    @classmethod
    def weight_fields(cls, model_cfg):
        return {'vl': 'clip.pretrained'}

    @classmethod
    def mini_scale(cls, model_cfg, overlay):
        model_cfg.clip = copy.deepcopy(overlay.clip)  # the tiny CLIP of the mini world

    def forward_logits(self, inputs, names):
        dense = self.clip(inputs)['dense'][:, 0]
        feats = F.normalize(self.proj(dense), dim=1)
        text = self.clip.encode_text_mean(list(names), self.templates)
        return {'logits': self.logit_scale * torch.einsum('bdhw,nd->bnhw', feats, text)}

    def loss(self, inputs, data_samples):
        logits = resize_to(self.forward_logits(inputs, self.train_vocabulary)['logits'],
                           inputs.shape[-2:])
        targets = self.train_targets(data_samples, inputs.shape[-2:])
        targets = targets.masked_fill(targets == HIDDEN_INDEX, self.ignore_index)
        return {'loss_ce': F.cross_entropy(logits, targets, ignore_index=self.ignore_index)}

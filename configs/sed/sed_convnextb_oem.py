# SED ConvNeXt-B on oem with SED's default configuration (AerOSeg paper §4.2: each baseline with its
# public code and default settings): the official recipe, AdamW 2e-4, weight decay 1e-4, CLIP
# x0.01, cosine (WarmupCosineLR, no warm-up), full-model gradient clipping 0.01, batch 4, 80k
# iterations (xb534/SED configs/convnextB_768.yaml SOLVER + configs/config.yaml) = CAT-Seg's
# optimiser and schedule, so _base_/schedules/catseg_80k.py is reused (one difference: detectron2
# exempts torch.nn norm layers from weight decay, WEIGHT_DECAY_NORM 0.0, here they decay as in
# CAT-Seg's schedule of this suite; SED's own decoder LayerNorm is not a torch.nn one and decays
# upstream too); 768 crops
# (_base_/models/sed_convnextb.py). AerOSeg's per-dataset iterations instead: replace the schedule
# base by catseg_15k.py.
_base_ = [
    '../_base_/models/sed_convnextb.py', '../_base_/datasets/oem.py',
    '../_base_/schedules/catseg_80k.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='oem', train='seen', test='all'))
train_dataloader = dict(batch_size=4,  # IMS_PER_BATCH 4
                        dataset=dict(pipeline={{_base_.sed_train_pipeline}}))

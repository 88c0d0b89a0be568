# CAT-Seg's official recipe (cvlab-kaist/CAT-Seg@6d3a188, configs/config.yaml + vitb_384.yaml):
# AdamW, BASE_LR 2e-4, WEIGHT_DECAY 1e-4, CLIP_MULTIPLIER 0.01, WarmupCosineLR with
# WARMUP_ITERS 0, CLIP_GRADIENTS full_model CLIP_VALUE 0.01 NORM_TYPE 2.0, IMS_PER_BATCH 4
# (batch size is set per GPU in the dataset config: 4 on one GPU).
# AerOSeg (paper §4.2) uses the same optimiser, CLIP at x0.01 and the other modules at 2e-4.
_base_ = ['./_iter_loops.py']
max_iters = 80000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(custom_keys={'clip.': dict(lr_mult=0.01),
                                    'guidance.': dict(lr_mult=0.01)}))
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=0, end=max_iters,
         T_max=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)

# SCAN's official recipe (yongliu20/SCAN@097fbbd configs/scan_vitB.yaml SOLVER + scan/config.py):
# AdamW lr 6e-5 (BASE_LR), weight decay 0.01 (WEIGHT_DECAY), 0 on norm layers (WEIGHT_DECAY_NORM
# 0.0) and embeddings (WEIGHT_DECAY_EMBED 0.0: query / level / positional embeddings, the
# learnable no-object embedding and CLIP's, which are frozen anyway), betas (0.9, 0.999),
# BACKBONE_MULTIPLIER 1.0; WarmupPolyLR: linear warm-up over 1,500 iterations from factor 1e-6
# (WARMUP_ITERS / WARMUP_FACTOR), then poly 0.9 (detectron2's POLY_LR_POWER default) to 120k
# (MAX_ITER); gradient clipping on the full model at L2 norm 0.01 (CLIP_GRADIENTS full_model);
# IMS_PER_BATCH 32. Upstream trains in full precision (no AMP key): so does this.
_base_ = ['./_iter_loops.py']
max_iters = 120000
warmup_iters = 1500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        'query_embed': dict(decay_mult=0.), 'query_feat': dict(decay_mult=0.),
        'level_embed': dict(decay_mult=0.), 'non_object_embedding': dict(decay_mult=0.),
        'absolute_pos_embed': dict(decay_mult=0.), 'relative_position_bias_table':
        dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=warmup_iters, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=10000))

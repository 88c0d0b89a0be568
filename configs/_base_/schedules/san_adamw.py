# SAN's official recipe (MendelXu/SAN@e19262d configs/Base-coco-stuff-164K-171.yaml +
# san_clip_vit_res4_coco.yaml): AdamW lr 1e-4, weight decay 1e-4 (0 on embeddings:
# WEIGHT_DECAY_EMBED_GROUP pos_embed / positional_embedding / query_embed, san/config.py), betas
# (0.9, 0.999), 0 on norm layers (detectron2 SOLVER.WEIGHT_DECAY_NORM 0.0, train_net.py
# build_optimizer), WarmupPolyLR power 0.9 (detectron2 default POLY_LR_POWER) without warmup
# (WARMUP_ITERS 0), gradient clipping on the full model at norm 0.01, BACKBONE_MULTIPLIER 1.0,
# IMS_PER_BATCH 32, MAX_ITER 60000 (COCO-Stuff).
# AMP (SOLVER.AMP.ENABLED True upstream): mmengine's AmpOptimWrapper asserts CUDA / NPU and fails on
# CPU, so the plain OptimWrapper is the default here (mini scale and CPU runs); on a GPU use
# _base_/schedules/san_amp.py (the official setting).
_base_ = ['./_iter_loops.py']
max_iters = 60000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={'pos_embed': dict(decay_mult=0.),
                                    'query_embed': dict(decay_mult=0.),
                                    'positional_embedding': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=10000))

# SegEarth-OV (likyoo/SegEarth-OV@3e22a96, segearth_segmentor.py + configs/base_config.py),
# training-free: OpenAI CLIP ViT-B/16 (QuickGELU) whose last block uses the SegEarth attention
# softmax(qq^T)+softmax(kk^T)+softmax(vv^T) on v with no residual / FFN; SimFeatUp 'jbu_one' (one
# shared JBULearnedRange, radius 5, applied 4 times: x16; the paper's numbers assume it;
# 'jbu_stack' = FeatUp's four JBUs is the other option); 80 ImageNet templates averaged, synonyms
# scored by max; logits = patch.text - 0.3 cls.text, x50, softmax; pixels below prob_thd -> bg_idx.
# Test: long side 448 (the pipeline below), 224 crops at stride 112, crop LOGITS averaged.
# Weights: OpenAI CLIP (open_clip 'openai') and the official SimFeatUp checkpoint
# xclip_jbu_one_million_aid.ckpt (Lightning format, 'upsampler.' prefix), placed at the path
# below (README, "Checkpoints"); feature_up=False (official switch) or upsampler=None runs
# without feature upsampling.
# training-free: the shared val / test loops and hooks, no schedule
_base_ = ['../schedules/_iter_loops.py']
model = dict(
    type='SegEarthOV',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=None, std=None, bgr_to_rgb=True,
                           pad_val=0, seg_pad_val=255),
    clip=dict(type='SegEarthCLIP', model_name='ViT-B-16', pretrained='openai', quick_gelu=True),
    upsampler=dict(type='SimFeatUp', model_name='jbu_one',
                   checkpoint='checkpoints/segearthov/xclip_jbu_one_million_aid.ckpt'),
    templates='imagenet80', cls_token_lambda=-0.3, logit_scale=50.0,
    vocabulary=dict(split='isaid', train='all', test='all'),  # set per dataset
    test_cfg=dict(mode='slide', resize_long=448, crop_size=224, stride=112))
# official test pipeline: Resize (448, 448) keep_ratio (the model's own long-side resize is then
# a no-op); labels stay at their original size. Each leaf config puts it in its dataloaders
# (mmengine refuses the same key in two bases).
segearthov_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelValues'),
    dict(type='PackSegInputs'),
]

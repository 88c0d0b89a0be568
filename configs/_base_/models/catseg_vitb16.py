# CAT-Seg, CLIP ViT-B/16 (cvlab-kaist/CAT-Seg@6d3a188, configs/vitb_384.yaml):
# CLIP at 384 (24 x 24 tokens), dense last block through the value path, Q/V of both towers
# fine-tuned (CLIP_FINETUNE "attention"), single prompt "A photo of a {} in the scene"
# (PROMPT_ENSEMBLE_TYPE "single"); aggregator hidden 128, 4 heads, 2 layers, window 12,
# pooling (2, 2), text/appearance guidance projected to 128; decoder dims [64, 32] with guidance
# from CLIP blocks 3 and 7 upsampled to [256, 128] and projected to [32, 16]; BCE loss.
# Test: the whole image at 384 (TEST.SLIDING_WINDOW False).
# Widths the encoders determine (text / appearance / decoder-guidance input dims, number of
# templates and rotations) are filled in by OpenVocabCostSegmentor.
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=None, std=None,  # the encoders normalise their own inputs
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(384, 384))
model = dict(
    type='OpenVocabCostSegmentor',
    data_preprocessor=data_preprocessor,
    clip=dict(type='CLIPDenseBackbone', model_name='ViT-B-16', pretrained='openai',
              image_size=384, tap_indices=(3, 7), rotations=(0,), finetune='qv'),
    guidance=None,
    head=dict(type='CostAggregationHead', hidden_dim=128, num_heads=4, num_layers=2,
              window_size=12, pooling_size=(2, 2), text_guidance_proj_dim=128,
              appearance_guidance_proj_dim=128, decoder_type='catseg', decoder_dims=(64, 32),
              decoder_guidance_proj_dims=(32, 16)),
    back_projection=None,
    # BCE as upstream (unlabelled 255 pixels: all-zero targets). Pixels of the unseen classes
    # hidden in training (254, HideUnseenClasses) are left out: the paper is silent (upstream
    # CAT-Seg has no hidden classes); counted as negatives they teach the head that unseen
    # regions are "none of the classes" (docs/measurements.md, "Hidden unseen pixels counted as negatives").
    # hidden_mode='zero_target' is the other reading.
    loss_decode=dict(type='OpenVocabBCELoss', ignore_mode='zero_target', hidden_mode='exclude'),
    templates='generic',
    vocabulary=dict(split='isaid', train='seen', test='all'),  # set per dataset
    test_cfg=dict(mode='whole'))

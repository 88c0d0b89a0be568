# SED, CLIP ConvNeXt-B (xb534/SED@db20d93 configs/convnextB_768.yaml + configs/config.yaml,
# sed/sed_model.py, sed/modeling/transformer/{sed_predictor,model}.py); AerOSeg's Table 2 runs
# SED's "base version with a CLIP ConvNeXt-B and its default configuration".
# CLIP: open_clip convnext_base_w_320 with the laion_aesthetic_s13b_b82k tag (CLIP_PRETRAINED
# "Convnext-B" in sed_predictor.py; not laion2b_s13b_b82k_augreg), every input resized to 768 x 768
# (SED.clip_resolution) with the CLIP mean / std, no stochastic depth (SED's bundled open_clip json
# has no timm_drop_path; 3.3.0's has 0.1: ConvNeXtCLIPBackbone.drop_path=0.0); the image tower fully fine-tuned, the text tower
# frozen (CLIP_FINETUNE "full": only "visual" parameters train), lr x 0.01 (CLIP_MULTIPLIER).
# Encoder features res2..res5 (128 / 256 / 512 / 1024 ch at 1/4..1/32), dense CLIP features
# (clip_vis_dense: norm_pre -> trunk.head -> visual.head, 640 ch, 24 x 24). Text: the 80 ImageNet
# templates kept apart (PROMPT_ENSEMBLE_TYPE "imagenet"), ", " synonyms averaged per template.
# Head (Aggregator): cosine cost volume (B, 80, T, 24, 24) -> 7x7 conv to HIDDEN_DIMS 128;
# three gradual-fusion stages (ConvNeXt block KERNEL_SIZE 9, class linear attention NUM_HEADS 4
# pooled POOLING_SIZES 2 x 2, ConvTranspose x2 + guidance + corr guidance), DECODER_DIMS
# [64, 32, 16], guidance res4 / res3 / res2 (detached) -> DECODER_GUIDANCE_PROJ_DIMS [32, 16, 8];
# TEXT_GUIDANCE_DIM 0 (no text guidance); aux heads for category early rejection.
# Test: the whole image at 768 (TEST.SLIDING_WINDOW is forced False in SED.forward), sigmoid.
# Pooling at test: the official eval.sh passes MODEL.SEM_SEG_HEAD.POOLING_SIZES "[1,1]" for every
# benchmark, so the class attention is unpooled at test (head.test_pooling_size=(1, 1));
# --cfg-options model.head.test_pooling_size=None keeps the training 2 x 2 (a bare
# `train_net.py --eval-only`). Fast inference (TEST.FAST_INFERENCE True, TOPK 8 in the README's
# fast setting; the config's default is False / 1): model.head.fast_inference=True model.head.topk=8.
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=None, std=None,  # the CLIP normalises its own input
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(768, 768))  # INPUT.SIZE_DIVISIBILITY 768
model = dict(
    type='SEDSegmentor',
    data_preprocessor=data_preprocessor,
    clip=dict(type='ConvNeXtCLIPBackbone', model_name='convnext_base_w_320',
              pretrained='laion_aesthetic_s13b_b82k', image_size=768, finetune='visual'),
    head=dict(type='SEDHead', hidden_dim=128, decoder_dims=(64, 32, 16),
              decoder_guidance_proj_dims=(32, 16, 8), num_heads=4, kernel_size=(9, 9, 9),
              attention_type='linear', pooling_size=(2, 2), test_pooling_size=(1, 1),
              fast_inference=False, topk=1),
    # BCE with logits on each of the 4 outputs, summed (SED.forward); unlabelled 255 pixels are
    # all-zero targets inside the mean as upstream; hidden unseen pixels (254) are left out, the
    # suite's reading for every BCE method (configs/_base_/models/catseg_vitb16.py).
    loss_decode=dict(type='OpenVocabBCELoss', ignore_mode='zero_target', hidden_mode='exclude'),
    templates='imagenet80',
    vocabulary=dict(split='isaid', train='seen', test='all'),  # set per dataset
    test_cfg=dict(mode='whole'))

# Training augmentation (convnextB_768.yaml INPUT, mask_former_semantic mapper): shortest edge 768
# (max 2666) -> random 768 crop (no category-area constraint) -> SSD colour augmentation -> flip.
sed_crop_size = (768, 768)
sed_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelValues'),
    dict(type='HideUnseenClasses'),
    dict(type='Resize', scale=(2666, 768), keep_ratio=True),
    dict(type='RandomCrop', crop_size=sed_crop_size, cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]

# SAN, CLIP ViT-B/16 (MendelXu/SAN@e19262d configs/Base-coco-stuff-164K-171.yaml + san/config.py;
# mmseg 1.2.2 .mim/configs/_base_/models/san_vit-b16.py, whose modules SANSegmentor builds).
# Frozen OpenAI CLIP (only the image positional embedding trains: CLIP_FROZEN_EXCLUDE
# ["positional_embedding"]) at half the input resolution (CLIP_RESOLUTION 0.5: 640 -> 320, 20 x 20
# tokens); blocks 0-8 feed the side network (FEATURE_LAST_LAYER_IDX 9; FUSION_MAP "0->0", "3->1",
# "6->2", "9->3" = the embedding and blocks 3 / 6 / 9 into side blocks 0-3), blocks 9-11 + ln_post +
# proj are the recognition head with the attention bias (REC_CROSS_ATTN False, max-pooled bias:
# REC_DOWNSAMPLE_METHOD "max", 100 cls-token sos tokens). Side network vit_w240n6d8_patch16 (dim 240,
# 6 heads, depth 8, patch 16, 640 input, 100 queries), deep supervision at side blocks [7, 8] (mmseg
# writes [7]; the last is always added), MLPMaskDecoder 3 layers x 256 giving a 12-head, 1-layer
# bias rescaled by Linear(1, 1) (ATTN_BIAS.*). Text: the 14 "vild" templates + learnable background
# (LearnableBgOvClassifier). Losses: class CE 2 (no-object 0.1), mask BCE 5, dice 5 on 12,544 points
# (oversample 3, importance 0.75); Hungarian matching with the same costs.
# Open-vocabulary protocol: the text encoder's vocabulary is set by SANSegmentor (train: the seen
# names; test: all); decode_head.num_classes and the class-CE class_weight ([1.0] * num_seen +
# [no_object_weight]) are filled from it. Hidden unseen pixels (254) are mapped to the ignore value
# 255 in SAN's targets: no class target and in no ground-truth mask, as upstream treats unlabelled
# pixels. QuickGELU (act_cfg of the three parts) follows model.clip: OpenAI weights need it.
# The head's norm_cfg (mmseg's base file sets SyncBN at top level, never passed on) is not used by
# SideAdapterCLIPHead: nothing here needs more than one device.
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=None, std=None,  # SANSegmentor normalises (CLIP mean / std)
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(640, 640))  # SIZE_DIVISIBILITY 640 (mapper)
model = dict(
    type='SANSegmentor',
    data_preprocessor=data_preprocessor,
    clip=dict(model_name='ViT-B-16', pretrained='openai'),  # converted to mmseg's layout on load
    asymetric_input=True,
    encoder_resolution=0.5,
    size_divisor=32,        # SAN.SIZE_DIVISIBILITY (test)
    no_object_weight=0.1,   # SAN.NO_OBJECT_WEIGHT
    image_encoder=dict(
        type='VisionTransformer', img_size=(224, 224), patch_size=16, patch_pad=0, in_channels=3,
        embed_dims=768, num_layers=9, num_heads=12, mlp_ratio=4, out_origin=True,
        out_indices=(2, 5, 8), qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
        drop_path_rate=0.0, with_cls_token=True, output_cls_token=True, patch_bias=False,
        pre_norm=True, norm_cfg=dict(type='LN', eps=1e-5), norm_eval=False,
        interpolate_mode='bicubic', frozen_exclude=['pos_embed']),
    text_encoder=dict(
        type='SANTextEncoder', templates='vild', embed_dims=512, num_layers=12, num_heads=8,
        mlp_ratio=4, output_dims=512, cache_feature=True, cat_bg=True,
        norm_cfg=dict(type='LN', eps=1e-5)),
    decode_head=dict(
        type='SideAdapterCLIPHead',
        num_classes=None,  # = number of training names (SANSegmentor)
        deep_supervision_idxs=[7],
        san_cfg=dict(
            in_channels=3, clip_channels=768, embed_dims=240, patch_size=16, patch_bias=True,
            num_queries=100,
            cfg_encoder=dict(num_encode_layer=8, num_heads=6, mlp_ratio=4),
            fusion_index=[0, 1, 2, 3],
            cfg_decoder=dict(num_heads=12, num_layers=1, embed_channels=256, mlp_channels=256,
                             num_mlp=3, rescale=True),
            norm_cfg=dict(type='LN', eps=1e-6)),
        maskgen_cfg=dict(
            sos_token_format='cls_token', sos_token_num=100, cross_attn=False, num_layers=3,
            embed_dims=768, num_heads=12, mlp_ratio=4, qkv_bias=True, out_dims=512,
            final_norm=True, norm_cfg=dict(type='LN', eps=1e-5), frozen_exclude=[]),
        align_corners=False,
        train_cfg=dict(
            num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75,
            assigner=dict(
                type='HungarianAssigner',
                match_costs=[
                    dict(type='ClassificationCost', weight=2.0),
                    dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                    dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)])),
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_name='loss_cls_ce', loss_weight=2.0,
                 class_weight=None),  # [1.0] * num_seen + [0.1], filled by SANSegmentor
            dict(type='CrossEntropyLoss', use_sigmoid=True, loss_name='loss_mask_ce',
                 loss_weight=5.0),
            dict(type='DiceLoss', ignore_index=None, naive_dice=True, eps=1,
                 loss_name='loss_mask_dice', loss_weight=5.0)]),
    vocabulary=dict(split='isaid', train='seen', test='all'),  # set per dataset
    test_cfg=dict(mode='whole'))  # whole image, short side 640 (the dataset base's test pipeline)

# Training augmentation (Base-coco-stuff-164K-171.yaml INPUT; mmseg san-vit-b16_coco-stuff164k):
# ResizeShortestEdge choice of 640 x 0.5..1.5 (320..960, max 2560) -> random 640 crop (category
# area 1.0 = none) -> SSD colour augmentation -> flip; the unseen classes hidden as for every method.
san_crop_size = (640, 640)
san_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelValues'),
    dict(type='HideUnseenClasses'),
    dict(type='RandomChoiceResize', scales=[int(640 * x * 0.1) for x in range(5, 16)],
         resize_type='ResizeShortestEdge', max_size=2560),
    dict(type='RandomCrop', crop_size=san_crop_size, cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]

# SCAN, CLIP ViT-B/16 (yongliu20/SCAN@097fbbd configs/scan_vitB.yaml + scan/config.py defaults;
# mmseg 1.2.2 .mim/configs/mask2former/mask2former_swin-b-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py
# for the same Mask2Former in mmseg / mmdet modules). Official numbers, by file:
# - backbone (SWIN.*): Swin-B 384, IN-22k (swin_base_patch4_window12_384_22k), embed 128, depths
#   [2, 2, 18, 2], heads [4, 8, 16, 32], window 12, drop path 0.3, patch norm, no APE.
# - pixel decoder (SEM_SEG_HEAD.*): MSDeformAttnPixelDecoder on res3..res5, 6 encoder layers, conv /
#   mask dims 256, GN (32 groups), 8 heads, 4 points, FFN 1024, dropout 0 (MASK_FORMER.DROPOUT).
# - transformer decoder (MASK_FORMER.*): 9 masked-attention layers (DEC_LAYERS 10 = 9 + the
#   learnable queries' prediction), hidden 256, 8 heads, FFN 2048, 100 queries, post-norm; class head
#   MLP 256 -> 1024 -> 512 (EMBED_HIDDEN_DIM 1024, EMBEDDING_DIM 512, EMBED_LAYERS 2).
# - CLIP (ClipAdapter): open_clip ViT-B-16 'datacomp_xl_s13b_b90k', frozen; the original copy sees
#   the image at 224 (nearest); SELECT_ORI_CLIP_ID [6, 9, 12], FREQUENCY_SIGMA [9, 7, 3], SCAN_DIM 512,
#   CA(num=5), TransformerEncoder(5 layers, 8 heads), learnable_weight 0.1.
# - test (CLIP_ADAPTER.*): vild templates, MASK_FILL mean, MASK_THR 0.4, CLIP_ENSEMBLE_WEIGHT 0.7,
#   REPLACE_RATIO 0.15, REPLACE_LAYER [1, 3, 5] (the yaml's values; its comments list 0.05-0.1 per
#   dataset for COCO-trained models, none for remote sensing).
# - CS-CLIP: only the authors' checkpoint exists (tools/replace_clip.py). cs_clip=None: the
#   ensemble classifies the masked crops with the ORIGINAL CLIP instead (the suite's default; the
#   results row says "CS-CLIP: no (original CLIP)"); model.cs_clip=dict(pretrained='CS_CLIP.pt' or
#   'SCAN.pth') loads it (baselines/scan/checkpoint.py).
# - losses (MASK_FORMER.*): class CE 2 with no-object 0.1 (class_weight filled from the training
#   vocabulary), mask BCE 5, dice 5, 12,544 points (oversample 3, importance 0.75), Hungarian
#   matching with the same costs, deep supervision on every layer.
# Open-vocabulary protocol: training on the seen names, test on all; hidden unseen pixels become
# the ignore value in the set-prediction targets (aeroseg/models/mask_classification.py).
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=None, std=None,  # SCANSegmentor normalises (ImageNet / CLIP)
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(640, 640))  # SIZE_DIVISIBILITY 640 (mapper)
scan_embed_dims = 512
model = dict(
    type='SCANSegmentor',
    data_preprocessor=data_preprocessor,
    clip=dict(model_name='ViT-B-16', pretrained='datacomp_xl_s13b_b90k'),
    cs_clip=None,  # dict(pretrained=<CS_CLIP.pt | SCAN.pth>) for the authors' CS-CLIP
    backbone_checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/'
                        'swin_base_patch4_window12_384_22k_20220317-e5c09f74.pth',
    si_layers=(6, 9, 12), si_sigmas=(9, 7, 3), scan_dim=scan_embed_dims, num_ca_layers=5,
    num_encoder_layers=5, num_heads=8, cls_weight_init=0.1, templates='vild',
    clip_ensemble=True, clip_ensemble_weight=0.7, mask_thr=0.4, replace_ratio=0.15,
    replace_layers=(1, 3, 5), shift_seed=0, mask_fill='mean',
    size_divisor=32, no_object_weight=0.1,
    backbone=dict(
        type='SwinTransformer', pretrain_img_size=384, embed_dims=128, depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32], window_size=12, mlp_ratio=4, qkv_bias=True, qk_scale=None,
        drop_rate=0., attn_drop_rate=0., drop_path_rate=0.3, patch_norm=True,
        out_indices=(0, 1, 2, 3), with_cp=False, frozen_stages=-1),
    decode_head=dict(
        type='SCANMask2FormerHead',
        embed_dims=scan_embed_dims, embed_hidden_dim=1024, embed_layers=2,
        in_channels=[128, 256, 512, 1024], strides=[4, 8, 16, 32], feat_channels=256,
        out_channels=256, num_classes=None,  # = number of training names (SCANSegmentor)
        num_queries=100, num_transformer_feat_level=3, align_corners=False,
        pixel_decoder=dict(
            type='mmdet.MSDeformAttnPixelDecoder', num_outs=3,
            norm_cfg=dict(type='GN', num_groups=32), act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=6,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=256, num_heads=8, num_levels=3, num_points=4,
                                       im2col_step=64, dropout=0.0, batch_first=True,
                                       norm_cfg=None, init_cfg=None),
                    ffn_cfg=dict(embed_dims=256, feedforward_channels=1024, num_fcs=2,
                                 ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
                init_cfg=None),
            positional_encoding=dict(num_feats=128, normalize=True),
            init_cfg=None),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=128, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True, num_layers=9,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=256, num_heads=8, attn_drop=0.0, proj_drop=0.0,
                                   dropout_layer=None, batch_first=True),
                cross_attn_cfg=dict(embed_dims=256, num_heads=8, attn_drop=0.0, proj_drop=0.0,
                                    dropout_layer=None, batch_first=True),
                ffn_cfg=dict(embed_dims=256, feedforward_channels=2048, num_fcs=2,
                             act_cfg=dict(type='ReLU', inplace=True), ffn_drop=0.0,
                             dropout_layer=None, add_identity=True)),
            init_cfg=None),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                      reduction='mean', class_weight=None),  # [1.0] * num_seen + [0.1]
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                       loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                       naive_dice=True, eps=1.0, loss_weight=5.0),
        train_cfg=dict(
            num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75,
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.ClassificationCost', weight=2.0),
                    dict(type='mmdet.CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                    dict(type='mmdet.DiceCost', weight=5.0, pred_act=True, eps=1.0)]),
            sampler=dict(type='mmdet.MaskPseudoSampler'))),
    vocabulary=dict(split='isaid', train='seen', test='all'),  # set per dataset
    test_cfg=dict(mode='whole'))  # whole image (MIN_SIZE_TEST 640: the dataset base's pipeline)

# Training augmentation (scan_vitB.yaml INPUT): ResizeShortestEdge choice of 640 x 0.5..2.0
# (320..1280, MAX_SIZE_TRAIN 2560) -> random 640 crop (SINGLE_CATEGORY_MAX_AREA 1.0 = none) -> SSD
# colour augmentation (COLOR_AUG_SSD) -> flip; the unseen classes hidden as for every method.
scan_crop_size = (640, 640)
scan_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelValues'),
    dict(type='HideUnseenClasses'),
    dict(type='RandomChoiceResize', scales=[int(x * 0.1 * 640) for x in range(5, 21)],
         resize_type='ResizeShortestEdge', max_size=2560),
    dict(type='RandomCrop', crop_size=scan_crop_size, cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]

# The mini-world overlay applied by `aeroseg.config.load_config(..., scale='mini')`
# (benchmarks.run --scale mini, ./run_all.sh without data). Same model classes and code paths as
# the full configs, at small widths; sizes scaled from the full configs by 128 / 384.

# Tiny CLIP pretrained on captioned mini-world scenes (aeroseg/assets/mini/README.md):
# open_clip ViT, 128 px, patch 8 -> 16 x 16 tokens, width 128, 4 blocks; taps after blocks 1 and 2
# (CAT-Seg taps blocks 3 and 7 of 12: the same depth fractions).
clip = dict(type='CLIPDenseBackbone', model_name='aeroseg-mini-ViT-8',
            model_config_dir='aeroseg/assets/mini',
            pretrained='aeroseg/assets/mini/aeroseg-mini-ViT-8.pt',
            image_size=128, tap_indices=(1, 2))
# Tiny SimFeatUp (tools/train_tiny_simfeatup.py, aeroseg/assets/mini/README.md): SegEarth-OV's
# jbu_one trained on this CLIP's SegEarth features with FeatUp's multi-view reconstruction;
# 3 x2 stages (8-px patches -> pixels; official 4 for 16-px patches). SegEarthOV.mini_scale puts it
# in place of the full config's upsampler; feature_up is the mini default (toggle with
# --cfg-options model.feature_up=True/False). Off, by measurement (docs/measurements.md
# "SegEarth-OV mini: the tiny SimFeatUp"): 150 CPU steps do not reach a useful upsampler (held-out
# reconstruction still worse than bicubic) and it lowers mIoU (with / without: iSAID 13.93 / 17.42,
# DLRSD 8.18 / 8.19, OEM 32.34 / 34.72). The file stays for the code path (tests load it).
simfeatup = dict(model_name='jbu_one', checkpoint='aeroseg/assets/mini/simfeatup_jbu_one_mini.ckpt',
                 num_stages=3, feature_up=False)
# Tiny SAM (segment_anything ImageEncoderViT, tools/make_tiny_sam.py): 256 px, patch 16 -> 16 x 16,
# width 128, 6 blocks, global attention in blocks 1, 3, 5; taps after blocks 2 and 4 (1-based; SAM-L:
# 8 and 16 of 24) and the neck (64 ch).
sam = dict(type='SAMGuidanceEncoder', variant='custom', checkpoint='aeroseg/assets/mini/sam_vit_tiny_mini.pth',
           embed_dim=128, depth=6, num_heads=4, global_attn_indexes=(1, 3, 5), window_size=4,
           img_size=256, out_chans=64, inter_indices=(1, 3), last='neck', frozen=True)
# Tiny SAM 2 (same Hiera / FpnNeck classes, random weights: no tiny SAM 2 is pretrained).
sam2 = dict(type='SAM2GuidanceEncoder', version='sam2.1', checkpoint=None, img_size=256, d_model=64,
            trunk=dict(embed_dim=16, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
                       window_spec=(8, 4, 4, 2), window_pos_embed_bkg_spatial_size=(4, 4)))
# Head at small widths (full: hidden 128, window 12 on 24 x 24; here window 8 on 16 x 16).
head = dict(hidden_dim=32, num_heads=4, num_layers=2, window_size=8, pooling_size=(2, 2),
            text_guidance_proj_dim=32, appearance_guidance_proj_dim=32, decoder_dims=(32, 16),
            decoder_guidance_proj_dims=(16, 8), pad_len=32)
back_projection = dict(hidden_dim=128)
# OVRS sliding window scaled by 128 / 384: resize 640 -> 208, crop 384 -> 128, stride 256 -> 80.
slide = dict(resize=208, crop_size=128, stride=80)  # model.test_cfg of slide-mode configs
# data: mini images are 128 x 128
crop = 128
train_short = 128
test_short = 128
max_side = 512
batch_size = 4
num_workers = 0
# schedule (CPU minutes): iterations per dataset, same recipe otherwise except the base lr.
# The full schedules run 5k-15k iterations at 2e-4; the mini one is ~50x shorter, and at 2e-4 the
# randomly initialised head has not yet learnt to pass the cost volume through after 200
# iterations (CAT-Seg, mini iSAID, pretrained tiny CLIP: s/u-mIoU 8.2 / 18.7 at 2e-4 vs
# 21.9 / 37.4 at 1e-3; benchmarks/ov_transfer.py pilots). CLIP keeps its x0.01 multiplier.
iters = dict(isaid=200, dlrsd=200, oem=200, default=200)
lr = 1e-3
checkpoint_interval = 100
log_interval = 20
# CLIP decoder guidance (CAT-Seg / OVRS / Table 3 Baseline): transposed-conv widths (full: 256, 128)
clip_decoder_guidance_dims = (32, 16)
# SED: a tiny open_clip ConvNeXt CLIP (tools/train_tiny_clip.py --tower convnext; timm ConvNeXt with
# ConvNeXt-B's block and width ratios, 32/64/128/256 ch, aeroseg/assets/mini/README.md) at 256 px:
# the 128-px mini image upsampled 2x as SED upsamples to 768 a CLIP pretrained at 320 (2.4x) ->
# an 8 x 8 cost map at 1/32 (full: 24 x 24) and logits at 64 x 64. 512 px would give the ViT's
# 16 x 16 grid but 4x the CPU per step (the decoder runs per class at 1/4 of the input).
convnext_clip = dict(type='ConvNeXtCLIPBackbone', model_name='aeroseg-mini-convnext',
                     model_config_dir='aeroseg/assets/mini',
                     pretrained='aeroseg/assets/mini/aeroseg-mini-convnext.pt', image_size=256)
# SED head at small widths, upstream's ratios (full: hidden 128, dims 64/32/16, guidance = 1/4 of
# each stage's input width 32/16/8); DoubleConv's GroupNorm(C // 16) needs dims >= 16.
sed_head = dict(hidden_dim=32, decoder_dims=(32, 16, 16), decoder_guidance_proj_dims=(8, 8, 4))

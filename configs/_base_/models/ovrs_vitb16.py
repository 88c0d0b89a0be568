# OVRS (caoql98/OVRS, a CAT-Seg fork): CAT-Seg ViT-B/16 plus
#  * rotations 0/90/180/270 on the CLIP input, dense maps rotated back, 4 x P cost channels
#    through the 7 x 7 correlation conv;
#  * the attention-aware upsampling decoder (channel + spatial attention on class-averaged
#    features, g' = ca*g + sa*g + g, two 3x3 conv + GroupNorm + ReLU), dims [64, 32];
#  * its evaluation: resize to 640, 384 crops at stride 256 plus one global view, sigmoid, mean.
_base_ = ['./catseg_vitb16.py']
model = dict(
    clip=dict(rotations=(0, 90, 180, 270)),
    head=dict(decoder_type='ovrs'),
    # caoql98/OVRS eval: resize to 640, 384 windows at stride 256, plus the global view
    test_cfg=dict(mode='slide', resize=640, crop_size=384, stride=256, global_view=True))

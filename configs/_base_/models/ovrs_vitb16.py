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
    test_mode='slide', slide_resize=640, slide_crop=384, slide_stride=256)

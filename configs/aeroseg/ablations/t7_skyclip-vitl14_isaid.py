# Table 7: SkyCLIP ViT-L/14 (SkyCLIP-50 ViT-L-14 checkpoint from the SkyScript release; open_clip
# format, continued from OpenAI CLIP, hence QuickGELU).
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(clip=dict(model_name='ViT-L-14-quickgelu',
                       pretrained='checkpoints/clip/SkyCLIP_ViT_L14_top50pct.pt', image_size=336,
                       tap_indices=(7, 15)))

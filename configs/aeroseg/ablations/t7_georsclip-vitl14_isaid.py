# Table 7: GeoRSCLIP ViT-L/14 (RS5M_ViT-L-14.pt from the GeoRSCLIP release; an open_clip
# ViT-L-14 state dict fine-tuned from OpenAI CLIP, hence QuickGELU).
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(clip=dict(model_name='ViT-L-14-quickgelu',
                       pretrained='checkpoints/clip/RS5M_ViT-L-14.pt', image_size=336,
                       tap_indices=(7, 15)))

# Table 7 (supplementary): CLIP ViT-L/14 at 336 (CAT-Seg's vitl_336.yaml: 24 x 24 tokens,
# decoder guidance from blocks 7 and 15).
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(clip=dict(model_name='ViT-L-14', pretrained='openai', image_size=336,
                       tap_indices=(7, 15)))

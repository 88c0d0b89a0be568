# CAT-Seg, CLIP ViT-L/14@336 (cvlab-kaist/CAT-Seg@6d3a188, configs/vitl_336.yaml): CLIP input 336
# (24 x 24 tokens at patch 14), decoder guidance from CLIP blocks 7 and 15, text / appearance
# guidance 768 wide (filled in from the encoder); everything else as ViT-B/16.
_base_ = ['./catseg_vitb16.py']
model = dict(clip=dict(model_name='ViT-L-14', pretrained='openai', image_size=336,
                       tap_indices=(7, 15)))

# Table 6: SAM ViT-H guidance (official sam_vit_h_4b8939.pth). The paper names layers 8 / 16
# for ViT-L only; for the 32-block ViT-H we keep the same depth fractions (blocks 11 and 22).
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(guidance=dict(variant='vit_h', checkpoint='checkpoints/sam/sam_vit_h_4b8939.pth',
                            inter_indices=(10, 21)))

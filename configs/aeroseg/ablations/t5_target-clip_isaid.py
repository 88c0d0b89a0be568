# Table 5: back-projection reconstructs CLIP dense features (unrotated pass).
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(back_projection=dict(target='clip'))

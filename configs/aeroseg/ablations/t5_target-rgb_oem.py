# Table 5: back-projection reconstructs RGB (each token's pixels, per-patch standardised).
_base_ = ['../aeroseg_vitb16_oem.py']
model = dict(back_projection=dict(target='rgb'))

# Table 5: back-projection reconstructs RGB (each token's pixels, per-patch standardised).
_base_ = ['../aeroseg_vitb16_dlrsd.py']
model = dict(back_projection=dict(target='rgb'))

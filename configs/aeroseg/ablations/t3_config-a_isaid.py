# Table 3 Config-A: SAM guidance, one generic prompt, BCE only.
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(back_projection=None, templates='generic')

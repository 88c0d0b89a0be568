# Table 3 Config-B: SAM guidance, one generic prompt, BCE + back-projection loss.
_base_ = ['../aeroseg_vitb16_dlrsd.py']
model = dict(templates='generic')

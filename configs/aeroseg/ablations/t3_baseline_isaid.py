# Table 3 Baseline: no guidance encoder (CLIP features guide spatial refinement and the
# decoder, as CAT-Seg/OVRS), one generic prompt, BCE only.
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(guidance=None, back_projection=None, templates='generic')

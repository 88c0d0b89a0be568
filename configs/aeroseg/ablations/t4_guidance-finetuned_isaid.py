# Table 4: the guidance encoder fine-tuned with the rest. Its lr is not legible in our copy of
# the paper; we use CLIP's (2e-4 x 0.01 = 2e-6, the 'guidance.' lr_mult in
# _base_/schedules/catseg_adamw.py).
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(guidance=dict(frozen=False))

# Table 6: SAM 2.1 Hiera-B+ guidance (official sam2.1_hiera_base_plus.pt).
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(guidance=dict(_delete_=True, type='SAM2GuidanceEncoder', version='sam2.1',
                            checkpoint='checkpoints/sam2/sam2.1_hiera_base_plus.pt', frozen=True))

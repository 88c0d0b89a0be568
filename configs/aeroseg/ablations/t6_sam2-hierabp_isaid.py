# Table 6: SAM 2 Hiera-B+ guidance (official sam2_hiera_base_plus.pt) through the sam2 package.
_base_ = ['../aeroseg_vitb16_isaid.py']
model = dict(guidance=dict(_delete_=True, type='SAM2GuidanceEncoder', version='sam2',
                            checkpoint='checkpoints/sam2/sam2_hiera_base_plus.pt', frozen=True))

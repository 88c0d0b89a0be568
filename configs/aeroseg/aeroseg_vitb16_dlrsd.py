# AerOSeg (CLIP ViT-B/16 + SAM ViT-L), Table 2 / Config-C on DLRSD; paper §4.2: 10k / 5k / 15k iterations for iSAID / DLRSD / OEM.
_base_ = [
    '../_base_/models/aeroseg_vitb16.py', '../_base_/datasets/dlrsd.py',
    '../_base_/schedules/catseg_5k.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='dlrsd', train='seen', test='all'))

# AerOSeg (CLIP ViT-B/16 + SAM ViT-L), Table 2 / Config-C on iSAID; paper §4.2: 10k / 5k / 15k iterations for iSAID / DLRSD / OEM.
_base_ = [
    '../_base_/models/aeroseg_vitb16.py', '../_base_/datasets/isaid.py',
    '../_base_/schedules/catseg_10k.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='isaid', train='seen', test='all'))

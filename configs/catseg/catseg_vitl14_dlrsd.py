# CAT-Seg ViT-L/14@336 on dlrsd; schedule as AerOSeg's per dataset (paper §4.2).
_base_ = [
    '../_base_/models/catseg_vitl14.py', '../_base_/datasets/dlrsd.py',
    '../_base_/schedules/catseg_5k.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='dlrsd', train='seen', test='all'))

# CAT-Seg ViT-L/14@336 on isaid; schedule as AerOSeg's per dataset (paper §4.2).
_base_ = [
    '../_base_/models/catseg_vitl14.py', '../_base_/datasets/isaid.py',
    '../_base_/schedules/catseg_10k.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='isaid', train='seen', test='all'))

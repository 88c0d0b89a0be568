# CAT-Seg ViT-B/16 on iSAID; the schedule equals AerOSeg's per dataset (paper §4.2) so Table 2 compares like with like;
# CAT-Seg's official 80k: --cfg-options via _base_/schedules/catseg_80k.py (see README).
_base_ = [
    '../_base_/models/catseg_vitb16.py', '../_base_/datasets/isaid.py',
    '../_base_/schedules/catseg_10k.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='isaid', train='seen', test='all'))

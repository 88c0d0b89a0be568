# SCAN ViT-B/16 tested on Vaihingen, a cross-dataset target (Table 9; test only): the model trained on
# iSAID / DLRSD / OEM (its Table 2 checkpoint) with Vaihingen's preprocessing and all its class names.
_base_ = ['../_base_/models/scan_vitb16.py', '../_base_/datasets/vaihingen.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='vaihingen', train='all', test='all'))  # no training here
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

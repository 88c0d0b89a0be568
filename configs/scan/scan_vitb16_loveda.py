# SCAN ViT-B/16 tested on LoveDA, a cross-dataset target (Table 9; test only): the model trained on
# iSAID / DLRSD / OEM (its Table 2 checkpoint) with LoveDA's preprocessing and all its class names.
_base_ = ['../_base_/models/scan_vitb16.py', '../_base_/datasets/loveda.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='loveda', train='all', test='all'))  # no training here
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

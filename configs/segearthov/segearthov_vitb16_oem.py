# SegEarth-OV ViT-B/16 on OpenEarthMap: official configs/cfg_openearthmap.py prob_thd 0.1; 'background' as for iSAID.
_base_ = ['../_base_/datasets/oem.py', '../_base_/models/segearthov_vitb16.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='oem', train='all', test='all'),
             test_cfg=dict(prob_thd=0.1, bg_idx=None, background_queries=('background',)))
train_dataloader = None  # training-free
val_dataloader = dict(dataset=dict(pipeline={{_base_.segearthov_test_pipeline}}))
test_dataloader = val_dataloader

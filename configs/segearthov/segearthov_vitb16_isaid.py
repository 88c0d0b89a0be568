# SegEarth-OV ViT-B/16 on iSAID: official configs/cfg_iSAID.py prob_thd 0.4; its class file starts with 'background'
# (no class of ours: label 255), kept as a background query whose pixels go to 255.
_base_ = ['../_base_/datasets/isaid.py', '../_base_/models/segearthov_vitb16.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='isaid', train='all', test='all'),
             test_cfg=dict(prob_thd=0.4, bg_idx=None, background_queries=('background',)))
train_dataloader = None  # training-free
val_dataloader = dict(dataset=dict(pipeline={{_base_.segearthov_test_pipeline}}))
test_dataloader = val_dataloader

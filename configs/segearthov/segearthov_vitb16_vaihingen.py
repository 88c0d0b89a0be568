# SegEarth-OV ViT-B/16 on Vaihingen (cross-dataset target): official configs/cfg_vaihingen.py prob_thd 0.1, bg_idx 5.
_base_ = ['../_base_/datasets/vaihingen.py', '../_base_/models/segearthov_vitb16.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='vaihingen', train='all', test='all'),
             test_cfg=dict(prob_thd=0.1, bg_idx=5, background_queries=()))
val_dataloader = dict(dataset=dict(pipeline={{_base_.segearthov_test_pipeline}}))
test_dataloader = val_dataloader

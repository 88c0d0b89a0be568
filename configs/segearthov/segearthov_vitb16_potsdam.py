# SegEarth-OV ViT-B/16 on Potsdam (cross-dataset target): official configs/cfg_potsdam.py prob_thd 0.1, bg_idx 5 (clutter).
_base_ = ['../_base_/datasets/potsdam.py', '../_base_/models/segearthov_vitb16.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='potsdam', train='all', test='all'),
             test_cfg=dict(prob_thd=0.1, bg_idx=5, background_queries=()))
val_dataloader = dict(dataset=dict(pipeline={{_base_.segearthov_test_pipeline}}))
test_dataloader = val_dataloader

# SegEarth-OV ViT-B/16 on LoveDA (cross-dataset target): official configs/cfg_loveda.py prob_thd 0.3, bg_idx 0 (background).
_base_ = ['../_base_/datasets/loveda.py', '../_base_/models/segearthov_vitb16.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='loveda', train='all', test='all'),
             test_cfg=dict(prob_thd=0.3, bg_idx=0, background_queries=()))
val_dataloader = dict(dataset=dict(pipeline={{_base_.segearthov_test_pipeline}}))
test_dataloader = val_dataloader

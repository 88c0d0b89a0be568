# SegEarth-OV ViT-B/16 on DLRSD: no official config; OUR choice: no threshold (every DLRSD pixel is one of the 17
# classes, so a thresholded pixel could only be a miss); set model.test_cfg.prob_thd to change it.
_base_ = ['../_base_/datasets/dlrsd.py', '../_base_/models/segearthov_vitb16.py',
          '../_base_/default_runtime.py']
model = dict(vocabulary=dict(split='dlrsd', train='all', test='all'),
             test_cfg=dict(prob_thd=0.0, bg_idx=None, background_queries=()))
train_dataloader = None  # training-free
val_dataloader = dict(dataset=dict(pipeline={{_base_.segearthov_test_pipeline}}))
test_dataloader = val_dataloader

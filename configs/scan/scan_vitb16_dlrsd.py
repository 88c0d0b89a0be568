# SCAN ViT-B/16 on dlrsd with SCAN's "default configuration" (paper §4.2: each baseline trained with
# its public code and default settings): the official recipe (_base_/schedules/scan_adamw.py:
# batch 32 x 120k, AdamW 6e-5, 1.5k warm-up + poly) and training augmentation (640 crops,
# multi-scale 320..1280), on the suite's split and metric. CS-CLIP: none (the authors' checkpoint
# only): the ensemble uses the original CLIP; set model.cs_clip=dict(pretrained=<CS_CLIP.pt>) to
# use theirs (configs/_base_/models/scan_vitb16.py).
_base_ = [
    '../_base_/models/scan_vitb16.py', '../_base_/datasets/dlrsd.py',
    '../_base_/schedules/scan_adamw.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='dlrsd', train='seen', test='all'))
train_dataloader = dict(batch_size=32,  # IMS_PER_BATCH 32
                        dataset=dict(pipeline={{_base_.scan_train_pipeline}}))

# SAN ViT-B/16 on isaid with SAN's "default configuration" (paper §4.2: each baseline trained with
# its public code and default settings): the official recipe (_base_/schedules/san_adamw.py:
# batch 32 x 60k, AdamW 1e-4, poly) and training augmentation (640 crops), on the suite's split and
# metric. AerOSeg's per-dataset iterations instead: replace the schedule base by
# san_10k.py / san_5k.py / san_15k.py (iSAID / DLRSD / OEM); mixed precision on a GPU: san_amp.py.
_base_ = [
    '../_base_/models/san_vitb16.py', '../_base_/datasets/isaid.py',
    '../_base_/schedules/san_adamw.py', '../_base_/default_runtime.py'
]
model = dict(vocabulary=dict(split='isaid', train='seen', test='all'))
train_dataloader = dict(batch_size=32,  # IMS_PER_BATCH 32
                        dataset=dict(pipeline={{_base_.san_train_pipeline}}))

# Shared training side of the datasets models are trained on (isaid, dlrsd, oem): the evaluation
# side of _open_vocab.py plus the training pipeline and dataloader. A dataset file overrides
#   train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
# and the val / test dataloaders as _open_vocab.py says.
_base_ = ['./_open_vocab.py']

# Open-vocabulary protocol (inductive zero-shot): the model is trained with the names of the
# seen classes only and unseen pixels are ignored (HideUnseenClasses below: the unseen ids come
# from each sample's `ov_unseen`, set by OVSegDataset from the dataset's metainfo); it is tested
# with the names of all classes. Model configs read the vocabularies through
# aeroseg.datasets.resolve_vocabulary(ov_protocol['dataset'], 'seen' | 'all' | [ids]).

# Training augmentation of CAT-Seg / OVRS (configs/config.yaml + MaskFormerSemanticDatasetMapper):
# ResizeShortestEdge(384, max 1333 = detectron2 default) -> random 384 crop (category-area
# constraint 1.0 = none) -> SSD colour augmentation -> horizontal flip. The mapper's padding to
# 384 (SIZE_DIVISIBILITY) is the model's data_preprocessor (size=crop_size, seg_pad_val=255).
crop_size = (384, 384)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelValues'),
    dict(type='HideUnseenClasses'),
    dict(type='Resize', scale=(1333, 384), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,  # paper: batch 4
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))

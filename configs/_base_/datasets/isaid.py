# iSAID, iSAID-5i processing (256 x 256 crops): 15 classes, 9 seen / 6 unseen.
# Classes, ids and the split come from aeroseg/datasets/splits.py (never listed here).
# Data: `python -m aeroseg.datasets.prepare isaid --raw <download> --out data/isaid`.
# Types are registered by `import aeroseg` (custom_imports in the runtime base).
dataset_type = 'ISAIDOVDataset'
data_root = 'data/isaid'

# Open-vocabulary protocol (inductive zero-shot): the model is trained with the names of the
# seen classes only and unseen pixels are ignored (HideUnseenClasses below); it is tested with
# the names of all classes. Model configs read the vocabularies through
# aeroseg.datasets.resolve_vocabulary(ov_protocol['dataset'], 'seen' | 'all' | [ids]).
ov_protocol = dict(dataset='isaid', train_vocabulary='seen', test_vocabulary='all')

# Training augmentation of CAT-Seg / OVRS (configs/config.yaml + MaskFormerSemanticDatasetMapper):
# ResizeShortestEdge(384, max 1333 = detectron2 default) -> random 384 crop (category-area
# constraint 1.0 = none) -> SSD colour augmentation -> horizontal flip. The mapper's padding to
# 384 (SIZE_DIVISIBILITY) is the model's data_preprocessor (size=crop_size, seg_pad_val=255).
crop_size = (384, 384)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelValues', split='isaid'),
    dict(type='HideUnseenClasses', split='isaid'),
    dict(type='Resize', scale=(1333, 384), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
# Test: ResizeShortestEdge(640, max 2560) of CAT-Seg / OVRS (MIN/MAX_SIZE_TEST); the label is
# loaded after the resize, so it stays at the original size (mmseg convention).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelValues', split='isaid'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,  # paper: batch 4
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# seen / unseen ids are read from the dataset's metainfo (splits.py)
val_evaluator = dict(type='OpenVocabIoUMetric')
test_evaluator = val_evaluator

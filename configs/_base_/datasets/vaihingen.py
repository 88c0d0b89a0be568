# ISPRS Vaihingen (cross-dataset zero-shot target; mmseg 512 x 512 crops, IRRG, 6 classes,
# all unseen).
# Test only: models trained on another dataset are evaluated here with all class names.
# Layout and labels are mmsegmentation's (its tools/dataset_converters/vaihingen.py); the dataset
# class reads them with reduce_zero_label=True (raw 0 -> 255, v -> v - 1); classes come from
# aeroseg/datasets/splits.py.
# Types are registered by `import aeroseg` (custom_imports in the runtime base).
dataset_type = 'VaihingenOVDataset'
data_root = 'data/vaihingen'
ov_protocol = dict(dataset='vaihingen', train_vocabulary=None, test_vocabulary='all')

# Test pipeline of CAT-Seg / OVRS: ResizeShortestEdge(640, max 2560); label at original size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations'),  # reduce_zero_label comes from the dataset (True)
    dict(type='CheckLabelValues', split='vaihingen'),
    dict(type='PackSegInputs'),
]
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
val_evaluator = dict(type='OpenVocabIoUMetric')
test_evaluator = val_evaluator

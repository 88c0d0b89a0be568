# Shared evaluation side of every open-vocabulary dataset config (isaid, dlrsd, oem, loveda,
# potsdam, vaihingen): test pipeline, val / test dataloaders, evaluator. A dataset file inherits
# it (or _open_vocab_train.py, which adds the training side) and overrides only its dataset
# type, data_root and ov_protocol:
#   val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
#   test_dataloader = val_dataloader
# (mmengine merges dicts key by key, so the rest below is kept.) No transform names a split:
# CheckLabelValues reads K from each sample's `ov_num_classes`, which OVSegDataset
# (aeroseg/datasets/base.py) sets from the dataset's metainfo (splits.py).
# Types are registered by `import aeroseg` (custom_imports in the runtime base).

# Test: ResizeShortestEdge(640, max 2560) of CAT-Seg / OVRS (MIN/MAX_SIZE_TEST); the label is
# loaded after the resize, so it stays at the original size (mmseg convention).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations'),  # reduce_zero_label comes from the dataset class
    dict(type='CheckLabelValues'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# seen / unseen ids are read from the dataset's metainfo (splits.py)
val_evaluator = dict(type='OpenVocabIoUMetric')
test_evaluator = val_evaluator

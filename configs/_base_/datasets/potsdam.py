# ISPRS Potsdam (cross-dataset zero-shot target; mmseg 512 x 512 crops, 6 classes, all unseen).
# Test only: models trained on another dataset are evaluated here with all class names.
# Layout and labels are mmsegmentation's (its tools/dataset_converters/potsdam.py); the dataset
# class reads them with reduce_zero_label=True (raw 0 -> 255, v -> v - 1); classes come from
# aeroseg/datasets/splits.py.
# Pipelines, dataloaders and evaluator: _open_vocab.py (no class lists, no split names).
_base_ = ['./_open_vocab.py']

dataset_type = 'PotsdamOVDataset'
data_root = 'data/potsdam'
ov_protocol = dict(dataset='potsdam', train_vocabulary=None, test_vocabulary='all')

val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader

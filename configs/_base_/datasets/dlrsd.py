# DLRSD (UC Merced 256 x 256 images + DLRSD labels): 17 classes, 10 seen / 7 unseen.
# Classes, ids and the split come from aeroseg/datasets/splits.py (never listed here).
# Data: `python -m aeroseg.datasets.prepare dlrsd --raw <download> --out data/dlrsd`.
# Pipelines, dataloaders and evaluator: _open_vocab_train.py (no class lists, no split names).
_base_ = ['./_open_vocab_train.py']

dataset_type = 'DLRSDDataset'
data_root = 'data/dlrsd'
ov_protocol = dict(dataset='dlrsd', train_vocabulary='seen', test_vocabulary='all')

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader

# iSAID, iSAID-5i processing (256 x 256 crops): 15 classes, 9 seen / 6 unseen.
# Classes, ids and the split come from aeroseg/datasets/splits.py (never listed here).
# Data: `python -m aeroseg.datasets.prepare isaid --raw <download> --out data/isaid`.
# Pipelines, dataloaders and evaluator: _open_vocab_train.py (no class lists, no split names).
_base_ = ['./_open_vocab_train.py']

dataset_type = 'ISAIDOVDataset'
data_root = 'data/isaid'
ov_protocol = dict(dataset='isaid', train_vocabulary='seen', test_vocabulary='all')

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader

# OpenEarthMap without xBD (256 x 256 crops): 8 classes, 4 seen / 4 unseen.
# Classes, ids and the split come from aeroseg/datasets/splits.py (never listed here).
# Data: `python -m aeroseg.datasets.prepare oem --raw <OpenEarthMap_wo_xBD> --out data/oem`.
# Pipelines, dataloaders and evaluator: _open_vocab_train.py (no class lists, no split names).
_base_ = ['./_open_vocab_train.py']

dataset_type = 'OpenEarthMapDataset'
data_root = 'data/oem'
ov_protocol = dict(dataset='oem', train_vocabulary='seen', test_vocabulary='all')

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader

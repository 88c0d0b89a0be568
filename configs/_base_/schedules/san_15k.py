# 15k iterations of SAN's recipe: AerOSeg's schedule for this dataset (paper §4.2: 10k iSAID,
# 5k DLRSD, 15k OEM), for comparing SAN with AerOSeg at equal iterations; SAN's own is 60k.
_base_ = ['./san_adamw.py']
max_iters = 15000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)

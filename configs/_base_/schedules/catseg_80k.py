# 80k iterations of CAT-Seg's recipe (AerOSeg paper §4.2: 10k iSAID, 5k DLRSD, 15k OEM;
# 80k = CAT-Seg's official MAX_ITER).
_base_ = ['./catseg_adamw.py']
max_iters = 80000
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=0, end=max_iters,
         T_max=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)

# SAN's official mixed precision (SOLVER.AMP.ENABLED True): GPU only (AmpOptimWrapper asserts CUDA).
_base_ = ['./san_adamw.py']
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')

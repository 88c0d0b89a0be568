# Runtime shared by every config. Importing `aeroseg` registers the suite's models, datasets,
# transforms, metric and runner; `baselines` registers the baselines.
default_scope = 'mmseg'
custom_imports = dict(imports=['aeroseg', 'baselines'], allow_failed_imports=False)
# AerosegRunner = mmengine's Runner whose resume / load of the run's OWN checkpoints works under
# torch >= 2.6 weights_only loading (aeroseg/utils/resume.py); outside weights stay weights_only.
runner_type = 'AerosegRunner'
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
tta_model = None

# ST++ A2 (80.97%): A1 plus UniformAugment, 400 epochs.
_base_ = ['./resnet50_stpp-a1_in1k.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=_base_.train_crop),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmst.UniformAugment', num_ops=2, prob=0.5),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(
        type='Lighting',
        eigval=_base_.EIGVAL,
        eigvec=_base_.EIGVEC,
        alphastd=0.1,
        to_rgb=False,
    ),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
max_epochs = 400
param_scheduler = dict(T_max=max_epochs)
train_cfg = dict(max_epochs=max_epochs)

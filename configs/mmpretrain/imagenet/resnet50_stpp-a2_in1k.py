# ST++ A2 (80.97%): A1 plus UniformAugment after ColorJitter (two
# operations, each applied with probability 0.5, as the authors'
# TrivialAugment-library UniAugment; mmst.UniformAugment), 400 epochs.
_base_ = ['./resnet50_stpp-a1_in1k.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        _scope_='mmpretrain', type='RandomResizedCrop', scale=_base_.train_crop
    ),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        _scope_='mmpretrain',
        type='ColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
    ),
    dict(type='mmst.UniformAugment', num_ops=2, prob=0.5),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
max_epochs = 400
param_scheduler = dict(T_max=max_epochs)
train_cfg = dict(max_epochs=max_epochs)

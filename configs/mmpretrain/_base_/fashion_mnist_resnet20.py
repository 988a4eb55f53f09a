# Fashion-MNIST (Debian's dataset-fashion-mnist, prepared into
# data/fashion_mnist by `bash tools/setup_env.sh --data`) with a CIFAR-style
# ResNet-20 (3 stages x 3 basic blocks, widths 16/32/64). The pilot of
# docs/method.md used 3 x 5 blocks; set model.backbone.depth=32 for that
# (about 1.6x the CPU time). Conventional training; ST configs wrap this model.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../../_base_/st_runtime.py',
]

data_root = 'data/fashion_mnist'
# `_scope_='mmpretrain'` on mmpretrain's components: a user config that
# bases on this file by scope (`mmst::mmpretrain/...`) would otherwise build
# them from mmst's registries (MMEngine scopes a scoped base's typed dicts)
model = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=10,
        # published pixel statistics of Fashion-MNIST (0.2860, 0.3530)
        mean=[72.94],
        std=[90.02],
    ),
    backbone=dict(
        type='mmst.ElasticResNet_CIFAR',
        depth=20,
        in_channels=1,
        stem_channels=16,
        base_channels=16,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2,),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ),
)

train_pipeline = [
    dict(_scope_='mmpretrain', type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
test_pipeline = [dict(_scope_='mmpretrain', type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(
        _scope_='mmpretrain',
        type='FashionMNIST',
        data_root=data_root,
        split='train',
        download=False,
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    dataset=dict(
        _scope_='mmpretrain',
        type='FashionMNIST',
        data_root=data_root,
        split='test',
        # mmpretrain 1.2's MNIST reads the training files unless test_mode
        test_mode=True,
        download=False,
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(_scope_='mmpretrain', type='Accuracy', topk=(1,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
)
max_epochs = 10
# cosine decay per iteration, no warm-up (the papers' recipe)
param_scheduler = dict(
    type='CosineAnnealingLR',
    by_epoch=True,
    T_max=max_epochs,
    convert_to_iter_based=True,
)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
# The loafing view: sub-networks keeping the first k blocks of every stage,
# each with BN statistics re-estimated on 2000 training images.
val_cfg = dict(
    type='mmst.SubnetValLoop',
    subnets=[[1, 1, 1], [2, 2, 2]],
    bn_recal_images=2000,
)
test_cfg = dict()
# SafeCheckpointHook: checkpoints a kill cannot break, exact resume
default_hooks = dict(
    logger=dict(interval=50), checkpoint=dict(type='mmst.SafeCheckpointHook')
)
randomness = dict(seed=0, deterministic=False)

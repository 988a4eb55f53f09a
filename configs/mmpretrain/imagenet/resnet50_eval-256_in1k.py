# Evaluation of a ResNet-50 (e.g. the authors' released ST weights, after
# tools/model_converters/st_to_mmpretrain.py) on ImageNet val with the
# standard test transform: shorter side resized to 256, CenterCrop 224.
# Decoding (EXIF orientation ignored) and resizing use Pillow, as the
# authors' torchvision pipeline; mmpretrain::resnet/resnet50_8xb32_in1k.py
# itself is the OpenCV variant.
_base_ = ['./resnet50_stpp_eval_in1k.py']

test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation',
    ),
    dict(
        _scope_='mmpretrain',
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bilinear',
    ),
    dict(type='CenterCrop', crop_size=224),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# BN re-estimation of sub-networks (loafing.py, extract_subnet.py): the
# NeurIPS ST recipe trained on 224 px crops.
train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation',
    ),
    dict(
        _scope_='mmpretrain',
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bilinear',
    ),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# Evaluation of the authors' released ST++ ResNet-50 on ImageNet val, after
# tools/model_converters/st_to_mmpretrain.py (docs/released_weights.md).
#
# The authors' test transform (torchvision): PIL decoding, Resize(240) of the
# shorter side (bilinear, PIL), CenterCrop(224). Here: ResizeEdge to 240 and
# CenterCrop 224, decoding and resizing with Pillow as torchvision does
# (mmpretrain's default is OpenCV; the difference is about 0.1% top-1).
# Decoding ignores the EXIF orientation tag, as torchvision's PIL loader
# does (mmcv's default 'color' would rotate those images).
# Model, dataset (data/imagenet) and metric (top-1 / top-5) are those of
# mmpretrain's ResNet-50 config.
_base_ = ['mmpretrain::resnet/resnet50_8xb32_in1k.py']
custom_imports = dict(imports=['mmst'], allow_failed_imports=False)

test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation',
    ),
    dict(
        _scope_='mmpretrain',
        type='ResizeEdge',
        scale=240,
        edge='short',
        backend='pillow',
        interpolation='bilinear',
    ),
    dict(type='CenterCrop', crop_size=224),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# Used only to re-estimate BN statistics of sub-networks
# (tools/analysis_tools/loafing.py, extract_subnet.py): ST++ (A1) trained on
# 200 px crops.
train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation',
    ),
    dict(
        _scope_='mmpretrain',
        type='RandomResizedCrop',
        scale=200,
        backend='pillow',
        interpolation='bilinear',
    ),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

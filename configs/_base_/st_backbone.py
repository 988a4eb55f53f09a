# The ST++ ImageNet ResNet-50 used as the pretrained backbone of every
# downstream config (R50-ST and R50-ST*). Set its path HERE, once.
#
# The file is the backbone-only conversion of the authors' checkpoint:
#   python tools/model_converters/st_to_mmpretrain.py ST_CHECKPOINT \
#       checkpoints/r50_stpp_backbone.pth --backbone-only
# (docs/released_weights.md; without the file tools/train.py refuses the
# config, naming the key to override.)
# It holds ``backbone.*`` keys of a pytorch-style ResNet-50 (stride on the
# 3x3 conv, plain 7x7 stem), which is what mmdet / mmpose ``ResNet`` and
# mmseg ``ResNet`` (not ``ResNetV1c``) build; ``prefix='backbone.'`` strips
# the prefix when the backbone loads it.
#
# Derived configs copy ``st_backbone_init`` when they are read, so
# overriding ``st_backbone_checkpoint`` on the command line has no effect;
# override the backbone's own key instead, e.g.
#   R50-ST: --cfg-options model.backbone.init_cfg.checkpoint=PATH
#   ST*:    --cfg-options model.architecture.backbone.init_cfg.checkpoint=PATH
st_backbone_checkpoint = 'checkpoints/r50_stpp_backbone.pth'
st_backbone_init = dict(
    type='Pretrained', checkpoint=st_backbone_checkpoint, prefix='backbone.'
)

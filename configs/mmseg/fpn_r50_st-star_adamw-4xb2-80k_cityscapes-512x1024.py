# R50-ST*: Semantic FPN R50 on Cityscapes, AdamW (lr 5e-4, wd 0.05), ST++
# backbone (plain ResNet-50, see the R50-ST config), finetuned with Stimulative
# Training. The paper reports no ST* number for this framework. Each iteration:
# the full network on the batch, then 6 sub-networks (ST++'s inter-stage rule =
# space3 on ResNet-50: depths {3}, {3,4}, {3..6}, {3}) each on the batch
# resized to a random shorter side in [0.43, 1] x 512 (label maps resized with
# nearest neighbour), with the segmentation loss; one optimizer step. Running
# BN statistics are updated by the full network only (bn_stats='main'). N = 6
# as in ST++'s ImageNet training (the paper states no N for finetuning); fewer:
# --cfg-options model.num_subnets=1.
_base_ = [
    './fpn_r50_st-backbone_adamw-4xb2-80k_cityscapes-512x1024.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)

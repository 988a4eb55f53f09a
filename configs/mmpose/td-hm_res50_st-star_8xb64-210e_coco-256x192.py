# R50-ST*: SimpleBaseline2D ResNet-50 on COCO keypoints (Adam, lr 5e-4, 210
# epochs), ST++ backbone, finetuned with Stimulative Training. The paper
# reports no ST* number for this framework. Each iteration: the full network on
# the batch, then 6 sub-networks (ST++'s inter-stage rule = space3 on
# ResNet-50: depths {3}, {3,4}, {3..6}, {3}) each on the 256x192 crops resized
# to a random shorter side in [82, 192] (padded to a multiple of 32; heatmap
# targets re-encoded by the model's codec for the smaller input), with the
# keypoint loss; one optimizer step. Running BN statistics are updated by the
# full network only (bn_stats='main'). N = 6 as in ST++'s ImageNet training
# (the paper states no N for finetuning); fewer: --cfg-options
# model.num_subnets=1.
_base_ = [
    './td-hm_res50_st-backbone_8xb64-210e_coco-256x192.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)

# Sub-network targets are re-encoded by the codec from the exact transformed
# keypoints, which PackPoseInputs packs only with pack_transformed=True
# (without it mmst falls back to heatmap peaks and warns once).
train_pipeline = _base_.train_pipeline[:-1] + [
    dict(_scope_='mmpose', type='PackPoseInputs', pack_transformed=True)
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

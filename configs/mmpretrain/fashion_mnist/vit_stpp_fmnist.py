# ST++ of the small ViT of vit_ct_fmnist.py, with the knobs of
# resnet20_stpp_fmnist.py (3 sub-networks per iteration from the default
# space, the first 1 .. 6 of the 6 layers; random smaller inputs of 12 ..
# 28 px) except one: the sub-networks are trained on the labels
# (subnet_loss='task'), not with the KL to the main network. Measured from
# scratch (main cross-entropy, mean of the last 10 of 40 iterations of 128
# images, seeds 0, 1, 2; chance 2.30): CT 1.65 +- 0.06; with the paper's
# KL- 2.32 +- 0.07 from the first iteration, 2.28 +- 0.08 with the
# sub-networks joining at iteration 8 (subnet_schedule begin), 2.28 +- 0.09
# with their weight warmed up over 20 iterations, 2.26 +- 0.12 with both:
# no KL variant's main network learns as CT's does; on the labels it does
# (1.89 +- 0.02). docs/backbones.md, "The small Swin, the small ViT and the
# KL" (benchmarks/kl_diagnostic.py --backbone vit --seeds 0 1 2).
_base_ = ['./vit_ct_fmnist.py', '../_base_/fashion_mnist_stpp.py']

model = dict(
    _base_.stpp_model,
    _delete_=True,
    architecture=_base_.model,
    subnet_loss='task',
)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))

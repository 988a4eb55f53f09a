# ST (NeurIPS'22, 77.56%): the CT recipe plus one sub-network per iteration
# from the default space, trained with plain KL to the main network.
_base_ = ['./resnet50_ct_in1k.py', '../../_base_/st_classification.py']

model = dict(_base_.st_model, _delete_=True, architecture=_base_.model)

"""The task libraries' own inference APIs on an ST checkpoint, through
:func:`mmst.apis.plain_config`, predict what the ST model predicts.

Each case trains a shrunk ST config for 2 iterations in this process (the
config matrix's ``matrix_config``: narrow models, generated data; N=2),
then compares, on the first two test samples, the ST model's own
``test_step`` (the model built from the ST config, loaded from the
checkpoint) with the library's API on ``plain_config(cfg)`` and the same
checkpoint.
"""

import pytest

from mmst.models.algorithms.stimulative import StimulativeTraining

from ..test_matrix.data import matrix_config
from .common import (
    api_predictions,
    assert_loaded,
    assert_same_predictions,
    last_checkpoint,
    st_predictions,
    train_in_process,
)

# case -> ST config (relative to configs/); the case's first word is the
# library whose API is called
CASES = {
    'mmdet': 'faster_rcnn_r50_st.py',
    'mmseg': 'mmseg/fpn_r50_st-star_4xb2-80k_cityscapes-512x1024.py',
    'mmpose': 'mmpose/td-hm_res50_st-star_8xb64-210e_coco-256x192.py',
    'mmpretrain-fmnist': 'mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py',
    'mmpretrain-folder': 'mmpretrain/imagenet/resnet50_st_in1k.py',
}
# what each API builds
PLAIN_TYPES = {
    'mmdet': 'FasterRCNN',
    'mmseg': 'EncoderDecoder',
    'mmpose': 'TopdownPoseEstimator',
    'mmpretrain': 'ImageClassifier',
}


@pytest.mark.parametrize('case', list(CASES))
def test_library_api_matches_st_model(case, api_data, tmp_path):
    """mmdet ``init_detector`` + ``inference_detector``, mmseg
    ``init_model`` + ``inference_model``, mmpose ``init_model`` +
    ``inference_topdown``, mmpretrain ``ImageClassificationInferencer``
    (and ``get_model``): the plain model, holding exactly the checkpoint's
    weights, and the ST model's predictions."""
    library = case.split('-')[0]
    cfg = matrix_config(CASES[case], api_data, num_subnets=2)
    assert cfg.model.type == 'mmst.StimulativeTraining'
    runner = train_in_process(cfg, tmp_path / 'train')
    assert runner.iter == 2
    checkpoint = last_checkpoint(tmp_path / 'train')

    expected, infos, length = st_predictions(cfg, checkpoint)
    model, actual = api_predictions(library, cfg, checkpoint, infos)
    assert type(model).__name__ == PLAIN_TYPES[library]
    assert_loaded(model, checkpoint)
    assert_same_predictions(library, expected, actual, length)

    if library == 'mmpretrain':
        from mmpretrain import get_model

        from mmst.apis import plain_config

        classifier = get_model(
            plain_config(cfg), pretrained=str(checkpoint), device='cpu'
        )
        assert not isinstance(classifier, StimulativeTraining)
        assert type(classifier).__name__ == 'ImageClassifier'
        assert_loaded(classifier, checkpoint)

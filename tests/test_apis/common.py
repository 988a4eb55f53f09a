"""Training a tiny config in-process, and predictions of the same checkpoint
from the ST model's own ``test_step`` and from the task library's inference
API on :func:`mmst.apis.plain_config` (shared with the config matrix)."""

import copy
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, MODELS, DefaultScope
from mmengine.runner import Runner, load_checkpoint

from mmst.apis import plain_config, prepare_config
from mmst.deploy.rounding import (
    accumulation_length,
    network_rounding_bound,
)
from tests.tolerance import assert_within, max_abs


def train_in_process(
    cfg: Config, work_dir: Path, validate: bool = False
) -> Runner:
    """Train ``cfg`` with MMEngine's Runner in this process (a unique
    experiment name, so loggers and visualizers of earlier runs are not
    reused); without validation unless ``validate``."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{work_dir.parent.name}_{work_dir.name}'
    cfg.log_level = 'WARNING'
    if not validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def last_checkpoint(work_dir: Path) -> Path:
    path = Path((Path(work_dir) / 'last_checkpoint').read_text().strip())
    assert path.is_file(), path
    return path


def st_predictions(cfg: Config, checkpoint: Path, n: int = 2) -> tuple:
    """The config's own model (ST or plain), loaded from ``checkpoint``:
    its ``test_step`` outputs on the first ``n`` test samples, one sample
    per batch, those samples' data infos, and the terms its summing ops
    accumulate on one sample (:func:`accumulation_length`, for the
    rounding bound of :func:`assert_same_predictions`)."""
    prepare_config(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as the Runner does
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(model_cfg)
        dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    load_checkpoint(model, str(checkpoint), map_location='cpu')
    model.eval()
    outputs, infos = [], []
    with torch.no_grad():
        for i in range(n):
            infos.append(dataset.get_data_info(i))
            outputs.append(model.test_step(pseudo_collate([dataset[i]]))[0])
        length = accumulation_length(
            model.test_step, pseudo_collate([dataset[0]])
        )
    return outputs, infos, length


def api_predictions(
    library: str, cfg: Config, checkpoint: Path, infos: List[Dict]
) -> Tuple[torch.nn.Module, List[Any]]:
    """The task library's own inference API on ``plain_config(cfg)`` and
    ``checkpoint``: the model it built and its predictions for the samples
    ``infos`` (image paths; Fashion-MNIST: image arrays; mmpose: with the
    person box)."""
    plain = plain_config(cfg)
    ckpt = str(checkpoint)
    if library == 'mmdet':
        from mmdet.apis import inference_detector, init_detector

        model = init_detector(plain, ckpt, device='cpu')
        return model, inference_detector(model, [i['img_path'] for i in infos])
    if library == 'mmseg':
        from mmseg.apis import inference_model, init_model

        # mmseg's inference_model reads the top-level test_pipeline
        plain.test_pipeline = copy.deepcopy(
            plain.test_dataloader.dataset.pipeline
        )
        model = init_model(plain, ckpt, device='cpu')
        return model, [inference_model(model, i['img_path']) for i in infos]
    if library == 'mmpose':
        from mmpose.apis import inference_topdown, init_model

        model = init_model(plain, ckpt, device='cpu')
        return model, [
            inference_topdown(
                model, i['img_path'], bboxes=i['bbox'], bbox_format='xyxy'
            )[0]
            for i in infos
        ]
    if library == 'mmpretrain':
        from mmpretrain import ImageClassificationInferencer

        inferencer = ImageClassificationInferencer(
            plain, pretrained=ckpt, device='cpu'
        )
        inputs = [
            i['img_path'] if 'img_path' in i else i['img'] for i in infos
        ]
        return inferencer.model, inferencer(inputs, return_datasamples=True)
    raise ValueError(f'unknown library {library!r}')


def assert_loaded(model: torch.nn.Module, checkpoint: Path) -> None:
    """``model`` holds exactly the checkpoint's weights: the same keys
    (none prefixed ``architecture.``), equal tensors."""
    state = torch.load(str(checkpoint), map_location='cpu', weights_only=False)
    saved = state['state_dict']
    own = model.state_dict()
    assert not any(k.startswith('architecture.') for k in own)
    assert set(own) == set(saved), sorted(set(own) ^ set(saved))[:10]
    for key, value in saved.items():
        assert torch.equal(own[key].cpu(), value), key


def _close(a, b, what: str, length: int) -> None:
    """Equal up to float32 rounding: two runs of one network on one image
    (another batch layout or kernel) differ by at most
    :func:`network_rounding_bound` of its ``length`` accumulated terms,
    relative to the values' magnitude. Integers (labels) exactly."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    if not (a.is_floating_point() or b.is_floating_point()):
        assert torch.equal(a, b), what
        return
    tol = network_rounding_bound(length, max_abs(a, b)) if a.numel() else 0
    try:
        assert_within(a, b, tol)
    except AssertionError as err:
        raise AssertionError(f'{what}: {err}') from None


def assert_same_predictions(
    library: str, expected: List[Any], actual: List[Any], length: int
) -> None:
    """The predictions of the library API equal the ST model's: boxes,
    scores and labels (mmdet; masks when predicted), label maps and logits
    (mmseg), keypoints and their scores (mmpose), class scores
    (mmpretrain), within the rounding of ``length`` accumulated terms
    (:func:`st_predictions`). Fails when a prediction is empty."""
    assert len(expected) == len(actual) > 0
    for want, got in zip(expected, actual):
        if library == 'mmdet':
            w, g = want.pred_instances, got.pred_instances
            assert len(w) > 0, 'no boxes predicted'
            for key in ('bboxes', 'scores', 'labels', 'masks'):
                if key in w:
                    _close(w[key], g[key], key, length)
        elif library == 'mmseg':
            _close(
                want.pred_sem_seg.data, got.pred_sem_seg.data, 'labels', length
            )
            _close(want.seg_logits.data, got.seg_logits.data, 'logits', length)
        elif library == 'mmpose':
            w, g = want.pred_instances, got.pred_instances
            assert len(w.keypoints) > 0
            _close(w.keypoints, g.keypoints, 'keypoints', length)
            _close(
                w.keypoint_scores, g.keypoint_scores, 'keypoint_scores', length
            )
        else:
            _close(want.pred_score, got.pred_score, 'pred_score', length)
            assert int(want.pred_label) == int(got.pred_label)

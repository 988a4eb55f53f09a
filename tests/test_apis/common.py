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
    per batch, and those samples' data infos."""
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
    return outputs, infos


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


def _close(a, b, what: str) -> None:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    torch.testing.assert_close(
        a.float(),
        b.float(),
        rtol=1e-4,
        atol=1e-4,
        msg=lambda m: f'{what}: {m}',
    )


def assert_same_predictions(
    library: str, expected: List[Any], actual: List[Any]
) -> None:
    """The predictions of the library API equal the ST model's: boxes,
    scores and labels (mmdet; masks when predicted), label maps and logits
    (mmseg), keypoints and their scores (mmpose), class scores
    (mmpretrain). Fails when a prediction is empty."""
    assert len(expected) == len(actual) > 0
    for want, got in zip(expected, actual):
        if library == 'mmdet':
            w, g = want.pred_instances, got.pred_instances
            assert len(w) > 0, 'no boxes predicted'
            for key in ('bboxes', 'scores', 'labels', 'masks'):
                if key in w:
                    _close(w[key], g[key], key)
        elif library == 'mmseg':
            _close(want.pred_sem_seg.data, got.pred_sem_seg.data, 'label map')
            _close(want.seg_logits.data, got.seg_logits.data, 'logits')
        elif library == 'mmpose':
            w, g = want.pred_instances, got.pred_instances
            assert len(w.keypoints) > 0
            _close(w.keypoints, g.keypoints, 'keypoints')
            _close(w.keypoint_scores, g.keypoint_scores, 'keypoint_scores')
        else:
            _close(want.pred_score, got.pred_score, 'pred_score')
            assert int(want.pred_label) == int(got.pred_label)

"""``tools/train.py`` trains the ST* configs for a few iterations on
generated data in the real formats, and ``tools/test.py`` evaluates the
checkpoint with the upstream metric (box / mask mAP, PQ, mIoU, keypoint
AP).

Configs are the shipped ones, shrunk (``data.tiny_config``: narrow
ResNet-50 with the same stages, narrow heads, N=2) and dumped to a file;
Faster R-CNN takes its data settings from the ``--cfg-options`` given in
docs/downstream.md (:func:`mmst.testing.tiny_coco_cfg_options`).
"""

import glob
import json
import math
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.config import Config

from mmst.testing import tiny_coco_cfg_options
from tests.test_distributed.common import run_tool, tool_metrics

from .data import (
    FRAMEWORKS,
    data_root,
    shrink_model,
    tiny_config,
)

# framework -> metric keys tools/test.py must report
METRICS = {
    'faster_rcnn': ['coco/bbox_mAP', 'coco/bbox_mAP_50'],
    'mask_rcnn': ['coco/bbox_mAP', 'coco/segm_mAP'],
    'panoptic_fpn': [
        'coco_panoptic/PQ',
        'coco_panoptic/SQ',
        'coco_panoptic/RQ',
    ],
    'semantic_fpn': ['mIoU', 'mAcc'],
    'simple_baseline': ['coco/AP', 'coco/AR'],
}


def _train_scalars(work_dir: Path) -> List[Dict]:
    files = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return [json.loads(line) for line in f if line.strip()]


def _last_checkpoint(work_dir: Path) -> Path:
    path = Path((work_dir / 'last_checkpoint').read_text().strip())
    assert path.is_file(), path
    return path


def _train_and_test(
    config: Path,
    tmp_path: Path,
    metrics: List[str],
    options: Optional[List[str]] = None,
    validate: bool = False,
) -> Path:
    """tools/train.py, then tools/test.py on its last checkpoint, each
    run as ``main()`` in this process (a fresh interpreter proves nothing
    more here: tests/test_matrix runs tools/train.py under torchrun)."""
    options = list(options or [])
    work = tmp_path / 'train'
    run_tool(
        'train',
        config,
        '--work-dir',
        work,
        *([] if validate else ['--no-validate']),
        '--cfg-options',
        # unique names: MMEngine reuses a logger or visualizer (mmdet's
        # configs name it 'visualizer') of an earlier run in the process
        f'experiment_name={tmp_path.name}_train',
        f'visualizer.name={tmp_path.name}_train',
        *options,
    )
    logs = [r for r in _train_scalars(work) if 'loss_subnet' in r]
    assert len(logs) >= 2, logs  # a log line per ST* iteration
    for record in logs:
        assert math.isfinite(record['loss_main']), record
        assert math.isfinite(record['loss_subnet']), record
        assert record['subnet_depth_s1'] == 3  # space3 keeps stage 1
        assert 3 <= record['subnet_depth_s3'] <= 6
    checkpoint = _last_checkpoint(work)

    tested = tmp_path / 'test'
    run_tool(
        'test',
        config,
        checkpoint,
        '--work-dir',
        tested,
        '--cfg-options',
        f'experiment_name={tmp_path.name}_test',
        f'visualizer.name={tmp_path.name}_test',
        *options,
    )
    results = tool_metrics(tested)
    for key in metrics:
        assert key in results, (key, sorted(results))
        assert isinstance(results[key], (int, float)), (key, results[key])
        assert math.isfinite(results[key]), (key, results[key])
    return checkpoint


def test_faster_rcnn_train_test_with_documented_options(tmp_path, tiny_coco):
    """The headline config with the data options of docs/downstream.md
    (model shrunk as in the other tests)."""
    cfg = shrink_model(Config.fromfile(FRAMEWORKS['faster_rcnn'][0]))
    cfg.model.num_subnets = 2
    config = tmp_path / 'faster_rcnn_r50_st_tiny.py'
    cfg.dump(str(config))
    checkpoint = _train_and_test(
        config,
        tmp_path,
        METRICS['faster_rcnn'],
        tiny_coco_cfg_options(str(tiny_coco)),
        validate=True,  # tools/train.py drops val_* before --cfg-options
    )
    # ST* checkpoints carry the detector's own keys: the R50-ST (plain
    # mmdet) config loads them
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    keys = set(state['state_dict'])
    assert not any(k.startswith('architecture.') for k in keys)
    plain = shrink_model(Config.fromfile(FRAMEWORKS['faster_rcnn'][1]))
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = MODELS.build(plain.model)
    assert keys == set(detector.state_dict())


@pytest.mark.parametrize(
    'framework',
    ['mask_rcnn', 'panoptic_fpn', 'semantic_fpn', 'simple_baseline'],
)
def test_train_test_tools(framework, tmp_path, tiny_coco, tiny_cityscapes):
    if framework == 'panoptic_fpn':
        pytest.importorskip(
            'panopticapi', reason="mmdet's CocoPanopticMetric needs it"
        )
    st_path, _, kind = FRAMEWORKS[framework]
    cfg = tiny_config(
        st_path, kind, data_root(kind, tiny_coco, tiny_cityscapes)
    )
    config = tmp_path / f'{framework}_tiny.py'
    cfg.dump(str(config))
    _train_and_test(config, tmp_path, METRICS[framework])

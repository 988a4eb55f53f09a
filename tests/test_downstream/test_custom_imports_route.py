"""The ``custom_imports`` route of docs/downstream.md: the block a user adds
to a config that ``_base_``s an upstream mmdet config turns it into ST*,
and MMEngine's own Runner (what every OpenMMLab ``tools/train.py`` builds)
trains it with mmst imported by the config alone."""

import re
import textwrap

from .data import REPO, run_python

DOC = REPO / 'docs' / 'downstream.md'
MARKER = '<!-- custom-imports-block -->'

# Runs in a fresh interpreter: argv = [config, coco root, work dir].
TRAIN_WITH_RUNNER = textwrap.dedent("""
    import sys
    from pathlib import Path

    from mmengine.config import Config
    from mmengine.runner import Runner

    config, root, work_dir = sys.argv[1:4]
    assert 'mmst' not in sys.modules
    cfg = Config.fromfile(config)
    assert 'mmst' in sys.modules, 'custom_imports did not import mmst'
    assert cfg.model.type == 'mmst.StimulativeTraining'

    # test-only: tiny model and data (imports mmst.testing, after the check)
    from tests.test_downstream.data import point_at_data, shrink_model
    shrink_model(cfg)
    point_at_data(cfg, 'coco', Path(root))
    cfg.model.num_subnets = 1
    cfg.train_dataloader.dataset.indices = 2  # one iteration of 2 images
    cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir

    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model).__name__ == 'StimulativeTraining', type(model)
    assert type(model.architecture).__name__ == 'FasterRCNN'
    runner.train()
    assert runner.iter == 1, runner.iter
    logs = runner.message_hub.log_scalars
    assert 'train/loss_subnet' in logs, sorted(logs)
    print('trained ST* through custom_imports')
""")


def _documented_block() -> str:
    text = DOC.read_text()
    assert MARKER in text, f'{DOC} lost its {MARKER} marker'
    match = re.search(r'```python\n(.*?)```', text.split(MARKER, 1)[1], re.S)
    assert match, 'no python block after the marker'
    return match.group(1)


def test_documented_block_trains_st_star(tmp_path, tiny_coco):
    block = _documented_block()
    assert "custom_imports = dict(imports=['mmst']" in block
    assert "'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'" in block
    config = tmp_path / 'faster-rcnn_r50_fpn_1x_coco_st.py'
    config.write_text(block)
    proc = run_python(
        ['-c', TRAIN_WITH_RUNNER, str(config), str(tiny_coco), str(tmp_path)],
        cwd=REPO,
    )
    assert 'trained ST* through custom_imports' in proc.stdout

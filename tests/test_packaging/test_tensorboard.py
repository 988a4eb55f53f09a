"""TensorBoard as one config switch (docs/visualization.md): a tiny ST++
training with a real Runner writes the training scalars and the
per-sub-network validation metrics into a TensorBoard event file, read back
with TensorBoard's own reader."""

from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner

from tests.test_core.common import make_folder_dataset, runner_cfg, st_cfg

REPO = Path(__file__).resolve().parents[2]
# The statement docs/visualization.md tells a user to add to a config.
SWITCH = (
    'visualizer = dict(\n'
    '    vis_backends=[\n'
    "        dict(type='LocalVisBackend'),\n"
    "        dict(type='TensorboardVisBackend'),\n"
    '    ]\n'
    ')\n'
)


def test_docs_show_the_switch():
    assert SWITCH in (REPO / 'docs' / 'visualization.md').read_text()


def test_cfg_options_switch_replaces_the_local_backend():
    """The command-line form: --cfg-options
    visualizer.vis_backends.0.type=TensorboardVisBackend."""
    cfg = Config.fromfile(
        str(REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py')
    )
    assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend')]
    cfg.merge_from_dict(
        {'visualizer.vis_backends.0.type': 'TensorboardVisBackend'}
    )
    assert cfg.visualizer.type == 'UniversalVisualizer'
    assert cfg.visualizer.vis_backends == [dict(type='TensorboardVisBackend')]


def test_scalars_land_in_the_event_file(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    data_root = make_folder_dataset(tmp_path / 'data')
    base = runner_cfg(
        tmp_path / 'work',
        data_root,
        st_cfg(
            num_subnets=2,
            logit_norm='layernorm',
            input_resize=dict(ratio_range=(0.43, 1.0)),
            arch=dict(in_channels=3),
        ),
        max_epochs=1,
        val_cfg=dict(
            type='mmst.SubnetValLoop',
            subnets=[[1, 1, 1]],
            bn_recal_images=12,
        ),
    )
    # the visualizer every upstream runtime config defines
    base['visualizer'] = dict(
        type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')]
    )
    Config(base).dump(str(tmp_path / 'base.py'))
    (tmp_path / 'user.py').write_text("_base_ = ['./base.py']\n" + SWITCH)
    cfg = Config.fromfile(str(tmp_path / 'user.py'))
    Runner.from_cfg(cfg).train()

    (events,) = (tmp_path / 'work').glob('*/vis_data/events.out.tfevents.*')
    # the local JSON scalars are still written beside it
    assert list(events.parent.glob('scalars.json'))
    acc = EventAccumulator(str(events))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    train = {
        'loss',
        'loss_main',
        'loss_subnet',
        'subnet_size',
        'subnet_depth_s1',
        'subnet_depth_s2',
        'subnet_depth_s3',
        'lr',
    }
    assert train <= tags, sorted(tags)
    # 18 images in batches of 6, logged every iteration
    assert [e.step for e in acc.Scalars('loss_subnet')] == [1, 2, 3]
    assert all(e.value > 0 for e in acc.Scalars('loss_subnet'))
    for e in acc.Scalars('subnet_depth_s1'):
        assert 1 <= e.value <= 2  # stage 1 has 2 blocks
    # the sub-network's tag as in the text log and scalars.json
    val = {'accuracy/top1', 'subnet[1,1,1]/accuracy/top1'}
    assert val <= tags, sorted(tags)
    for tag in val:
        (event,) = acc.Scalars(tag)
        assert 0 <= event.value <= 100

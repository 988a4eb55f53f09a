"""tools/analysis_tools/loafing.py re-estimates every sub-network's BN
statistics on the images it asks for, also when the config's training
loader has an InfiniteSampler (which a reused loader would exhaust after
the first sub-network)."""

import torch

from tests.test_core.common import (
    build,
    make_folder_dataset,
    tiny_classifier_cfg,
)
from tests.test_distributed.common import load_tool

from .common import engine_cfg


def test_every_subnet_gets_its_images(tmp_path):
    loafing = load_tool('analysis_tools/loafing')

    data_root = make_folder_dataset(tmp_path / 'data')
    cfg = engine_cfg(
        tmp_path / 'w',
        data_root,
        tiny_classifier_cfg(in_channels=3),
        iter_based=True,
    )
    config = tmp_path / 'tiny.py'
    cfg.dump(str(config))
    torch.manual_seed(0)
    ckpt = tmp_path / 'tiny.pth'
    model = build(tiny_classifier_cfg(in_channels=3))
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    result = loafing.main(
        [str(config), str(ckpt), '--labels', 'R']
        + ['--subnets', '1,1,1', '1,2,1', '2,2,2']
        + ['--bn-recal-images', '12', '--no-progress']
        + ['--out-dir', str(tmp_path / 'out')]
    )
    subnets = [n for n in result['networks'] if n['name'] != 'main']
    assert [n['name'] for n in subnets] == ['[1,1,1]', '[1,2,1]', '[2,2,2]']
    for net in subnets:
        assert net['recal_images_used'] == 12, net['name']

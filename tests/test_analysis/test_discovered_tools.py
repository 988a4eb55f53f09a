"""The validation loop, the loafing tool and the depth menu on backbones
whose stages mmst discovers (the shipped ConvNeXt and Swin ST++
Fashion-MNIST configs, shrunk to 640 training images): each runs from the
config and checkpoint as a user runs it, and for the same checkpoint,
sub-networks and images the three give the same accuracies. The shipped
ViT ST++ config is trained the same way to check its main network learns.

What depends on the backbone inside them (BN re-estimation and
evaluation of members, shared prefixes) runs for every supported
backbone in tests/test_subnet/test_backbone_matrix.py."""

from pathlib import Path

import pytest
import torch

from tests.test_analysis.test_analysis_tools import _module

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / 'data' / 'fashion_mnist'
CONFIGS = {
    'convnext': 'configs/mmpretrain/fashion_mnist/convnext_stpp_fmnist.py',
    'swin': 'configs/mmpretrain/fashion_mnist/swin_stpp_fmnist.py',
    'vit': 'configs/mmpretrain/fashion_mnist/vit_stpp_fmnist.py',
}
#: the configs the validation, loafing and menu tests run on (3 stages)
STAGED = ['convnext', 'swin']
SUBNETS = ['1,1,1', '2,2,2']
VAL_IMAGES = 100
BATCH, ITERS = 32, 20

pytestmark = pytest.mark.skipif(
    not (DATA / 'train-images-idx3-ubyte').exists(),
    reason='Fashion-MNIST files missing (bash tools/setup_env.sh --data)',
)


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def trained(request, tmp_path_factory):
    """One epoch of 20 ST++ iterations of 32 images (constant learning
    rate), validated by the config's ``SubnetValLoop`` (main network and
    three sub-networks)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmst.apis import prepare_config

    root = tmp_path_factory.mktemp(request.param)
    config = root / 'tiny.py'
    config.write_text(
        f'_base_ = [{str(REPO / CONFIGS[request.param])!r}]\n'
        f'data_root = {str(DATA)!r}\n'
        f'train_dataloader = dict(batch_size={BATCH}, '
        f'dataset=dict(data_root=data_root, indices={BATCH * ITERS}))\n'
        'val_dataloader = dict(batch_size=50, '
        f'dataset=dict(data_root=data_root, indices={VAL_IMAGES}))\n'
        'test_dataloader = val_dataloader\n'
        'train_cfg = dict(max_epochs=1)\n'
        'param_scheduler = []\n'
        'default_hooks = dict(checkpoint=dict(interval=1))\n'
        "log_level = 'WARNING'\n"
    )
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(root / 'train')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = Runner.from_cfg(prepare_config(cfg))
        runner.train()
        metrics = runner.val()
        main_ce = runner.message_hub.get_scalar('train/loss_main').data[0]
        yield dict(
            main_ce=main_ce.tolist(),
            root=root,
            config=str(config),
            ckpt=str(root / 'train' / 'epoch_1.pth'),
            metrics=metrics,
        )
    finally:
        torch.set_num_threads(threads)


def test_main_network_learns(trained):
    """The shipped config trains its main network as CT does: the mean
    cross-entropy of the last 5 of 20 iterations is at least 0.1 below
    that of the first 5 (seed 0, about 2.3 -> 2.1). With the KL, the small
    Swin's stayed at chance here (2.36 -> 2.41) and so did the small
    ViT's: this fails on those configs (why their sub-networks learn the
    labels: docs/backbones.md, "The small Swin, the small ViT and the
    KL")."""
    main_ce = trained['main_ce']
    assert len(main_ce) == ITERS
    first, last = sum(main_ce[:5]) / 5, sum(main_ce[-5:]) / 5
    assert last < first - 0.1, main_ce


@pytest.mark.parametrize('trained', STAGED, indirect=True)
def test_validation_loop_reports_every_subnet(trained):
    metrics = trained['metrics']
    for name in ('[1,1,1]', '[1,1,2]', '[2,2,2]'):
        value = metrics[f'subnet{name}/accuracy/top1']
        assert 0.0 <= value <= 100.0
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


@pytest.mark.parametrize('trained', STAGED, indirect=True)
def test_loafing_and_menu_agree_with_validation(trained):
    from mmst.analysis.menu import build_menu

    loafing = _module(REPO / 'tools' / 'analysis_tools' / 'loafing.py')
    result = loafing.main(
        [trained['config'], trained['ckpt'], '--subnets', *SUBNETS]
        + ['--no-progress']  # the default 2000 re-estimation images
        + ['--out-dir', str(trained['root'] / 'loafing')]
    )
    nets = {
        n['name']: next(iter(n['results'].values()))  # one checkpoint
        for n in result['networks']
    }
    # no BN layer: nothing re-estimated, and the outputs say so
    assert result['has_bn'] is False and result['bn_recal_images'] == 0
    assert {n['bn_stats'] for n in result['networks']} == {'stored'}
    assert not any('recal_images_used' in n for n in result['networks'])
    assert 'no BN layer is trained' in loafing.markdown_table(result)
    metrics = trained['metrics']
    # no BN in these backbones: validation, loafing and the menu evaluate
    # the same weights on the same images
    assert nets['main'] == metrics['accuracy/top1']
    assert nets['[1,1,1]'] == metrics['subnet[1,1,1]/accuracy/top1']
    assert nets['[2,2,2]'] == metrics['subnet[2,2,2]/accuracy/top1']

    menu = build_menu(
        trained['config'],
        [trained['ckpt']],
        labels=['E1'],
        subnets=SUBNETS,
        bn_recal_images=0,
        out_dir=str(trained['root'] / 'menu'),
        threads=1,
        batch_sizes=(1,),
        warmup=1,
        repeats=2,
        progress=False,
    )
    assert menu['complete']
    for member in menu['members']:
        assert member['results']['E1']['metric'] == nets[member['name']]
    small, full = menu['members']
    assert small['flops'] < full['flops'] and small['params'] < full['params']

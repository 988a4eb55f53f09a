"""mmst installed like an OpenMMLab package (docs/mim.md): a wheel built
from this working tree ships configs/, tools/ and model-index.yml as
mmst/.mim, so that MMEngine resolves ``mmst::`` configs in ``_base_`` and
``mim train mmst CONFIG`` / ``mim test mmst CONFIG`` find the config and
the scripts, from a folder outside the checkout. The wheel is installed
into a temporary folder put first on PYTHONPATH (the venv is untouched).
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.test_distributed.common import require_fashion_mnist, run_tool

REPO = Path(__file__).resolve().parents[2]
MIM = Path(sys.executable).with_name('mim')


def listed_configs() -> list:
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    return [
        m['Config']
        for path in index['Import']
        for m in yaml.safe_load((REPO / path).read_text())['Models']
    ]


def copy_tree(dst: Path) -> Path:
    """The checkout's files as git sees them (tracked and untracked, not
    ignored: no .venv, data or work_dirs)."""
    files = subprocess.run(
        [
            'git',
            'ls-files',
            '-z',
            '--cached',
            '--others',
            '--exclude-standard',
        ],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b'\0')
    for name in filter(None, (f.decode() for f in files)):
        src = REPO / name
        if src.is_file():  # skips files deleted in the working tree
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


def run(cmd, cwd, env=None, timeout=600) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f'{" ".join(map(str, cmd))} failed ({proc.returncode}):\n'
        f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}'
    )
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    src = copy_tree(tmp_path_factory.mktemp('src'))
    out = tmp_path_factory.mktemp('dist')
    run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index',
         '--no-build-isolation', '-q', '-w', out, src],
        cwd=out,
    )  # fmt: skip
    (whl,) = out.glob('mmst-*.whl')
    return whl


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a folder (``pip install --target``)."""
    target = tmp_path_factory.mktemp('site')
    run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index',
         '-q', '--target', target, wheel],
        cwd=target,
    )  # fmt: skip
    return target


def env_with(site: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = str(site)
    return env


def test_wheel_ships_the_mim_folder(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    mim = 'mmst/.mim/'
    expected = [mim + 'model-index.yml', mim + 'tools/train.py']
    expected += [mim + 'tools/test.py', mim + 'configs/_base_/st_star.py']
    expected += [mim + c for c in listed_configs()]
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    expected += [mim + path for path in index['Import']]
    assert sorted(set(expected) - names) == []
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]


def test_editable_build_links_the_mim_folder(tmp_path):
    """``pip install -e .`` runs setup.py's build_py in editable mode: it
    links mmst/.mim/* to the checkout's files, as committed."""
    src = copy_tree(tmp_path / 'src')
    code = (
        'from setuptools import build_meta; '
        f'build_meta.build_editable({str(tmp_path / "dist")!r})'
    )
    run([sys.executable, '-c', code], cwd=src)
    mim = src / 'mmst' / '.mim'
    for name in ('configs', 'tools', 'model-index.yml'):
        assert (mim / name).is_symlink()
        assert (mim / name).resolve() == (src / name).resolve()
    # the checkout carries the same links, so a clone works before any
    # install (``PYTHONPATH=checkout``) and an old editable install too
    for name in ('configs', 'tools', 'model-index.yml'):
        link = REPO / 'mmst' / '.mim' / name
        assert link.is_symlink(), link
        assert os.readlink(link) == os.readlink(mim / name)
    tracked = subprocess.run(
        ['git', 'ls-files', 'mmst/.mim'],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(tracked) == [
        'mmst/.mim/configs',
        'mmst/.mim/model-index.yml',
        'mmst/.mim/tools',
    ]


def test_import_mmst_registers_its_config_scope():
    """MMEngine accepts ``PKG::`` only for the packages in its
    ``MODULE2PACKAGE``; mmst must add itself when imported."""
    from mmengine.config.utils import MODULE2PACKAGE

    import mmst  # noqa: F401

    assert MODULE2PACKAGE.get('mmst') == 'mmst'


USER_CONFIG = """\
_base_ = ['mmst::mmpretrain/imagenet/resnet50_stpp-a1_in1k.py']
model = dict(num_subnets=2)
"""
CHECK_SCOPE = """\
import os.path as osp
import sys

import mmst
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE

site = sys.argv[1]
assert mmst.__file__.startswith(site), mmst.__file__
assert MODULE2PACKAGE['mmst'] == 'mmst'  # registered by `import mmst`

# Loaded by ``mmst::``, the outermost typed dicts of mmst's own files get
# ``_scope_='mmst'`` and are built, with what they hold, from mmst's
# registries (or MMEngine's roots, where mmst has none): what they hold
# must resolve there, or carry its own ``_scope_`` (mmpretrain's models and
# datasets in the Fashion-MNIST configs).
import mmengine.registry as roots
import mmdet.registry  # noqa: F401 (the task libraries' registries)
import mmpose.registry  # noqa: F401
import mmpretrain.registry  # noqa: F401
import mmseg.registry  # noqa: F401
from mmengine.registry import Registry


# types built in the mmst scope: a typed dict's own _scope_, else its
# nearest typed ancestor's (builders build what they hold in their scope)
def scoped_types(node, scope=None):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            scope = node.get('_scope_', scope)
            if scope == 'mmst':
                yield node['type']
        for value in node.values():
            yield from scoped_types(value, scope)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from scoped_types(value, scope)


def builds_in_mmst(name):
    for root in vars(roots).values():
        if isinstance(root, Registry) and root.parent is None:
            registry = root._search_child('mmst') or root
            if registry.get(name) is not None:
                return True
    return False


cfg = Config.fromfile('user_config.py')
assert cfg.model.type == 'mmst.StimulativeTraining', cfg.model
assert cfg.model.num_subnets == 2  # the user's override
assert cfg.model.space.depths == 'space3'
assert cfg.model.logit_norm == 'layernorm'
assert cfg.model.architecture.backbone.depth == 50  # mmpretrain::resnet
assert cfg.train_dataloader.dataset.pipeline[1].scale == 200
assert cfg.custom_imports.imports == ['mmst']  # ../../_base_/st_runtime.py
# every listed config resolves from the package (relative _base_ files and
# the task libraries' own scopes): a user config on each
resolved = 0
for path in sys.argv[2:]:
    rel = path.split('/', 1)[1]
    with open('one.py', 'w') as f:
        f.write('_base_ = [%r]' % ('mmst::' + rel))
    if '/' not in rel:
        # MMEngine accepts only `PKG::FOLDER/FILE` (configs/*.py: by path
        # or, with mim, by name)
        try:
            Config.fromfile('one.py')
        except ValueError as e:
            assert 'please specify the package name and relative' in str(e)
            continue
        raise AssertionError(f'{path} resolved: update docs/mim.md')
    cfg = Config.fromfile('one.py')
    assert 'model' in cfg and 'train_dataloader' in cfg, path
    types = list(scoped_types(cfg.to_dict()))
    unresolved = [t for t in types if not builds_in_mmst(t)]
    assert not unresolved, (path, unresolved)
    resolved += 1
print('resolved', resolved)
"""


def test_user_config_bases_on_mmst_configs_by_scope(installed, tmp_path):
    (tmp_path / 'user_config.py').write_text(USER_CONFIG)
    (tmp_path / 'check.py').write_text(CHECK_SCOPE)
    configs = listed_configs()
    out = run(
        [sys.executable, 'check.py', installed, *configs],
        cwd=tmp_path,
        env=env_with(installed),
    )
    top_level = [c for c in configs if c.count('/') == 1]
    assert top_level == ['configs/faster_rcnn_r50_st.py']
    assert f'resolved {len(configs) - len(top_level)}' in out


def test_mim_train_and_test(installed, tmp_path):
    """``mim train mmst CONFIG`` finds the config by name in the package
    and runs mmst/.mim/tools/train.py: 2 iterations on 16 Fashion-MNIST
    images; ``mim test`` evaluates the checkpoint."""
    fmnist = require_fashion_mnist()
    config = 'resnet20_stpp_fmnist.py'
    data = [
        f'{loader}.dataset.data_root={fmnist}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    small = [
        'train_dataloader.batch_size=8',
        'train_dataloader.dataset.indices=16',
        'val_dataloader.dataset.indices=40',
        'test_dataloader.dataset.indices=40',
        'val_cfg.bn_recal_images=16',
        'train_cfg.max_epochs=1',
        'param_scheduler.T_max=1',
        'default_hooks.logger.interval=1',
    ]
    env = env_with(installed)
    out = run(
        [MIM, 'train', 'mmst', config, '--work-dir', tmp_path / 'work',
         '--cfg-options', *data, *small],
        cwd=tmp_path,
        env=env,
    )  # fmt: skip
    mim_dir = installed / 'mmst' / '.mim'
    assert f'{mim_dir}/tools/train.py' in out
    assert f'{mim_dir}/configs/mmpretrain/fashion_mnist/{config}' in out
    assert 'Epoch(train) [1][2/2]' in out
    assert 'subnet[1,1,1]/accuracy/top1' in out
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()

    out = run(
        [MIM, 'test', 'mmst', config, '--checkpoint', ckpt,
         '--work-dir', tmp_path / 'test', '--cfg-options', *data, *small],
        cwd=tmp_path,
        env=env,
    )  # fmt: skip
    assert f'{mim_dir}/tools/test.py' in out
    assert 'Epoch(test) [2/2]' in out or 'accuracy/top1' in out


def test_user_config_by_scope_trains(tmp_path, capfd):
    """A user config outside the checkout that bases on a Fashion-MNIST
    config by scope builds and trains (its model, dataset, pipeline and
    evaluator were built from mmst's registries once: KeyError). Run by
    tools/train.py in this process: the scope resolution is the same as
    from the installed wheel (test_user_config_bases_on_mmst_configs_by_
    scope resolves every listed config there), and ``mim train`` is run by
    test_mim_train_and_test."""
    fmnist = require_fashion_mnist()
    (tmp_path / 'my_convnext.py').write_text(
        "_base_ = ['mmst::mmpretrain/fashion_mnist/convnext_stpp_fmnist.py']\n"
        f'data_root = {str(fmnist)!r}\n'
        'train_dataloader = dict(batch_size=8, '
        'dataset=dict(data_root=data_root, indices=16))\n'
        'val_dataloader = dict('
        'dataset=dict(data_root=data_root, indices=40))\n'
        'test_dataloader = val_dataloader\n'
        'train_cfg = dict(max_epochs=1)\n'
        'param_scheduler = []\n'
        'default_hooks = dict(logger=dict(interval=1))\n'
        "experiment_name = 'user_config_by_scope'\n"
    )
    capfd.readouterr()
    run_tool(
        'train', tmp_path / 'my_convnext.py', '--work-dir', tmp_path / 'work'
    )
    out = ''.join(capfd.readouterr())
    assert 'Epoch(train) [1][2/2]' in out
    assert 'subnet[1,1,1]/accuracy/top1' in out
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()

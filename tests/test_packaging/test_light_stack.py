"""The light stack for real (docs/install.md): ``tools/setup_env.sh``
without ``--full`` builds a venv from a copy of this tree (uv, from the
caches the full setup filled), the classification path builds there, and
configs of the other tasks fail when they are built with a
:class:`mmst.stack.StackError` naming the fix command, not with an
ImportError inside a library: first without mmdet at all, then with mmdet
and mmpose installed beside mmcv-lite and numpy 2 (``--no-deps``, as a user
could).
"""

import os
import subprocess

from tests.test_packaging.test_mim import copy_tree, run

DET = 'configs/mmdet/faster_rcnn_r50_st-backbone_1x_coco.py'
POSE = 'configs/mmpose/td-hm_res50_st-backbone_8xb64-210e_coco-256x192.py'
CLS = 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py'
FIX = 'bash tools/setup_env.sh --full'


def build_fails(py, src, config, tmp_path) -> str:
    proc = subprocess.run(
        [str(py), 'tools/train.py', config, '--work-dir', str(tmp_path)],
        cwd=str(src),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert 'mmst.stack.StackError' in proc.stderr, proc.stderr[-4000:]
    return proc.stderr[proc.stderr.index('mmst.stack.StackError') :]


def test_light_venv_runs_classification_and_names_the_fix(tmp_path):
    src = copy_tree(tmp_path / 'src')
    venv = tmp_path / 'venv'
    env = dict(os.environ, MMST_VENV=str(venv))
    out = run(['bash', 'tools/setup_env.sh'], src, env, timeout=1200)
    assert 'cls: ok (mmengine 0.10.7 | mmcv-lite 2.1.0 | numpy 2.4.6' in out
    py = venv / 'bin' / 'python'
    # the classification config builds (config, task check, registries)
    run(
        [
            py,
            '-c',
            'from mmst.apis import prepare_config; '
            'from mmst.stack import load_config; '
            f'prepare_config(load_config({CLS!r}))',
        ],
        src,
    )
    # detection without mmdet: its base configs cannot load
    err = build_fails(py, src, DET, tmp_path / 'wd')
    assert '- mmdet is not installed' in err
    assert '- mmcv-lite 2.1.0 has no compiled ops (mmcv.ops)' in err
    assert FIX in err and "pip install -e '.[det]'" in err
    # mmdet and mmpose beside mmcv-lite and numpy 2
    run(
        [
            venv / 'bin' / 'uv',
            'pip',
            'install',
            '--python',
            py,
            '-q',
            '--no-deps',
            'mmdet==3.3.0',
            'mmpose==1.3.2',
        ],
        src,
    )
    err = build_fails(py, src, DET, tmp_path / 'wd')
    assert "(default_scope='mmdet')" in err
    assert (
        'mmcv-lite 2.1.0 has no compiled ops (mmcv.ops), which mmdet 3.3.0'
        in err
    )
    assert FIX in err
    err = build_fails(py, src, POSE, tmp_path / 'wd')
    assert 'numpy 2.4.6 is installed; mmpose 1.3.2 needs numpy<2' in err
    assert "pip install -e '.[pose]'" in err

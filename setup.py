"""Packaging for mmst, the Stimulative Training plugin for OpenMMLab."""

import os
import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
# What OpenMMLab packages ship as ``<package>/.mim``: mim finds a config by
# name and ``tools/train.py`` / ``tools/test.py`` there (``mim train mmst
# CONFIG``), and MMEngine resolves ``mmst::PATH`` in ``_base_`` to
# ``mmst/.mim/configs/PATH`` of the installed package.
MIM_FILES = ('configs', 'tools', 'model-index.yml')
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc')


# Kept equal to mmst/stack.py (MMENGINE_SPEC, LIBRARY_SPEC, MMCV_SPEC,
# NUMPY_SPEC), which checks them when a config is built; tests/test_packaging
# compares the two. mmcv-lite (classification) and mmcv with its compiled ops
# (det / seg / pose) share the `mmcv` folder: never both in one environment,
# so [cls] is not part of [all].
MMENGINE = 'mmengine>=0.10.0,<1.0.0'
# mmengine imports pkg_resources to resolve `mmpretrain::`-style base configs
SETUPTOOLS = 'setuptools<81'
MMCV_OPS = 'mmcv>=2.0.0rc4,<2.2.0'  # mmdet 3.3 / mmseg 1.2 assert < 2.2.0
TASK_LIBS = {
    # mmpretrain's transforms import torchvision, which it does not declare
    'cls': ['mmpretrain>=1.1.0,<1.3.0', 'torchvision'],
    'det': ['mmdet>=3.1.0,<3.4.0'],
    # mmseg.models imports ftfy and regex, which mmseg does not declare
    'seg': ['mmsegmentation>=1.1.0,<1.3.0', 'ftfy', 'regex'],
    # xtcocotools (mmpose.datasets / evaluation) is built for numpy 1
    'pose': ['mmpose>=1.2.0,<1.4.0', 'numpy<2'],
}
EXTRAS = {
    'cls': TASK_LIBS['cls'] + ['mmcv-lite>=2.0.0,<2.4.0', SETUPTOOLS],
    'det': TASK_LIBS['det'] + [MMCV_OPS, SETUPTOOLS],
    'seg': TASK_LIBS['seg'] + [MMCV_OPS, SETUPTOOLS],
    'pose': TASK_LIBS['pose'] + [MMCV_OPS, SETUPTOOLS],
    'all': sorted(
        {r for v in TASK_LIBS.values() for r in v} | {MMCV_OPS, SETUPTOOLS}
    ),
    # ONNX export and its check (docs: export)
    'deploy': ['onnx', 'onnxruntime'],
    'tests': ['pytest', 'ruff'],
}


def read_version() -> str:
    text = (HERE / 'mmst' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


class BuildWithMim(build_py):
    """``build_py`` that adds ``mmst/.mim``: copies in a wheel (and so in a
    ``pip install .``); in an editable install (``pip install -e .``),
    relative links in the source tree (``mmst/.mim/configs ->
    ../../configs``, git-ignored), so that edits to configs/ show."""

    def run(self):
        super().run()
        if self.editable_mode:
            link_mim_files(HERE / 'mmst' / '.mim')
        else:
            copy_mim_files(Path(self.build_lib) / 'mmst' / '.mim')


def copy_mim_files(mim: Path):
    for name in MIM_FILES:
        src, dst = HERE / name, mim / name
        if not src.exists():
            continue
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=MIM_IGNORE)
        else:
            shutil.copyfile(src, dst)


def link_mim_files(mim: Path):
    for name in MIM_FILES:
        src, dst = HERE / name, mim / name
        if not src.exists():
            continue
        target = os.path.relpath(src, mim)
        if dst.is_symlink() and os.readlink(dst) == target:
            continue
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        mim.mkdir(parents=True, exist_ok=True)
        try:
            dst.symlink_to(target, target_is_directory=src.is_dir())
        except OSError:  # no symbolic links (Windows without the right)
            copy_mim_files(mim)
            return


setup(
    name='mmst',
    version=read_version(),
    description='Stimulative Training (ST / ST++) for OpenMMLab',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['mmst', 'mmst.*']),
    python_requires='>=3.11',
    # What `import mmst` needs; everything task-specific is in the extras.
    # Ranges around the tested stacks (requirements/constraints.txt, cls.txt,
    # stack.txt). torch is not pinned to a build: GPU users bring their own
    # CUDA torch. mmcv is in no install_requires (as in OpenMMLab's own
    # packages): `mim install mmcv` brings a build with ops for the user's
    # torch, which PyPI has only as an sdist to compile.
    install_requires=['torch>=2.0', MMENGINE, 'numpy', 'tqdm'],
    extras_require=EXTRAS,
    cmdclass={'build_py': BuildWithMim},
    zip_safe=False,
)

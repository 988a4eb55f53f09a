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
    python_requires='>=3.8',
    # Ranges around the tested stack (requirements/constraints.txt). torch is
    # not pinned to a build: GPU users bring their own CUDA torch.
    install_requires=[
        'torch>=2.0',
        'mmengine>=0.10.0,<1.0.0',
        'mmcv>=2.0.0,<2.2.0',
        'numpy<2',
    ],
    extras_require={
        'det': ['mmdet>=3.1.0,<3.4.0'],
        'seg': ['mmsegmentation>=1.1.0,<1.3.0'],
        'cls': ['mmpretrain>=1.1.0,<1.3.0'],
        'pose': ['mmpose>=1.2.0,<1.4.0'],
        'tests': ['pytest', 'ruff'],
    },
    cmdclass={'build_py': BuildWithMim},
    zip_safe=False,
)

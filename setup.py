"""Packaging for mmst, the Stimulative Training plugin for OpenMMLab."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version() -> str:
    text = (HERE / 'mmst' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


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
    zip_safe=False,
)

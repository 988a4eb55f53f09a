"""Sphinx configuration of mmst's documentation.

The pages are the Markdown files of this folder (and the repository's
README.md, included by index.md), read by MyST. Build them with

    sphinx-build -W -b html docs docs/_build/html

(``-W``: a warning fails the build; tests/test_docs/test_sphinx_build.py
runs exactly this). ReadTheDocs builds the same through .readthedocs.yaml.
"""

import os.path as osp
import re

_here = osp.dirname(osp.abspath(__file__))
with open(osp.join(_here, '..', 'mmst', 'version.py')) as f:
    release = re.search(r"__version__ = '([^']+)'", f.read()).group(1)
version = release

project = 'mmst'
author = 'the mmst authors'
copyright = 'the mmst authors'

extensions = ['myst_parser']
source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']

# `[text](page.md#section-title)` links between the pages resolve to the
# headings' slugs (GitHub's anchors) down to level 3.
myst_heading_anchors = 3
# Code blocks quote shell sessions, logs and config excerpts, not always
# complete Python: highlight what Pygments can, never guess a language.
highlight_language = 'none'

html_theme = 'alabaster'
html_title = f'mmst {release}'

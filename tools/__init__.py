"""mmst's command-line tools. Each runs as a script (``python
tools/train.py``, from any folder); this file makes ``tools`` a package too,
so that with the repository root on ``sys.path`` a tool is imported by its
name (``importlib.import_module('tools.train')``: the tests'
``tests.test_distributed.common.load_tool``) rather than loaded from its
file. Not installed with mmst (setup.py packages ``mmst`` only)."""

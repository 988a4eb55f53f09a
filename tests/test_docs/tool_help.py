"""Print the ``--help`` of repository scripts, each run as a user runs it
(``python TOOL --help``: the script's own ``__main__`` code and argument
parser), in one process so that torch and the OpenMMLab libraries are
imported once.

    python tests/test_docs/tool_help.py OUT.json tools/train.py ...

(a module run as ``python -m mmst.x`` is given as '-m mmst.x').

writes {tool: help text} to OUT.json; a tool that does not exit with
status 0 on ``--help`` gets the text 'FAILED (...)' and its output.
"""

import contextlib
import io
import json
import os
import runpy
import sys


def tool_help(path: str) -> str:
    out = io.StringIO()
    argv, sys.argv = sys.argv, [path, '--help']
    sys_path = list(sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    status = 'no exit'
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if path.startswith('-m '):  # python -m package.module
                runpy.run_module(path[3:], run_name='__main__')
            else:
                runpy.run_path(path, run_name='__main__')
    except SystemExit as e:
        status = e.code
    except Exception as e:  # reported, not raised: one report per tool
        status = f'{type(e).__name__}: {e}'
    finally:
        sys.argv = argv
        sys.path[:] = sys_path
    if status not in (0, None):
        return f'FAILED (exit {status!r})\n{out.getvalue()}'
    return out.getvalue()


if __name__ == '__main__':
    dest, tools = sys.argv[1], sys.argv[2:]
    helps = {tool: tool_help(tool) for tool in tools}
    with open(dest, 'w') as f:
        json.dump(helps, f, indent=1)

"""Average L2 norm of the logits of the main network and its sub-networks
(ST++ paper, Fig. 4), for classifiers.

    python tools/analysis_tools/logit_magnitude.py CONFIG CHECKPOINT
        [CHECKPOINT2] [--labels CT ST++] [--subnets all | 1,1,1 ...]
        [--space PRESET] [--max-images N] [--bn-recal-images 2000]
        [--no-bn-recal] [--split val|test] [--seed 0] [--out-dir DIR]
        [--non-strict] [--cfg-options k=v ...]

For every network, the raw logits (the head's output before any softmax or
ST++ logit normalisation) of each image of the val (or test) set, their L2
norm averaged over the images; the top-1 accuracy of the same pass is
recorded too. Sub-networks run with BN statistics re-estimated for them
(as in ``loafing.py``; ``--no-bn-recal``: the stored statistics). Writes
``logit_magnitude.json`` and ``logit_magnitude.png`` to ``--out-dir``.
Checkpoints are loaded strictly (``--non-strict``: as in ``loafing.py``).

A command line over :func:`mmst.analysis.run_logit_magnitude`
(``docs/analysis.md``).
"""

import argparse
from typing import Optional, Sequence

from mmst.analysis import (
    check_classifier,  # noqa: F401  (part of the tool's interface)
    logit_table,
    run_logit_magnitude,
    write_logit_magnitude,
)
from mmst.analysis.cli import (
    check_eval_args,
    default_out_dir,
    eval_kwargs,
    run_tool,
    tool_parser,
)

PROG = 'logit_magnitude'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = tool_parser(
        PROG,
        'Average L2 norm of the logits of the main network and its '
        'sub-networks (classification)',
    )
    return check_eval_args(p, p.parse_args(argv), max_checkpoints=2)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    result = run_logit_magnitude(
        args.config,
        args.checkpoints,
        show_progress=not args.no_progress,
        **eval_kwargs(args),
    )
    out_dir = args.out_dir or default_out_dir(PROG, args.config)
    paths = write_logit_magnitude(result, out_dir)
    print(logit_table(result), end='')
    print(f'wrote {paths["json"]}, {paths["png"]}')
    return result


if __name__ == '__main__':
    run_tool(main, PROG)

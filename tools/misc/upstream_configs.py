"""Add README's one-step ST snippet to the ResNet-family configs that the
installed mmpretrain, mmdet, mmseg and mmpose ship, and check each on the
CPU (builds, one ST step with finite losses, ``plain_config`` gives back
the upstream model); write the results as markdown.

    python tools/misc/upstream_configs.py OUT.md [--libraries mmdet mmseg]
        [--per-library 12] [--all-of mmpretrain] [--seed 0]
        [--timeout 300] [--threads 1]

The library code is ``mmst/testing/upstream.py``; what the check does and
the results of a run are in docs/upstream_configs.md. Each config runs in
a forked child with a timeout, so one failure does not stop the sweep.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmst.testing.upstream import LIBRARIES

    parser = argparse.ArgumentParser(
        description="Check README's ST snippet on the installed libraries' "
        'ResNet-family configs.'
    )
    parser.add_argument('out', help='markdown file to write')
    parser.add_argument(
        '--libraries',
        nargs='+',
        choices=LIBRARIES,
        default=list(LIBRARIES),
        metavar='LIB',
        help=f'libraries to search (default: all of {", ".join(LIBRARIES)})',
    )
    parser.add_argument(
        '--per-library',
        type=int,
        default=None,
        metavar='N',
        help='a seeded sample of N distinct models per library (configs '
        'with equal model settings count once); default: all',
    )
    parser.add_argument(
        '--all-of',
        nargs='+',
        choices=LIBRARIES,
        default=[],
        metavar='LIB',
        help='libraries whose distinct models are all checked, whatever '
        '--per-library says',
    )
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the sample (default 0)'
    )
    parser.add_argument(
        '--timeout',
        type=float,
        default=300.0,
        help='seconds per config before it counts as failed (default 300)',
    )
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch threads per check (default 1)',
    )
    parser.add_argument(
        '--readme',
        default=None,
        help="the README whose snippet is added (default: this checkout's)",
    )
    args = parser.parse_args(argv)
    if args.per_library is not None and args.per_library < 1:
        parser.error(
            f'--per-library={args.per_library} is invalid; allowed: N >= 1'
        )
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import torch

    from mmst.testing import upstream

    torch.set_num_threads(args.threads)
    snippet = upstream.readme_snippet(args.readme)
    start = time.perf_counter()
    discovered = upstream.discover(args.libraries)
    discovery = time.perf_counter() - start
    print(f'discovery: {discovery:.0f} s', flush=True)
    results = {}
    for library, found in discovered.items():
        per_library = None if library in args.all_of else args.per_library
        results.update(
            upstream.sweep(
                {library: found},
                per_library,
                args.seed,
                args.timeout,
                log=lambda line: print(line, flush=True),
                snippet=snippet,
            )
        )
    total = time.perf_counter() - start
    command = shlex.join(
        ['python', sys.argv[0]]
        + (sys.argv[1:] if argv is None else list(argv))
    )
    header = [
        f'Command: `{command}`',
        '',
        f'Versions: {upstream.versions()}; {args.threads} torch thread(s). '
        f'Discovery took {discovery:.0f} s, the whole run {total:.0f} s.',
        '',
        '',
    ]
    text = '\n'.join(header) + upstream.results_markdown(discovered, results)
    Path(args.out).write_text(text, encoding='utf-8')
    bad = [
        r
        for checked in results.values()
        for _, r in checked
        if r.outcome == 'failed'
    ]
    print(f'wrote {args.out}: {len(bad)} failed', flush=True)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

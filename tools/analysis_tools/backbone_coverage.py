"""Which mmpretrain backbones mmst can train with ST: build every backbone
mmpretrain registers, find and check its residual stages, and write the
table of docs/backbones.md.

    python tools/analysis_tools/backbone_coverage.py [--out docs/backbones.md]
        [--backbones NAME ...] [--check]

``--check`` compares instead of writing: exit status 1 when the file's
table differs from what the installed mmpretrain and mmst give now.

A command line over :func:`mmst.testing.coverage.coverage_table`.
"""

import argparse
import sys
from typing import Optional, Sequence

from mmst.testing.coverage import coverage_table, markdown, render_page

BEGIN = '<!-- coverage table: generated, do not edit -->'
END = '<!-- end of coverage table -->'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='backbone_coverage', description=__doc__.split('\n\n')[0]
    )
    p.add_argument(
        '--out',
        default='docs/backbones.md',
        help='the page whose table is replaced (default: docs/backbones.md)',
    )
    text = 'only these (default: all registered)'
    p.add_argument('--backbones', nargs='+', help=text)
    text = 'compare with the page instead of writing it (exit 1 if stale)'
    p.add_argument('--check', action='store_true', help=text)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    rows = coverage_table(args.backbones)
    table = markdown(rows)
    with open(args.out) as f:
        page = f.read()
    new = render_page(page, table, BEGIN, END)
    if args.check:
        if new != page:
            print(
                f'{args.out}: the coverage table is stale; regenerate it by '
                'running this tool without --check',
                file=sys.stderr,
            )
            return 1
        print(f'{args.out}: up to date ({len(rows)} backbones)')
        return 0
    with open(args.out, 'w') as f:
        f.write(new)
    print(table.splitlines()[0])
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""The test suite's time: the slowest tests, the total, and its budget.

Reads the JUnit XML reports ``tools/run_tests.sh`` writes (one per pytest
phase: the single-process tests on two workers, then the multi-process
ones) and prints the phases' wall times, the slowest tests and the total.
Exits 1 when the suite's wall time is above ``--budget`` seconds, so that
growth is seen when it happens.

    python benchmarks/suite_time.py [--reports work_dirs/test_reports]
        [--budget 600] [--top 25]

``tools/run_tests.sh`` runs it after pytest (and fails with it when
``MMST_SUITE_BUDGET`` is set); docs/benchmarks.md "Suite time" has the
measured times.
"""

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET = 600.0  # seconds of pytest on the 2-core CPU machine


def read_phase(xml_file: Path) -> dict:
    """One pytest run's JUnit report -> wall time and per-test times."""
    root = ET.parse(xml_file).getroot()
    suite = root if root.tag == 'testsuite' else root.find('testsuite')
    tests = []
    for case in suite.iter('testcase'):
        name = f'{case.get("classname")}::{case.get("name")}'
        tests.append((float(case.get('time', 0.0)), name))
    counts = {k: int(suite.get(k, 0)) for k in ('tests', 'failures', 'errors')}
    counts['skipped'] = int(suite.get('skipped', 0))
    return dict(wall=float(suite.get('time', 0.0)), cases=tests, **counts)


def report(reports: Path, budget: float, top: int) -> int:
    files = sorted(reports.glob('*.xml'))
    if not files:
        print(f'suite_time: no JUnit reports in {reports}', file=sys.stderr)
        return 2
    phases = {f.stem: read_phase(f) for f in files}
    total = sum(p['wall'] for p in phases.values())
    every = sorted(
        ((t, n, phase) for phase, p in phases.items() for t, n in p['cases']),
        reverse=True,
    )
    print(
        f'slowest {min(top, len(every))} of {len(every)} tests (setup + '
        'call + teardown, seconds; [phase]: 1_single_process runs two '
        'workers at once, 2_multiprocess one test at a time):'
    )
    for seconds, name, phase in every[:top]:
        print(f'  {seconds:7.1f}  {name}  [{phase}]')
    for name, p in phases.items():
        print(
            f'phase {name}: {p["wall"]:.0f} s wall, {p["tests"]} tests '
            f'({p["failures"]} failed, {p["errors"]} errors, '
            f'{p["skipped"]} skipped)'
        )
    over = total > budget
    print(
        f'suite: {total:.0f} s of pytest ({total / 60:.1f} min); budget '
        f'{budget:.0f} s: {"OVER BUDGET" if over else "within"}'
    )
    summary = dict(
        total_s=round(total, 1),
        budget_s=budget,
        phases={k: round(p['wall'], 1) for k, p in phases.items()},
        slowest=[[round(s, 1), n, ph] for s, n, ph in every[:top]],
    )
    (reports / 'suite_time.json').write_text(json.dumps(summary, indent=1))
    return 1 if over else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--reports',
        type=Path,
        default=REPO / 'work_dirs' / 'test_reports',
        help='folder of the JUnit XML reports (default: %(default)s)',
    )
    parser.add_argument(
        '--budget',
        type=float,
        default=DEFAULT_BUDGET,
        help='seconds of pytest allowed (default: %(default)s)',
    )
    parser.add_argument('--top', type=int, default=25)
    args = parser.parse_args()
    if args.budget <= 0:
        parser.error(f'--budget={args.budget} is invalid; allowed: > 0')
    return report(args.reports, args.budget, args.top)


if __name__ == '__main__':
    sys.exit(main())

"""README.md and docs/*.md tell the truth about the repository: every path
they name exists, every script they quote exists and accepts the options
they give it (checked against the script's own ``--help``), every
``--cfg-options`` key they give a shipped config is a key of that config,
every ``scope::`` config and ``mmst.`` name resolves, and the cheap
commands run and print what the docs say.

Which quoted commands run here, and why the others do not, is the explicit
list ``NOT_RUN`` below: a command of a new page that no rule covers fails
``test_every_command_is_run_or_has_a_reason`` until it is classified.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from .doc_text import (
    REPO,
    code_blocks,
    commands,
    doc_files,
    dotted_names,
    inline_spans,
    named_paths,
    options,
    path_exists,
    rel,
    scoped_configs,
)

DOCS = doc_files()
DOC_IDS = [rel(p) for p in DOCS]

# Names that look like repository paths but are not meant as files.
NOT_FILES = {
    'configs/x.py': 'a made-up config name inside a quoted error message',
    'docs/_build/html': 'the output folder of the documentation build',
}

# Shell wrappers pass their extra arguments to this Python script.
FORWARDS_TO = {
    'tools/dist_train.sh': 'tools/train.py',
    'tools/slurm_train.sh': 'tools/train.py',
    'tools/dist_test.sh': 'tools/test.py',
    'tools/slurm_test.sh': 'tools/test.py',
    'tools/run_default.sh': 'tools/embedded_default.py',
}
# Scripts whose options are not argparse's: where they are documented.
OWN_OPTIONS = {
    # tools/run_tests.sh passes everything to pytest (-k, -x, ...)
    'tools/run_tests.sh': None,
    # tools/setup_env.sh: the options it names when it refuses one
    'tools/setup_env.sh': 'refusal',
    'benchmarks/gpu_check.sh': set(),
    'benchmarks/gpu_wheels.sh': set(),
}
# Options of other programs that the prose names in inline code; each is
# accepted when the program's name appears in the same file.
EXTERNAL_OPTIONS = {
    '--no-deps': 'pip',
    '--index-url': 'pip',
    '--no-build-isolation': 'pip',
    '--checkpoint': 'mim test',
    '--logdir': 'tensorboard',
    '--launcher': 'tools/train.py',
    '--ntasks': 'srun',
    '--ntasks-per-node': 'srun',
    '--gres': 'srun',
}

# Every quoted command of a repository script either runs in this module
# (RUN) or matches one of these rules, which say why it does not.
RUN = {
    # run: --help of every script (options checked against it)
    '--help': 'test_command_options runs every quoted script with --help',
    'tools/misc/make_tiny_coco.py': 'test_make_tiny_coco_prints_documented_'
    'options (one second)',
    'tools/setup_env.sh': 'test_setup_env_options (refuses an unknown '
    'option before doing anything); the full setup takes 10-20 minutes '
    'and runs in tools/run_tests.sh',
}
NOT_RUN = [
    (
        r'^tools/(train|dist_train|slurm_train)\.(py|sh)$',
        'trains a model: '
        'minutes to days; tests/test_matrix and tests/test_distributed train '
        'every config for two iterations, tests/test_datasets/'
        'test_tiny_imagenet_run.py runs the tiny ImageNet block of '
        'docs/method.md',
    ),
    (
        r'^tools/(test|dist_test|slurm_test)\.(py|sh)$',
        'needs a checkpoint of a training run '
        '(tests/test_distributed/test_dist_tools.py runs the worked example '
        'of docs/distributed.md)',
    ),
    (
        r'^tools/(run_default\.sh|embedded_default\.py)$',
        'the main job: 10-30 minutes on 2 cores (docs/benchmarks.md); only '
        'its --help runs here; tests/test_matrix trains the Fashion-MNIST '
        'configs it uses for two iterations',
    ),
    (r'^tools/run_tests\.sh$', 'the whole test suite'),
    (
        r'^-m mmst\.',
        'an mmst module run as a script (python -m mmst.x): its --help '
        'runs here; what it prints depends on the installed environment',
    ),
    (
        r'^tools/analysis_tools/',
        'needs trained checkpoints; '
        'tests/test_analysis runs the tools on tiny ones',
    ),
    (
        r'^tools/model_converters/extract_subnet\.py$',
        'needs a trained checkpoint; tests/test_analysis runs it',
    ),
    (
        r'^tools/model_converters/st_to_mmpretrain\.py$',
        "needs the authors' "
        'checkpoint; tests/test_converters runs it on a rebuilt one',
    ),
    (
        r'^tools/misc/make_tiny_imagenet\.py$',
        'tests/test_datasets/'
        'test_tiny_imagenet_run.py runs the documented block',
    ),
    (
        r'^tools/misc/upstream_configs\.py$',
        "the sweep over the libraries' configs: about 20 minutes; "
        'tests/test_foundation/test_upstream_configs.py runs the same '
        'check (mmst/testing/upstream.py) on a fixed sample',
    ),
    (
        r'^benchmarks/',
        'measurements of minutes to hours, documented with '
        'their output in docs/benchmarks.md',
    ),
]


def _target(tool: str) -> str:
    return FORWARDS_TO.get(tool, tool)


def _is_python(tool: str) -> bool:
    return tool.endswith('.py') or tool.startswith('-m ')


def _exists(tool: str) -> bool:
    """A repository script, or an importable mmst module."""
    if tool.startswith('-m '):
        import importlib.util

        return importlib.util.find_spec(tool[3:]) is not None
    return (REPO / tool).is_file()


def _all_commands():
    return [c for p in DOCS for c in commands(p)]


@pytest.fixture(scope='module')
def helps(tmp_path_factory) -> Dict[str, str]:
    """``--help`` of every Python script the docs quote, run once."""
    tools = sorted(
        {
            _target(c.tool)
            for c in _all_commands()
            if _is_python(_target(c.tool)) and _exists(_target(c.tool))
        }
    )
    dest = tmp_path_factory.mktemp('tool_help') / 'help.json'
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072')  # no re-exec
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name('tool_help.py'))]
        + [str(dest)]
        + tools,
        cwd=REPO,
        env=env,
        check=True,
        timeout=600,
    )
    return json.loads(dest.read_text())


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_named_paths_exist(doc):
    missing = [
        f'{name} (written {sorted(set(orig))})'
        for name, orig in named_paths(doc).items()
        if name not in NOT_FILES and not path_exists(name)
    ]
    assert not missing, f'{rel(doc)} names paths that do not exist: {missing}'


def _mim_configs(scope: str) -> Path:
    if scope == 'mmst':
        return REPO / 'configs'
    import importlib.util

    spec = importlib.util.find_spec(scope)
    assert spec is not None, f'{scope} is not installed'
    return Path(spec.origin).parent / '.mim' / 'configs'


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_scoped_configs_exist(doc):
    missing = [
        f'{scope}::{path}'
        for scope, path in scoped_configs(doc)
        if not (_mim_configs(scope) / path).is_file()
    ]
    assert not missing, (
        f'{rel(doc)} names configs that do not exist: {missing}'
    )


def _resolves(name: str) -> bool:
    import importlib

    from mmengine.registry import Registry

    import mmst.registry

    parts = name.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
            return True
        except AttributeError:
            break
    # 'mmst.Name[.attr]': a class registered in one of mmst's registries
    for reg in vars(mmst.registry).values():
        if isinstance(reg, Registry):
            reg.import_from_location()  # registration is lazy
        if isinstance(reg, Registry) and parts[1] in reg.module_dict:
            obj = reg.module_dict[parts[1]]
            for attr in parts[2:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_mmst_names_resolve(doc):
    missing = [n for n in dotted_names(doc) if not _resolves(n)]
    assert not missing, (
        f'{rel(doc)} names mmst objects that neither import nor are '
        f'registered: {missing}'
    )


def test_every_command_is_run_or_has_a_reason():
    unclassified = []
    for cmd in _all_commands():
        if cmd.tool in RUN or any(re.search(p, cmd.tool) for p, _ in NOT_RUN):
            continue
        unclassified.append(f'{cmd.doc}:{cmd.line}: {cmd.text}')
    assert not unclassified, (
        'commands quoted in the docs that this module neither runs nor '
        'explains (add them to RUN or NOT_RUN): ' + '\n'.join(unclassified)
    )


def _setup_env_options() -> set:
    """tools/setup_env.sh refuses an unknown option before doing
    anything, naming the ones it has."""
    result = subprocess.run(
        ['bash', str(REPO / 'tools/setup_env.sh'), '--no-such-option'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    allowed = re.search(r'allowed: (.*)\)', result.stderr).group(1)
    return set(allowed.split(', '))


def _accepted(helps: Dict[str, str], tool: str):
    """Options ``tool`` accepts (None: anything, it forwards to pytest)."""
    target = _target(tool)
    if OWN_OPTIONS.get(target) == 'refusal':
        return _setup_env_options()
    if target in OWN_OPTIONS:
        return OWN_OPTIONS[target]
    text = helps[target]
    assert not text.startswith('FAILED'), f'{target} --help: {text}'
    return set(re.findall(r'(?<![\w-])(--[a-z][\w-]*)', text))


def test_command_options(helps):
    """Each quoted command's script exists and accepts its options; an
    option with choices gets one of them."""
    problems = []
    for cmd in _all_commands():
        where = f'{cmd.doc}:{cmd.line}: {cmd.text}'
        if not _exists(cmd.tool):
            problems.append(f'{where}: {cmd.tool} does not exist')
            continue
        accepted = _accepted(helps, cmd.tool)
        if accepted is None:
            continue
        for opt in options(cmd.args):
            bare = re.sub(r'^(\w+=\S*\s+)+', '', cmd.text)  # VAR=... cmd
            if opt == '--checkpoint' and bare.startswith('mim test'):
                continue  # mim's own option
            if opt not in accepted:
                problems.append(f'{where}: {_target(cmd.tool)} has no {opt}')
        # choices, e.g. --methods {CT,ST,...}: the values after the option
        target = _target(cmd.tool)
        if target in helps:
            for opt, choices in re.findall(
                r'(--[\w-]+) \{([^}]+)\}', helps[target]
            ):
                allowed = set(choices.split(','))
                if opt not in cmd.args:
                    continue
                values = []
                for w in cmd.args[cmd.args.index(opt) + 1 :]:
                    if w.startswith(('-', '[')):
                        break
                    values.append(w)
                bad = [v for v in values if v not in allowed and '$' not in v]
                if bad:
                    problems.append(f'{where}: {opt} {bad} not in {allowed}')
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_inline_options(doc, helps):
    """Options named alone in the prose (``--amp``) belong to a script the
    same file names, or to the program named beside them."""
    text = doc.read_text()
    tools = {
        m.group(1)
        for m in re.finditer(
            r'((?:tools|benchmarks)/[\w/.-]+\.(?:py|sh))', text
        )
        if (REPO / m.group(1)).is_file()
    }
    tools |= {'-m ' + m for m in re.findall(r'python -m (mmst[\w.]*)', text)}
    if doc.name == 'README.md' or doc.name == 'distributed.md':
        tools |= {'tools/train.py', 'tools/test.py'}
    accepted = set()
    for tool in tools:
        if _is_python(_target(tool)) and _target(tool) not in helps:
            continue
        acc = (
            _accepted(helps, tool)
            if _target(tool) in helps or tool in OWN_OPTIONS
            else set()
        )
        accepted |= acc or set()
    problems = []
    for span in inline_spans(doc):
        if not span.startswith('--'):
            continue
        for opt in options(span.split()):
            if opt in accepted:
                continue
            program = EXTERNAL_OPTIONS.get(opt)
            if program and program in text:
                continue
            problems.append(f'`{span}`: {opt}')
    assert not problems, (
        f'{rel(doc)} names options that no script it names accepts '
        f'({sorted(tools)}): {problems}'
    )


def test_make_tiny_coco_prints_documented_options(tmp_path):
    """docs/downstream.md's written-out ``"${OPTS[@]}"`` is what
    tools/misc/make_tiny_coco.py prints (with the absolute data root)."""
    text = (REPO / 'docs/downstream.md').read_text()
    block = text.split('Written out, `"${OPTS[@]}"` is:')[1]
    block = re.search(r'```shell\n(.*?)```', block, re.S).group(1)
    documented = shlex.split(block.replace('\\\n', ' '))
    root = tmp_path / 'data' / 'tiny_coco'
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / 'tools/misc/make_tiny_coco.py'),
            str(root),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    printed = shlex.split(out.strip().splitlines()[-1])
    printed = [w.replace(str(root) + '/', 'data/tiny_coco/') for w in printed]
    assert printed == documented


def test_setup_env_options():
    """tools/setup_env.sh names its options when it refuses another (the
    docs' options of it are checked against these)."""
    assert '--data' in _setup_env_options()


def _python_blocks(doc: Path) -> List:
    return [b for b in code_blocks(doc) if b.lang == 'python']


def _config_blocks():
    """Python blocks that are whole configs (they start with ``_base_``)."""
    found = []
    for doc in DOCS:
        for b in _python_blocks(doc):
            body = '\n'.join(
                ln for ln in b.text.splitlines() if not ln.startswith('#')
            ).lstrip()
            if body.startswith('_base_'):
                found.append(b)
    return found


@pytest.mark.parametrize(
    'block', _config_blocks(), ids=lambda b: f'{b.doc}:{b.line}'
)
def test_config_blocks_load(block, tmp_path):
    """Every config the docs quote whole reads with MMEngine (bases
    resolved, ``_base_.x`` references found). A relative ``./`` base is
    resolved in the folder of the configs the page is about."""
    from mmengine.config import Config

    import mmst  # noqa: F401  (the mmst:: scope)

    text = block.text
    m = re.search(r"_base_ = \['\./([\w.-]+\.py)'\]", text)
    if m:
        (hit,) = list((REPO / 'configs').rglob(m.group(1)))
        text = text.replace(f"'./{m.group(1)}'", repr(str(hit)))
    path = tmp_path / 'doc_config.py'
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    assert 'model' in cfg or 'visualizer' in cfg


# Markdown file names the docs mention that are not pages of the docs.
NOT_PAGES = {
    'loafing.md': 'a file tools/analysis_tools/loafing.py writes',
    'menu.md': 'a file tools/analysis_tools/depth_menu.py writes',
}


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_cited_pages_exist(doc):
    """The docs hold what they cite: every ``NAME.md`` they mention is a
    page of this repository (docs/ or its root)."""
    names = set(
        re.findall(r'(?<![\w/.-])([A-Za-z][\w-]*\.md)\b', doc.read_text())
    )
    missing = [
        n
        for n in sorted(names - set(NOT_PAGES))
        if not (REPO / n).is_file() and not (REPO / 'docs' / n).is_file()
    ]
    assert not missing, f'{rel(doc)} cites pages that do not exist: {missing}'


def test_space_presets_table_matches_code():
    """docs/method.md's table of the ResNet-50 spaces is what
    mmst.subnet.SubnetSpace builds."""
    from mmst.subnet.space import (
        INTER_STAGE,
        PRESETS,
        RESNET50_STAGES,
        SubnetSpace,
    )

    text = (REPO / 'docs/method.md').read_text()
    rows = re.findall(
        r'^\| `(default|space\d)`[^|]*'
        r'\| \[([\d, ]+)\] \| ([^|]+) \| (\d+) \|$',
        text,
        re.M,
    )
    # the ResNet-50 table has every preset but the rule for any backbone
    assert sorted(r[0] for r in rows) == sorted(set(PRESETS) - {INTER_STAGE})
    for name, m, depths, count in rows:
        space = SubnetSpace(RESNET50_STAGES, name)
        documented = []
        for cell in re.findall(r'\{([^}]*)\}', depths):
            if '..' in cell:
                lo, hi = map(int, cell.split('..'))
                documented.append(list(range(lo, hi + 1)))
            else:
                documented.append([int(v) for v in cell.split(',')])
        assert documented == space.depth_choices, name
        ms = [int(v) for v in m.split(',')]
        assert [len(d) for d in documented] == ms, name
        n = 1
        for d in documented:
            n *= len(d)
        assert int(count) == n, name


def test_every_page_is_listed():
    """Every page of docs/ is listed in README's "Where to go next" (a user
    starts at the README) and in the Sphinx toctree of docs/index.md."""
    readme = (REPO / 'README.md').read_text()
    more = readme.split('## Where to go next', 1)[1].split('\n## ', 1)[0]
    index = (REPO / 'docs/index.md').read_text()
    toctree = index.split('{toctree}', 1)[1].split('```', 1)[0].split()
    for page in sorted((REPO / 'docs').glob('*.md')):
        if page.name == 'index.md':
            continue
        assert f'](docs/{page.name})' in more, (
            f'docs/{page.name} is not linked in README.md "Where to go next"'
        )
        assert page.stem in toctree, (
            f'docs/{page.name} is not in the toctree of docs/index.md'
        )


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_named_tests_exist(doc):
    """``tests/...py::test_name`` names a test function of that file."""
    missing = []
    for path, name in re.findall(
        r'(tests/[\w/]+\.py)::(\w+)', doc.read_text()
    ):
        source = REPO / path
        if not source.is_file() or not re.search(
            rf'^def {name}\(', source.read_text(), re.M
        ):
            missing.append(f'{path}::{name}')
    assert not missing, f'{rel(doc)} names tests that do not exist: {missing}'


# Top-level config keys MMEngine's Runner reads whether or not a config
# sets them.
RUNNER_KEYS = {'randomness', 'env_cfg', 'log_level', 'load_from', 'resume'}


def _config_of(cmd):
    """The shipped config a command trains or tests: a path, or a file
    name as ``mim`` takes it; None for placeholders."""
    if not cmd.args:
        return None
    first = cmd.args[0]
    if (REPO / first).is_file():
        return REPO / first
    if re.fullmatch(r'[\w.-]+\.py', first):
        hits = list((REPO / 'configs').rglob(first))
        return hits[0] if len(hits) == 1 else None
    return None


def test_cfg_options_keys_exist():
    """In every quoted ``--cfg-options key=value`` for a shipped config,
    the key's parent exists in that config (the leaf may be a new
    argument, e.g. ``dataset.indices``): a misspelt ``model.architecure``
    would otherwise be added silently by MMEngine."""
    from mmengine.config import Config

    import mmst  # noqa: F401

    from .doc_text import cfg_options

    cache, problems = {}, []
    for cmd in _all_commands():
        if _target(cmd.tool) not in ('tools/train.py', 'tools/test.py'):
            continue
        config = _config_of(cmd)
        pairs = cfg_options(cmd.args)
        if config is None or not pairs:
            continue
        if config not in cache:
            cache[config] = Config.fromfile(str(config)).to_dict()
        for key, _ in pairs:
            node = cache[config]
            parts = key.split('.')
            if parts[0] in RUNNER_KEYS and parts[0] not in node:
                continue  # a Runner argument the config leaves at default
            for part in parts[:-1]:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit():
                    node = node[int(part)] if int(part) < len(node) else None
                else:
                    node = None
                if node is None:
                    problems.append(
                        f'{cmd.doc}:{cmd.line}: {key}: {part!r} is not '
                        f'in {rel(config)}'
                    )
                    break
    assert not problems, '\n'.join(problems)


def test_requirements_name_existing_files():
    """The requirement files' comments name files of this repository:
    each ``NAME.ext`` they mention exists beside them, at the repository
    root, or (a bare script name) somewhere under tools/ or tests/."""
    missing = []
    files = sorted((REPO / 'requirements').glob('*.txt'))
    files.append(REPO / 'docs/requirements.txt')
    for req in files:
        for name in set(
            re.findall(
                r'(?<![\w./-])([\w./-]+\.(?:txt|sh|py|md|yml|yaml|toml))\b',
                req.read_text(),
            )
        ):
            here = [req.parent / name, REPO / name]
            if '/' not in name:
                here += list(REPO.glob(f'tools/**/{name}'))
                here += list(REPO.glob(f'tests/**/{name}'))
            if not any(p.exists() for p in here):
                missing.append(f'{rel(req)}: {name}')
    assert not missing, missing


# Words of this project's development machinery that mean nothing to a
# user (the docs once told users to pass files with a "device tool").
INTERNAL_TERMS = [
    r'device tool',
    r'\$OUT\b',
    r'\bcarry \[',
    r'METHOD\.md',
    r'shared folder',
    r'lent (?:a|the) device',
]


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_docs_speak_to_users(doc):
    text = doc.read_text()
    found = [t for t in INTERNAL_TERMS if re.search(t, text)]
    assert not found, f'{rel(doc)} uses internal terms: {found}'


# Lab-notebook asides: when or under which load something was measured,
# on which state of the code, written into the prose beside current facts.
# A measurement says what it was run with (command, machine, threads),
# not the day it was run.
DATED_ASIDES = [
    r'\b20\d\d-[01]\d-[0-3]\d\b',  # a date
    r'\bload(?: average)?s? (?:of |about )?\d',  # "at load average 4"
    r'\b(?:earlier|current|older) tree\b',
    r'\bthis session\b',
]


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_no_dated_asides(doc):
    """The prose states current facts; quoted output (code blocks) may
    hold the dates a program prints."""
    from .doc_text import prose

    text = prose(doc)
    found = [
        m.group(0)
        for pattern in DATED_ASIDES
        for m in re.finditer(pattern, text)
    ]
    assert not found, f'{rel(doc)} has dated asides: {found}'


def test_readme_is_a_first_screen():
    """README.md is where a user starts: short, in the order a user needs
    it (what ST does, install, ST on their own config, the demo, tests,
    where to go next), the ST lines early; the rest lives in docs/."""
    readme = (REPO / 'README.md').read_text()
    lines = readme.splitlines()
    assert len(lines) <= 150, f'README.md has {len(lines)} lines (<= 150)'
    sections = re.findall(r'^## (.+)$', readme, re.M)
    assert sections == [
        'Install',
        'Add ST to your own config',
        'The demo',
        'Tests',
        'Where to go next',
    ], sections
    marker = next(i for i, ln in enumerate(lines) if 'st-snippet' in ln)
    assert marker < 60, f'the ST lines start at line {marker + 1}'
    # the paper's numbers are labelled as the paper's
    for number in re.findall(r'\b\d\d\.\d%', readme):
        line = next(ln for ln in lines if number in ln)
        around = '\n'.join(
            lines[lines.index(line) - 2 : lines.index(line) + 3]
        )
        assert 'paper' in around, f'{number} is not labelled: {around}'


def _main_job_rows(text: str) -> Dict[str, str]:
    """{method: 'main / [1,1,1] / [2,2,2]'} of a printed main-job table."""
    return {
        m.group(1): ' / '.join(m.group(2, 3, 4))
        for m in re.finditer(
            r'^\| (CT|ST\+\+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$',
            text,
            re.M,
        )
    }


def test_readme_demo_output_is_a_measured_run():
    """The main job's output the README shows is one of the runs of
    docs/benchmarks.md's table, where its spread across machines and
    thread counts is (a result lives in one place, with its command)."""
    shown = _main_job_rows((REPO / 'README.md').read_text())
    assert set(shown) == {'CT', 'ST++'}, shown
    bench = (REPO / 'docs/benchmarks.md').read_text()
    section = bench.split('## The main job on Fashion-MNIST', 1)[1]
    section = section.split('\n## ', 1)[0]
    assert 'tools/run_default.sh' in section
    runs = [
        cells
        for cells in (
            [c.strip() for c in ln.strip().strip('|').split('|')]
            for ln in section.splitlines()
            if ln.startswith('| ')
        )
        if len(cells) > 2
    ]
    assert any(
        cells[1] == shown['CT'] and cells[2] == shown['ST++'] for cells in runs
    ), (shown, runs)
    assert any(cells[0].startswith('spread') for cells in runs), runs

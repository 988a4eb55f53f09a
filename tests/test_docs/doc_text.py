"""Reading README.md and docs/*.md as a user reads them: fenced code
blocks, inline code spans, the commands they quote (with backslash
continuations joined), the repository paths and the command-line options
they name.

Every Markdown file of docs/ is read, whoever added it, so a new page's
commands and paths are checked like the old ones.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]


def doc_files() -> List[Path]:
    """README.md and every docs/*.md, in a stable order."""
    return [REPO / 'README.md'] + sorted((REPO / 'docs').glob('*.md'))


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@dataclass
class Block:
    """A fenced code block: its file, first line number, info string and
    text (indentation of an indented fence removed)."""

    doc: str
    line: int
    lang: str
    text: str


_FENCE = re.compile(r'^(\s*)(```+|~~~+)\s*([^\s`]*)')


def code_blocks(path: Path) -> List[Block]:
    blocks = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3)
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(
                line[len(indent) :] if line.startswith(indent) else line
            )
            i += 1
        blocks.append(Block(rel(path), start, lang, '\n'.join(body) + '\n'))
        i += 1
    return blocks


def prose(path: Path) -> str:
    """The text outside fenced code blocks."""
    out, inside, fence = [], False, ''
    for line in path.read_text().splitlines():
        m = _FENCE.match(line)
        if not inside and m:
            inside, fence = True, m.group(2)
            continue
        if inside and line.strip().startswith(fence):
            inside = False
            continue
        if not inside:
            out.append(line)
    return '\n'.join(out)


def inline_spans(path: Path) -> List[str]:
    """Inline code spans of the prose (table cells included); a span may
    wrap over a line break, as Markdown allows."""
    text = prose(path)
    spans = re.findall(r'(?<!`)`([^`]+?)`(?!`)', text, re.S)
    return [' '.join(s.split()) for s in spans]


# ---------------------------------------------------------------- commands

SHELL_LANGS = ('bash', 'shell', 'sh', 'console', '')


@dataclass
class Command:
    """One quoted command line of a repository script."""

    doc: str
    line: int
    text: str  # continuations joined, comment stripped
    tool: str  # path of the script (tools/train.py) or '-m mmst.module'
    args: List[str]


_TOOL = re.compile(r'^(?:\./)?((?:tools|benchmarks)/[\w/.-]+\.(?:py|sh))$')


def _strip_comment(line: str) -> str:
    # a '#' that starts a word begins a comment (no quoted '#' in the docs)
    return re.split(r'(?:^|\s)#', line, maxsplit=1)[0]


def _logical_lines(text: str) -> Iterator[Tuple[int, str]]:
    """(offset of the first line, line) with backslash continuations
    joined and comments stripped."""
    current, first = '', 0
    for n, raw in enumerate(text.splitlines()):
        line = _strip_comment(raw)
        if not current:
            first = n
        if line.rstrip().endswith('\\'):
            current += line.rstrip()[:-1] + ' '
            continue
        current += line
        if current.strip():
            yield first, current.strip()
        current = ''
    if current.strip():
        yield first, current.strip()


def _words(line: str) -> List[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def parse_command(
    doc: str, line: int, text: str, mim_tools: bool = True
) -> Optional[Command]:
    """The repository script ``text`` runs, with its arguments, or None.

    Understands ``python X.py``, ``bash X.sh``, ``X.sh``, leading
    ``VAR=value`` assignments (also in ``[...]`` as usage lines write
    optional ones), ``eval "..."`` and ``mim train|test mmst`` (which runs
    tools/train.py / tools/test.py)."""
    words = _words(text)
    while words and re.match(r'^\[?[A-Z_][A-Z0-9_]*=', words[0]):
        words = words[1:]
    if len(words) >= 3 and words[0] == 'mim' and words[2] == 'mmst':
        if mim_tools and words[1] in ('train', 'test'):
            return Command(doc, line, text, f'tools/{words[1]}.py', words[3:])
        return None
    while words and words[0] in ('python', 'python3', 'bash', 'exec', 'sh'):
        words = words[1:]
    if not words:
        return None
    # python -m mmst.x: an mmst module run as a script
    if len(words) >= 2 and words[0] == '-m' and words[1].startswith('mmst'):
        return Command(doc, line, text, '-m ' + words[1], words[2:])
    m = _TOOL.match(words[0])
    if not m:
        return None
    return Command(doc, line, text, m.group(1), words[1:])


def commands(path: Path) -> List[Command]:
    """Every command of a repository script quoted in ``path``: lines of
    shell code blocks and inline spans that start with one."""
    found = []
    for block in code_blocks(path):
        if block.lang not in SHELL_LANGS:
            continue
        for offset, text in _logical_lines(block.text):
            # a command after a shell prompt or in $( ... )
            for part in re.split(r'\$\(|&&|;|\|', text):
                cmd = parse_command(block.doc, block.line + offset, part)
                if cmd:
                    found.append(cmd)
    for span in inline_spans(path):
        cmd = parse_command(rel(path), 0, span)
        if cmd:
            found.append(cmd)
    return found


def options(words: List[str]) -> List[str]:
    """Long options among ``words``: ``--x``, ``--x=v``, ``[--x`` and
    ``--x]`` (usage lines) give ``--x``; ``--`` alone and placeholders
    are skipped."""
    out = []
    for w in words:
        for m in re.finditer(r'(?:^|[\[(|\s])(--[a-z][\w-]*)', w):
            out.append(m.group(1))
    return out


def cfg_options(words: List[str]) -> List[Tuple[str, str]]:
    """``key=value`` pairs after ``--cfg-options``."""
    pairs, on = [], False
    for w in words:
        if w == '--cfg-options':
            on = True
            continue
        if w.startswith('-'):
            on = False
            continue
        if on and '=' in w and re.match(r'^[\w.]+=', w):
            key, value = w.split('=', 1)
            pairs.append((key, value))
    return pairs


# ------------------------------------------------------------------ paths

# Top-level folders of the repository whose files the docs name.
PATH_ROOTS = (
    'configs',
    'tools',
    'docs',
    'benchmarks',
    'tests',
    'mmst',
    'requirements',
)
_ROOTS = '|'.join(PATH_ROOTS)
_PATH = re.compile(r'(?<![\w/.:-])((?:' + _ROOTS + r')/[\w./{},*+-]*[\w/}*])')
_TOP_FILES = re.compile(
    r'(?<![\w/.-])(README\.md|setup\.py|pyproject\.toml|model-index\.yml|'
    r'MANIFEST\.in|\.readthedocs\.yaml|\.ci/run|LICENSE)(?![\w.])'
)


def _brace_expand(pattern: str) -> List[str]:
    m = re.search(r'\{([^{}]*)\}', pattern)
    if not m:
        return [pattern]
    out = []
    for alt in m.group(1).split(','):
        out += _brace_expand(pattern[: m.start()] + alt + pattern[m.end() :])
    return out


def _is_placeholder(path: str) -> bool:
    """Paths with a placeholder segment (``FOLDER/FILE.py``, ``...``, a
    ``<name>``) name a pattern, not a file."""
    segs = path.replace('.py', '').split('/')
    return (
        '...' in path
        or '<' in path
        or any(re.fullmatch(r'[A-Z][A-Z0-9_]+', s) for s in segs)
    )


def named_paths(path: Path) -> Dict[str, List[str]]:
    """Repository paths named in ``path`` (code blocks and prose), brace
    patterns expanded: {expanded path or glob: [original spelling]}."""
    text = path.read_text()
    found: Dict[str, List[str]] = {}
    for m in list(_PATH.finditer(text)) + list(_TOP_FILES.finditer(text)):
        name = m.group(1).rstrip('.')
        name = name.split('::')[0]
        if _is_placeholder(name):
            continue
        for expanded in _brace_expand(name):
            found.setdefault(expanded, []).append(name)
    return found


def path_exists(name: str) -> bool:
    name = name.rstrip('/')
    if any(c in name for c in '*?['):
        return any(REPO.glob(name))
    return (REPO / name).exists()


def scoped_configs(path: Path) -> List[Tuple[str, str]]:
    """``scope::FOLDER/FILE.py`` config names: [(scope, relative path)]."""
    out = []
    for m in re.finditer(
        r'(?<![\w])(mmst|mmpretrain|mmdet|mmseg|mmpose)::([\w./-]+\.py)',
        path.read_text(),
    ):
        if not _is_placeholder(m.group(2)):
            out.append((m.group(1), m.group(2)))
    return out


def dotted_names(path: Path) -> List[str]:
    """``mmst.x.y`` names in inline code spans and code blocks (not file
    names)."""
    text = path.read_text()
    names = re.findall(
        r'(?<![\w./:-])(mmst(?:\.[A-Za-z_]\w*)+)(?![\w/(-])', text
    )
    return sorted(
        {n for n in names if not re.search(r'\.(py|md|pth|yml|txt)$', n)}
    )

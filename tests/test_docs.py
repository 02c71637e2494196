"""The docs cannot drift from the command line.

Pages: README.md itself, every ``docs/*.md`` that README.md links as ``[text](docs/NAME.md)``, and
every page that ``docs/index.md`` links as ``[text](NAME.md)``. For each page, every ``quadhil ...`` command in a
fenced code block (a line, or a ``&&``/``;``/``|`` segment of one, starting with ``quadhil``,
``$ quadhil``, ``.venv/bin/quadhil`` or ``python -m quadhil``) is checked against the real CLI:

(a) its subcommand path exists: ``python -m quadhil PATH --help`` exits 0 (one subprocess per
    distinct path, run in parallel, cached); a word after a command that has sub-commands must be
    one of them;
(b) every ``--flag`` written in the command appears in that help text.

Nothing is ever run but ``--help``: commands that need hardware or minutes of training are only
checked, never executed. ``make TARGET`` lines meant for quadhil's own Makefile (no ``cd`` before
them in the block, no ``-C``) must name targets that the Makefile defines. Relative links between
docs pages must resolve.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_LINK = re.compile(r"\]\((docs/[A-Za-z0-9_.-]+\.md)(?:#[^)]*)?\)")
INDEX_LINK = re.compile(r"\]\(([A-Za-z0-9_.-]+\.md)(?:#[^)]*)?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][A-Za-z0-9-]*")
HELP_TIMEOUT_S = 60


# -- collecting pages and commands -------------------------------------------------------------
def readme_pages() -> list[str]:
    """docs/NAME.md paths that README.md links, in order, without duplicates."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return list(dict.fromkeys(README_LINK.findall(text)))


def index_pages() -> list[str]:
    """docs/NAME.md paths that docs/index.md links (empty if there is no index)."""
    index = DOCS / "index.md"
    if not index.exists():
        return []
    return list(dict.fromkeys(f"docs/{name}" for name in INDEX_LINK.findall(index.read_text(encoding="utf-8"))))


def listed_pages() -> list[str]:
    """README.md, and every page it or docs/index.md lists (docs/index.md itself included)."""
    pages = ["README.md"] + readme_pages() + index_pages()
    if (DOCS / "index.md").exists():
        pages.append("docs/index.md")
    return list(dict.fromkeys(pages))


def code_blocks(text: str) -> list[list[tuple[int, str]]]:
    """Lines (1-based number, text) of each fenced code block."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append((number, line))
    return blocks


def logical_lines(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join backslash continuations; keep the number of the first line."""
    out, pending, start = [], "", 0
    for number, line in block:
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def segments(line: str) -> list[list[str]]:
    """Shell words of each command on a line: comment dropped, split at a free-standing &&, ||,
    ;, | or & (``none|float16`` inside a synopsis stays one word)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # unbalanced quotes: fall back to a plain split
        tokens = line.split("#", 1)[0].split()
    out, current = [], []
    for tok in tokens:
        if tok in ("&&", "||", ";", "|", "&"):
            if current:
                out.append(current)
            current = []
        else:
            current.append(tok[:-1] if tok.endswith(";") else tok)
    if current:
        out.append(current)
    return out


@dataclass(frozen=True)
class DocCommand:
    page: str
    line: int
    text: str  # the command as written (one segment, continuations joined)
    words: tuple[str, ...]  # tokens after the program name

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class MakeCommand:
    page: str
    line: int
    text: str
    targets: tuple[str, ...]


def page_commands(page: str) -> tuple[list[DocCommand], list[MakeCommand]]:
    """The quadhil and (root Makefile) make commands in a page's code blocks."""
    text = (REPO / page).read_text(encoding="utf-8")
    commands, makes = [], []
    for block in code_blocks(text):
        changed_dir = False
        for number, line in logical_lines(block):
            for tokens in segments(line):
                if tokens and tokens[0] == "$":
                    tokens = tokens[1:]
                if not tokens:
                    continue
                if tokens[0] in ("cd", "pushd"):
                    changed_dir = True
                    continue
                joined = " ".join(tokens)
                if re.fullmatch(r"(?:\S*/)?quadhil", tokens[0]):
                    commands.append(DocCommand(page, number, joined, tuple(tokens[1:])))
                elif re.fullmatch(r"(?:\S*/)?python3?", tokens[0]) and tokens[1:3] == ["-m", "quadhil"]:
                    commands.append(DocCommand(page, number, joined, tuple(tokens[3:])))
                elif tokens[0] == "make" and not changed_dir and "-C" not in tokens:
                    targets = tuple(t for t in tokens[1:] if not t.startswith("-") and "=" not in t)
                    makes.append(MakeCommand(page, number, joined, targets))
    return commands, makes


# -- the CLI's help, per subcommand path -------------------------------------------------------
_HELP: dict[tuple[str, ...], subprocess.CompletedProcess] = {}


def _run_help(path: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="1000", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "quadhil", *path, "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=HELP_TIMEOUT_S)


def help_for(paths: list[tuple[str, ...]]) -> None:
    """Fill the cache for ``paths`` (in parallel; each is one ``--help`` subprocess)."""
    todo = [p for p in dict.fromkeys(paths) if p not in _HELP]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=min(6, len(todo))) as pool:
        for path, result in zip(todo, pool.map(_run_help, todo)):
            _HELP[path] = result


def subcommands(help_text: str) -> set[str] | None:
    """Names of the sub-commands a help text offers, or None if it takes none.

    argparse shows sub-parsers as ``METAVAR ...`` in the usage line and lists each choice
    indented by four spaces under "positional arguments"."""
    usage = help_text.split("\n\n", 1)[0]
    if not re.search(r"\b[A-Z][A-Z_]*\s+\.\.\.", usage):
        return None
    section = help_text.split("positional arguments:", 1)[-1].split("\n\n", 1)[0]
    return {m.group(1) for m in re.finditer(r"^    (?! )(\S+)", section, flags=re.M)}


def resolve(commands: list[DocCommand]) -> dict[DocCommand, tuple[tuple[str, ...], str | None]]:
    """Each command's subcommand path, and an error if a word is not a sub-command."""
    state = {c: ((), None) for c in commands}
    open_ = set(commands)
    while open_:
        help_for([state[c][0] for c in open_])
        nxt = set()
        for c in open_:
            path, _ = state[c]
            res = _HELP[path]
            if res.returncode != 0:
                state[c] = (path, f"`python -m quadhil {' '.join(path)} --help` exited {res.returncode}: "
                                  f"{res.stderr.strip()[-300:]}")
                continue
            subs = subcommands(res.stdout)
            word = c.words[len(path)] if len(c.words) > len(path) else None
            if subs is None or word is None or word.startswith("-"):
                continue  # a leaf, or help/flags of a group
            if word not in subs:
                state[c] = (path, f"{word!r} is not a sub-command of `quadhil {' '.join(path)}` "
                                  f"(it has: {', '.join(sorted(subs))})")
                continue
            state[c] = (path + (word,), None)
            nxt.add(c)
        open_ = nxt
    return state


# -- tests ---------------------------------------------------------------------------------------
PAGES = listed_pages()


def test_readme_lists_the_docs_pages():
    """README.md links docs/index.md and every page that docs/index.md lists."""
    linked = readme_pages()
    assert linked, ("README.md links no docs page: add a list of links of the form "
                    "`- [Title](docs/NAME.md): one line` (docs/index.md lists them all)")
    missing = [p for p in ["docs/index.md", *index_pages()] if p not in linked]
    assert not missing, f"README.md does not link: {', '.join(missing)}"


def test_every_listed_page_exists():
    missing = [p for p in PAGES if not (REPO / p).is_file()]
    assert not missing, f"docs pages listed in README.md or docs/index.md but missing: {', '.join(missing)}"


def test_index_lists_every_docs_page():
    """A page nobody links is a page nobody reads: docs/index.md lists every docs/*.md."""
    assert (DOCS / "index.md").is_file(), "docs/index.md is missing"
    listed = set(index_pages())
    unlisted = sorted(f"docs/{p.name}" for p in DOCS.glob("*.md") if p.name != "index.md"
                      and f"docs/{p.name}" not in listed)
    assert not unlisted, f"docs/index.md does not list: {', '.join(unlisted)}"


@pytest.mark.parametrize("page", [p for p in PAGES if (REPO / p).is_file()])
def test_relative_links_resolve(page):
    text = (REPO / page).read_text(encoding="utf-8")
    base = (REPO / page).parent
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # URL or in-page anchor
        path = target.split("#", 1)[0]
        if path and not (base / path).exists():
            broken.append(target)
    assert not broken, f"{page}: links to missing files: {', '.join(broken)}"


def _all_commands() -> tuple[list[DocCommand], list[MakeCommand]]:
    commands, makes = [], []
    for page in PAGES:
        if (REPO / page).is_file():
            c, m = page_commands(page)
            commands += c
            makes += m
    return commands, makes


@pytest.fixture(scope="module")
def resolved():
    commands, _ = _all_commands()
    return resolve(commands)


def test_docs_show_quadhil_commands():
    """The extraction itself works: the pages together show commands (guards a broken regex)."""
    commands, _ = _all_commands()
    assert len(commands) >= 10, f"only {len(commands)} quadhil commands found in {PAGES}"


def test_every_documented_command_exists_and_takes_its_flags(resolved):
    problems = []
    for cmd, (path, error) in resolved.items():
        if error:
            problems.append(f"{cmd.where}: `{cmd.text}`: {error}")
            continue
        help_text = _HELP[path].stdout
        known = set(FLAG.findall(help_text)) | {"--help"}
        unknown = [f for f in dict.fromkeys(FLAG.findall(" ".join(cmd.words))) if f not in known]
        if unknown:
            problems.append(f"{cmd.where}: `{cmd.text}`: `quadhil {' '.join(path)}` has no "
                            f"{', '.join(unknown)}")
    assert not problems, "docs disagree with the CLI:\n" + "\n".join(problems)


def test_make_targets_in_docs_exist():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, flags=re.M))
    _, makes = _all_commands()
    problems = [f"{m.page}:{m.line}: `{m.text}`: "
                f"no target {t!r} in Makefile" for m in makes for t in m.targets if t not in targets]
    assert not problems, "\n".join(problems)


# -- the extractor, on known text ----------------------------------------------------------------
def test_extractor_reads_prompts_continuations_comments_and_chains(tmp_path, monkeypatch):
    page = tmp_path / "p.md"
    page.write_text(
        "text quadhil fly --not-in-a-block\n"
        "```sh\n"
        "$ quadhil fly --model m.tflite \\\n"
        "    --link udp://127.0.0.1:19850   # --comment-flag\n"
        "quadhil sitl crazyflie --port 0 &\n"
        "python -m quadhil bench sim --json | tail -1\n"
        "make test && quadhil eval runs/x --json\n"
        "cd elsewhere && make px4_sitl none_iris\n"
        "echo quadhil is not a command here\n"
        "```\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    commands, makes = page_commands("p.md")
    assert [c.words for c in commands] == [
        ("fly", "--model", "m.tflite", "--link", "udp://127.0.0.1:19850"),
        ("sitl", "crazyflie", "--port", "0"),
        ("bench", "sim", "--json"),
        ("eval", "runs/x", "--json"),
    ]
    assert [c.line for c in commands] == [3, 5, 6, 7]
    assert [m.targets for m in makes] == [("test",)]


def test_subcommand_parser_reads_argparse_help():
    group = ("usage: quadhil sitl [-h] TWIN ...\n\npositional arguments:\n  TWIN\n    crazyflie\n"
             "              Crazyflie twin\n    px4       PX4 twin\n\noptions:\n  -h, --help  x\n")
    leaf = "usage: quadhil export [-h] --out OUT run\n\npositional arguments:\n  run   a run\n"
    assert subcommands(group) == {"crazyflie", "px4"}
    assert subcommands(leaf) is None

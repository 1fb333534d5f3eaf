"""The documentation stays inside the repository: every link resolves, every cited document exists.

Every Markdown file of the repository is checked: the tracked ones and new ones git does not ignore
(``git ls-files``), or, without git (an unpacked source archive), every ``*.md`` outside the folders
``.gitignore`` names.

- Every relative link names a file inside the repository, and a ``#anchor`` names a heading of that
  file (GitHub's heading ids).
- Every repository path the docs quote in backticks (``bench/metrics.py``) exists.
- No file points to a place outside the repository (``../shared``, ``/work/``, ``/tmp/``, ``/root/``,
  ``/home/``, design notes) or cites an issue-tracker number (``issue 15``, ``(#15)``): a reader who
  clones the repository has neither; say what the work was instead.
- ``README.md`` stays at most 150 lines, and its Quick start's commands are the ones CI runs verbatim
  (``.ci/run``).
- Code docstrings and comments cite a ``*.md`` document only where it exists: by repository path
  (``docs/conventions.md``, ``results/README.md``), or by bare name under ``docs/``. A bare name the
  code itself writes (``index.md`` of a report) is an output, not a citation.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(ROOT.glob("docs/*.md"))
CODE_DIRS = ("bench", "datasets", "architectures", "tests", "benchmarks", "scripts")
README_MAX_LINES = 150
# Folders .gitignore leaves out (used only where git cannot list the files).
IGNORED_PARTS = {".git", ".tox", ".venv", "venv", "build", "dist", "node_modules", "__pycache__"}
IGNORED_DIRS = ("results/runs/", "results/cache/")


def _git_markdown() -> list[Path] | None:
    """Tracked ``*.md`` files plus new ones git does not ignore; None where ROOT is not a git checkout."""
    try:
        top = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if Path(top).resolve() != ROOT:
            return None
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.md"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file()})


def _globbed_markdown() -> list[Path]:
    """Every ``*.md`` outside the folders .gitignore names (generated reports except the two examples)."""
    out = []
    for path in ROOT.rglob("*.md"):
        name = path.relative_to(ROOT).as_posix()
        parts = path.relative_to(ROOT).parts
        if IGNORED_PARTS & set(parts) or any(p.endswith(".egg-info") for p in parts):
            continue
        if name.startswith(IGNORED_DIRS):
            continue
        if parts[0] == "reports" and len(parts) > 2 and not parts[1].startswith("example-"):
            continue
        out.append(path)
    return sorted(out)


MARKDOWN = _git_markdown() or _globbed_markdown()

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^()\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")
QUOTED_PATH = re.compile(
    r"`((?:bench|datasets|architectures|tests|benchmarks|scripts|docs)/[\w./-]+\.(?:py|md|yaml|sh))`"
)
CITED_MD = re.compile(r"[\w./-]*\w\.md\b")
# A place outside the checkout: a sibling folder, a machine's own paths, design notes nobody else has.
OUTSIDE = re.compile(
    r"(?:\.\./)+shared\b|(?<![\w.:/~-])/(?:work|tmp|root|home|Users)/|design/|design notes", re.IGNORECASE
)
# An issue-tracker reference: "issue 15", "issue #15", "issue-15", "issues 14 and 15", "pull request 3",
# "PR #3", "gh-15", and a bare "#15" where it is used as a reference: "(#15)", "[#15]", "see #15",
# "fixes #15", "after #15". A heading ("# Title"), a URL fragment ("/#2018"), a colour ("#1f77b4") or a
# rank ("ranked #1") is not one.
TRACKER = re.compile(
    r"(?i:\b(?:issue|ticket|pull request)s?[ -]?#?\d+\b)"
    r"|\bPR ?#\d+\b|\bgh-\d+\b"
    r"|(?:[(\[]|(?i:\b(?:see|fix|fixes|fixed|close|closes|closed|resolve|resolves|resolved|refs?|in|after|before"
    r"|since|per)\s+))#\d+\b(?![\w-])"
)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(path: Path) -> str:
    """The file's text without fenced code blocks (commands and code are not links)."""
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped (hyphens and underscores kept),
    spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading id of a markdown file, with GitHub's ``-1``, ``-2`` suffixes for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


LINKS = [(rel(md), target) for md in MARKDOWN if md.exists() for target in links(md)]


def test_the_documentation_set_is_there() -> None:
    names = {p.name for p in DOCS}
    assert {
        "conventions.md",
        "protocols.md",
        "architectures.md",
        "execution.md",
        "extending.md",
        "datasets.md",
    } <= names
    readme = links(ROOT / "README.md")
    for doc in DOCS:
        assert f"docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"


@pytest.mark.parametrize("source,target", LINKS, ids=[f"{s}->{t}" for s, t in LINKS])
def test_relative_link_resolves_inside_the_repository(source: str, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    here = ROOT / source
    dest = (here.parent / file_part).resolve() if file_part else here
    assert dest.is_relative_to(ROOT), f"{source}: link {target!r} leaves the repository"
    assert dest.exists(), f"{source}: link {target!r} names {dest.relative_to(ROOT)}, which does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in anchors(dest), (
            f"{source}: link {target!r}: no heading #{anchor} in "
            f"{rel(dest)} (headings: {', '.join(sorted(anchors(dest)))})"
        )


def test_paths_quoted_in_the_docs_exist() -> None:
    missing = [
        f"{rel(md)}: `{p}`"
        for md in MARKDOWN
        if md.exists()
        for p in QUOTED_PATH.findall(prose(md))
        if not (ROOT / p).exists()
    ]
    assert not missing, "paths quoted in the docs that do not exist:\n" + "\n".join(missing)


def matching_lines(paths: list[Path], pattern: re.Pattern[str]) -> list[str]:
    """``path:line: text`` of every line (code blocks included) where ``pattern`` matches."""
    return [
        f"{rel(md)}:{n}: {line.strip()}"
        for md in paths
        if md.exists()
        for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]


def test_every_markdown_file_is_checked() -> None:
    names = {rel(md) for md in MARKDOWN}
    expected = {"README.md", "results/README.md", "benchmarks/README.md", "reports/README.md"}
    expected |= {rel(doc) for doc in DOCS}
    assert expected <= names, f"not checked: {sorted(expected - names)}"


def test_docs_point_to_nothing_outside_the_repository() -> None:
    """No design notes, sibling folders of the checkout or machine paths: a user who clones the
    repository has none of them (name a placeholder such as DATA, the user's data root, instead)."""
    hits = matching_lines(MARKDOWN, OUTSIDE)
    assert not hits, "references to places outside the repository:\n" + "\n".join(hits)


def test_docs_cite_no_issue_tracker_numbers() -> None:
    """A tracker number means nothing to a reader of a clone: say what the work was."""
    hits = matching_lines(MARKDOWN, TRACKER)
    assert not hits, "issue-tracker references (say what the work was instead):\n" + "\n".join(hits)


def test_the_readme_is_short() -> None:
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, (
        f"README.md has {n} lines (at most {README_MAX_LINES}): move details to docs/ and link them"
    )


def fenced_blocks(text: str) -> list[list[str]]:
    """The non-empty lines of each fenced code block of a Markdown text."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            if current is None:
                current = []
            else:
                blocks.append([x.strip() for x in current if x.strip()])
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def quick_start_commands(readme: str) -> list[str]:
    """The commands of the README's "Quick start" section: one fenced block each, one line each."""
    m = re.search(r"^## Quick start\s*$(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert m, "README.md has no '## Quick start' section"
    blocks = fenced_blocks(m.group(1))
    assert all(len(b) == 1 for b in blocks), f"each Quick start block holds one command: {blocks}"
    return [b[0] for b in blocks]


def script_commands(script: str) -> set[str]:
    """The command lines of a shell script (comments and blank lines left out)."""
    return {line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")}


def test_the_readme_commands_are_the_ones_ci_runs() -> None:
    """The two commands a newcomer meets are run verbatim, in a fresh virtual environment, by CI."""
    commands = quick_start_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) == 2, f"the README's Quick start should show two commands, shows {commands}"
    ci = script_commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    missing = [c for c in commands if c not in ci]
    assert not missing, f".ci/run does not run these README commands verbatim: {missing}"


def commentary(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python file."""
    src = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc


def written_names(files: list[Path]) -> set[str]:
    """``*.md`` file names that appear as string literals in the code: files it writes, not documents."""
    out = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".md"):
                out.add(Path(node.value).name)
    return out


def test_code_cites_only_documents_that_exist() -> None:
    files = sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py"))
    outputs = written_names(files)
    bad = []
    for path in files:
        for line, text in commentary(path):
            for name in CITED_MD.findall(text):
                if "/" in name:
                    ok = (ROOT / name).is_file() and (ROOT / name).resolve().is_relative_to(ROOT)
                else:
                    ok = (ROOT / "docs" / name).is_file() or name in outputs
                if not ok:
                    bad.append(f"{rel(path)}:{line}: {name}")
    assert not bad, "documents cited in code that are not in the repository (cite docs/<name>.md):\n" + "\n".join(bad)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The helpers themselves: a fenced command is no link, headings get GitHub's ids."""
    md = tmp_path / "x.md"
    md.write_text(
        "# Units of analysis and paired tests\n## Empty masks\n## Empty masks\n"
        "see [a](a.md#b) and [web](https://example.org)\n```\n[not](a link)\n```\n"
    )
    assert links(md) == ["a.md#b"]
    assert anchors(md) == {"units-of-analysis-and-paired-tests", "empty-masks", "empty-masks-1"}
    assert (
        slug("ISIC-2018 Task 1 (`isic2018`): dermoscopy, skin lesions")
        == "isic-2018-task-1-isic2018-dermoscopy-skin-lesions"
    )


@pytest.mark.parametrize(
    "line",
    [
        "samples in `../shared/data`",
        "bench run --data-root ../../shared/data",
        "--results /work/realrun2/results",
        "git archive HEAD | tar -x -C /tmp/sw/after",
        "cp -r /root/data .",
        "see /home/me/data",
        "in the design notes",
    ],
)
def test_outside_places_are_caught(line: str) -> None:
    assert OUTSIDE.search(line)


@pytest.mark.parametrize(
    "line",
    ["`results/.devices/`", "`/proc/self/smaps`", "<https://example.org/tmp/x>", "DATA/lgg_mri/", "../bench/x.py"],
)
def test_inside_places_pass(line: str) -> None:
    assert not OUTSIDE.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "(2026-11-28, before issue 15)",
        "the code before any issue-15 work",
        "as in issue #15",
        "Issues 14 and 15",
        "a speed-up (#15)",
        "see #7",
        "fixes #12.",
        "PR #3",
        "gh-15",
        "pull request 9",
    ],
)
def test_tracker_numbers_are_caught(line: str) -> None:
    assert TRACKER.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "# Title",
        "## (6) Speed and memory",
        "(<https://challenge.isic-archive.com/data/#2018>)",
        "colour `#1f77b4`",
        "ranked #1 on ISIC",
        "the issue of empty masks",
        "Table 4, fold 2",
    ],
)
def test_other_hashes_and_numbers_pass(line: str) -> None:
    assert not TRACKER.search(line)


def test_the_quick_start_reader(tmp_path: Path) -> None:
    readme = "# x\n## Quick start\n\n```bash\na && b\n```\n\ntext\n\n```bash\nc\n```\n## Next\n```\nd\n```\n"
    assert quick_start_commands(readme) == ["a && b", "c"]
    assert script_commands("# a && b\nset -e\n  c  \n") == {"set -e", "c"}
    with pytest.raises(AssertionError, match="one command"):
        quick_start_commands("## Quick start\n```bash\na\nb\n```\n")

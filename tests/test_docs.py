"""The documentation stays inside the repository: every link resolves, every cited document exists.

- Every relative link in ``README.md``, ``results/README.md`` and ``docs/*.md`` names a file inside the
  repository, and a ``#anchor`` names a heading of that file (GitHub's heading ids).
- Every repository path the docs quote in backticks (``bench/metrics.py``) exists.
- Code docstrings and comments cite a ``*.md`` document only where it exists: by repository path
  (``docs/conventions.md``, ``results/README.md``), or by bare name under ``docs/``. A bare name the
  code itself writes (``index.md`` of a report) is an output, not a citation.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(ROOT.glob("docs/*.md"))
MARKDOWN = [ROOT / "README.md", ROOT / "results" / "README.md", *DOCS]
CODE_DIRS = ("bench", "datasets", "architectures", "tests", "benchmarks", "scripts")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^()\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")
QUOTED_PATH = re.compile(
    r"`((?:bench|datasets|architectures|tests|benchmarks|scripts|docs)/[\w./-]+\.(?:py|md|yaml|sh))`"
)
CITED_MD = re.compile(r"[\w./-]*\w\.md\b")


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


def test_docs_point_to_nothing_outside_the_repository() -> None:
    """No design notes or sibling folders of the checkout: a user who clones the repository has neither."""
    outside = re.compile(r"\.\./shared|design/|design notes")
    hits = [
        f"{rel(md)}:{n}: {line.strip()}"
        for md in MARKDOWN
        if md.exists()
        for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert not hits, "references to places outside the repository:\n" + "\n".join(hits)


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

"""Every document the code and the docs cite is in the repository, and every cited section exists.

Checked: ``docs/NAME.md`` paths and relative Markdown links resolve to files; every ``§N`` or
``§N.M`` names a numbered heading of the document cited just before it on the same line (of
the page itself inside ``docs/``); nothing points at a sibling folder outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OUTSIDE = "../" + "shared"  # spelt in two parts so that this file does not cite it
DOC_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]+?\.md\b")
MD_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)#\s]+\.md)(?:#[^)]*)?\)")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)*)")
MD_NAME = re.compile(r"([\w./-]+\.md)\b")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.M)


def _sources() -> list[Path]:
    files = [
        *REPO.glob("pipeline/**/*.py"),
        *REPO.glob("flows/*.py"),
        *REPO.glob("tests/*.py"),
        *REPO.glob("benchmarks/*.py"),
        *REPO.glob("docs/*.md"),
    ]
    files += [REPO / n for n in ("README.md", "CHANGELOG.md", "Makefile", "params.yaml", "dvc.yaml", "pyproject.toml")]
    return sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts)


def _lines():
    me = Path(__file__).resolve()
    for path in _sources():
        if path.resolve() == me:  # this file names patterns, not documents
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield path, no, line


def _sections(doc: Path) -> set[str]:
    return set(HEADING.findall(doc.read_text(encoding="utf-8")))


def _resolve(name: str, cited_from: Path) -> Path:
    """A cited ``.md`` name: ``docs/x.md`` from the root, a bare ``x.md`` inside docs/ or the root."""
    if name.startswith("docs/"):
        return REPO / name
    for base in (cited_from.parent, REPO / "docs", REPO):
        if (base / name).is_file():
            return base / name
    return cited_from.parent / name


def test_cited_doc_paths_exist() -> None:
    missing = []
    for path, no, line in _lines():
        for name in DOC_PATH.findall(line):
            if not (REPO / name).is_file():
                missing.append(f"{path.relative_to(REPO)}:{no}: {name}")
        if path.suffix == ".md":
            for name in MD_LINK.findall(line):
                if not (path.parent / name).is_file():
                    missing.append(f"{path.relative_to(REPO)}:{no}: link {name}")
    assert not missing, "cited documents that do not exist:\n" + "\n".join(missing)


def test_cited_sections_exist() -> None:
    bad, checked = [], 0
    for path, no, line in _lines():
        for m in SECTION.finditer(line):
            names = MD_NAME.findall(line[: m.start()])
            if names:
                doc = _resolve(names[-1], path)
            elif path.suffix == ".md":
                doc = path  # a page citing its own section
            else:
                bad.append(f"{path.relative_to(REPO)}:{no}: §{m.group(1)} names no document")
                continue
            checked += 1
            if not doc.is_file():
                bad.append(f"{path.relative_to(REPO)}:{no}: {doc.relative_to(REPO)} does not exist")
            elif m.group(1) not in _sections(doc):
                bad.append(f"{path.relative_to(REPO)}:{no}: {doc.relative_to(REPO)} has no section {m.group(1)}")
    assert not bad, "unresolved section references:\n" + "\n".join(bad)
    assert checked >= 30  # the code cites docs/spec.md throughout


def test_spec_sections_are_numbered_in_order() -> None:
    numbers = HEADING.findall((REPO / "docs" / "spec.md").read_text(encoding="utf-8"))
    tops = [int(n) for n in numbers if "." not in n]
    assert tops == list(range(1, len(tops) + 1))
    assert len(numbers) == len(set(numbers)), "duplicate section numbers in docs/spec.md"


def test_nothing_points_outside_the_repository() -> None:
    hits = [f"{p.relative_to(REPO)}:{no}" for p, no, line in _lines() if OUTSIDE in line]
    assert not hits, f"references to {OUTSIDE} (not part of the repository): {hits}"


@pytest.mark.parametrize("name", ["LICENSE", "CHANGELOG.md", "docs/spec.md", "docs/decisions.md"])
def test_project_documents_present(name: str) -> None:
    assert (REPO / name).is_file()

"""Every document the README, the docs, a docstring, a comment or a spec names exists in the
repository: a newcomer who follows a pointer finds the page.

A name is taken relative to the repository root (`docs/methods.md`) or, in a document or a
Markdown link, relative to the file that names it (`language.md` from docs/cli.md). Links to
pictures (`![...](docs/x.png)`) are checked the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMING = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
for folder in ("lossgraph", "nets", "benchmarks", "specs"):
    NAMING += sorted(p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".yaml"})

DOCUMENT = re.compile(r"(?<![\w/.:-])((?:\.\./)?(?:[\w-]+/)*[\w-]+\.md)\b")
PICTURE = re.compile(r"!\[[^\]]*\]\(([^)\s#]+)\)")


def named_documents(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return sorted(set(DOCUMENT.findall(text)) | set(PICTURE.findall(text)))


def found(name: str, by: Path) -> bool:
    return any((base / name).exists() for base in (ROOT, by.parent))


@pytest.mark.parametrize("path", NAMING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_document_exists(path):
    missing = [name for name in named_documents(path) if not name.startswith("http") and not found(name, path)]
    assert not missing, f"{path.relative_to(ROOT)} names {missing}, which the repository does not hold"


def test_the_reader_finds_names_of_each_form(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See docs/methods.md, [cli](cli.md), ../benchmarks/README.md and ![a plot](docs/x.png); "
                    "not https://example.org/a.md.", encoding="utf-8")
    assert named_documents(page) == ["../benchmarks/README.md", "cli.md", "docs/methods.md", "docs/x.png"]
    assert not found("docs/nowhere.md", page) and found("docs/methods.md", page)

"""The default test command runs every docs/*.md as a doctest (pyproject: testpaths has docs and
addopts has --doctest-glob='*.md'), so a new page is checked without being listed anywhere."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_docs_page_is_collected_as_a_doctest():
    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "docs" in opts["testpaths"]
    assert "--doctest-glob='*.md'" in opts["addopts"]
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert "workflow.md" in pages and "theory.md" in pages


def test_doc_examples_end_before_the_closing_fence():
    """A `>>>` example's expected output runs to the next blank line: a closing ``` right after it
    would be read as output. Every fence after an output line must follow a blank line."""
    for page in (ROOT / "docs").glob("*.md"):
        lines = page.read_text().splitlines()
        in_example = False
        for i, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith(">>>"):
                in_example = True
            elif not stripped:
                in_example = False
            elif stripped.startswith("```") and in_example:
                raise AssertionError(f"{page.name}:{i + 1}: ``` right after a doctest's output")

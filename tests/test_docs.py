"""Run the tutorials: every ```python block of each docs/*.md page, in order, in one fresh namespace per page.

Blocks fenced as ```python no-run (or any info string other than exactly ``python``) are shown, not run.
A failure names the page, the block and its first line in the Markdown file.
"""

from __future__ import annotations

import re
import tempfile
import traceback
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first code line number, source) of each fenced block whose info string is exactly ``python``."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        start, body = i + 1, []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) \
                    and not close["info"].strip():
                break
            body.append(lines[i])
            i += 1
        i += 1  # skip the closing fence (or run off the end: an unclosed block still counts)
        if info == "python":
            blocks.append((start + 1, "\n".join(body) + "\n"))
    return blocks


PAGES = sorted(DOCS.glob("*.md"))


def test_docs_exist() -> None:
    names = {p.name for p in PAGES}
    assert {"index.md", "specs.md", "kernels.md", "ensembles.md", "cli.md"} <= names, names
    for page in PAGES:
        assert python_blocks(page.read_text(encoding="utf-8")), f"{page.name} has no runnable ```python block"


def test_fence_parser() -> None:
    text = "x\n```python\na = 1\n```\n```python no-run\nraise SystemExit\n```\n````python\nb = '```'\n````\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (9, "b = '```'\n")]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute the page's python blocks in order, sharing one namespace, with the cwd in a temp folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the pages' tempfile.mkdtemp() folders land here
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for line, source in python_blocks(page.read_text(encoding="utf-8")):
        where = f"docs/{page.name}, block at line {line}"
        # pad with blank lines so that traceback line numbers are line numbers in the Markdown file
        code = compile("\n" * (line - 1) + source, str(page), "exec")
        failure = None
        try:
            exec(code, namespace)
        except (Exception, SystemExit) as exc:  # report any failure, including sys.exit(), with the page
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            failure = f"{where} failed: {type(exc).__name__}: {exc}\n\n{detail}"
        if failure is not None:
            pytest.fail(failure, pytrace=False)

"""The learning guide (docs/) cannot go stale.

- Every ```python block of a chapter runs, in order, in one namespace per
  chapter (the snippets assert their own results).
- Every file path mentioned in the docs exists, and every ``file.py:name``
  (or ``file.py:Class.method``) names a function or class defined in that file.
- Every image and chapter link resolves, and images stay small.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
CHAPTERS = [p for p in PAGES if re.match(r"\d\d-", p.name)]

PATH_RE = re.compile(r"`((?:tinycnn|kernels|models|examples|tests|bench)/[\w/.-]*\.py)(?::([\w.]+))?`")


def python_blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_guide_has_an_index_and_chapters():
    assert (DOCS / "README.md").exists()
    assert len(CHAPTERS) >= 6
    index = (DOCS / "README.md").read_text()
    for chapter in CHAPTERS:
        assert f"({chapter.name})" in index, f"docs/README.md does not link {chapter.name}"


@pytest.mark.parametrize("page", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_snippets_run(page):
    blocks = python_blocks(page)
    assert blocks, f"{page.name} has no python snippet"
    namespace = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(blocks):
        code = compile(block, f"{page.name} (python block {i + 1})", "exec")
        exec(code, namespace)


def _defines(path, name):
    text = path.read_text()
    return re.search(rf"^\s*(?:def|class)\s+{re.escape(name)}\b", text, flags=re.M) is not None


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_referenced_files_and_names_exist(page):
    refs = PATH_RE.findall(page.read_text())
    for path, name in refs:
        file = ROOT / path
        assert file.is_file(), f"{page.name} mentions {path}, which does not exist"
        if name:
            for part in name.split("."):
                assert _defines(file, part), f"{page.name}: {path} defines no function or class {part!r}"


def test_docs_mention_real_code():
    # the check above must actually be checking something
    refs = [r for p in PAGES for r in PATH_RE.findall(p.read_text())]
    assert len(refs) > 30 and sum(1 for _, name in refs if name) > 20


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_links_and_images_resolve(page):
    prose = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code is not links
    prose = re.sub(r"`[^`]*`", "", prose)
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", prose)
    assert page.name == "README.md" or targets, f"{page.name} links nothing"
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        file = (page.parent / target).resolve()
        assert file.exists(), f"{page.name} links {target}, which does not exist"
        if file.suffix == ".png":
            assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{target} is not a PNG"
            assert file.stat().st_size < 200_000, f"{target} is larger than 200 KB"

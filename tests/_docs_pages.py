"""The documentation's fenced code blocks and their test markers (shared by the docs tests).

Conventions (HTML comments, invisible on the site):

* ```` ```bash ```` and ```` ```python ```` blocks are commands: a test runs them, in page order,
  in a fresh folder with its own ``AXHUB_HOME`` (python blocks share one namespace per page);
* a fence with ``title="name"`` (any language) is a file the reader saves: the runner writes it
  under that name and runs the next block;
* ``<!-- docs-test: skip REASON -->`` on the line before a block: not run, for REASON (a
  server that keeps running, placeholders such as ``mv_...``); its ``axhub`` lines are still
  parsed against the real command line, so a renamed command or option fails the test;
* ``<!-- docs-test: requires-dataset NAME -->``: the page runs only when ``$AXHUB_DATASETS/NAME``
  exists, and is skipped with that message otherwise;
* ``<!-- docs-test: requires-service mqtt -->``: the page needs the MQTT broker on 127.0.0.1:1883.
* ``<!-- docs-test: requires-package torch -->``: the page runs only where that package is
  importable (torch has no wheel for every supported Python), and is skipped with that message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
RUNNABLE = {"bash", "python"}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^`]*)$")
_MARK = re.compile(r"<!--\s*docs-test:\s*(?P<kind>[a-z-]+)\s*(?P<arg>.*?)\s*-->")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    title: str | None
    skip: str | None  # the reason it is not run, or None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        info = match["info"].strip()
        lang = info.split()[0] if info else ""
        title = _TITLE.search(info)
        end = i + 1
        while end < len(lines) and lines[end].strip() != match["fence"]:
            end += 1
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        previous = lines[i - 1] if i else ""
        mark = _MARK.search(previous)
        skip = mark["arg"] if mark and mark["kind"] == "skip" else None
        found.append(Block(page, i + 1, lang, code, title["title"] if title else None, skip))
        i = end + 1
    return found


def page_markers(page: Path) -> list[tuple[str, str]]:
    return [(m["kind"], m["arg"]) for m in _MARK.finditer(page.read_text(encoding="utf-8"))]


def doc_pages() -> list[Path]:
    """Every page a reader sees: the site's pages and the README."""
    return [*sorted(p for p in DOCS.rglob("*.md") if "reference" not in p.parts), REPO / "README.md"]

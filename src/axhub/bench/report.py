"""One way for every benchmark to report: a rich table, a JSON file and a docs section.

JSON goes to ``bench-results/<name>.json`` (machine, date, dataset, split, figures);
``docs/benchmarks.md`` keeps one section per benchmark between markers, so benchmarks
update their own part without touching the others'.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _repo_root() -> Path:
    """The checkout holding docs/ (bench runs from a clone), else the working directory."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "docs").is_dir():
            return parent
    return Path.cwd()


def machine_info() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


@dataclass
class BenchResult:
    """Figures of one benchmark run.

    ``rows`` are the table lines (a dict per line, same keys); ``references`` are published
    figures shown beside ours (same keys where they apply).
    """

    name: str
    title: str
    dataset: str
    split: str
    rows: list[dict[str, Any]]
    references: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "date": self.date,
            "machine": machine_info(),
            "dataset": self.dataset,
            "split": self.split,
            "figures": self.rows,
            "references": self.references,
            "notes": self.notes,
            "plots": self.plots,
            "extra": self.extra,
        }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        for key in row:
            if key not in cols:
                cols.append(key)
    return cols


def print_table(result: BenchResult, console: Console | None = None) -> None:
    console = console or Console()
    all_rows = [{"source": "AX Hub (ours)", **r} for r in result.rows] + [
        {"source": "published", **r} for r in result.references
    ]
    table = Table(title=f"{result.title} — {result.dataset} ({result.split})")
    cols = _columns(all_rows)
    for col in cols:
        table.add_column(col)
    for row in all_rows:
        table.add_row(*[escape(_fmt(row.get(c, ""))) for c in cols])  # model names hold "[2, 3]"
    console.print(table)
    for note in result.notes:
        console.print(f"  • {note}", markup=False)  # notes hold brackets such as E[life - t | life > t]


def markdown_section(result: BenchResult) -> str:
    all_rows = [{"source": "**AX Hub (ours)**", **r} for r in result.rows] + [
        {"source": "published", **r} for r in result.references
    ]
    cols = _columns(all_rows)
    lines = [
        f"### {result.title}",
        "",
        f"Dataset: {result.dataset}; split: {result.split}; run {result.date} on "
        f"{machine_info()['cpu_count']} CPU cores (`axhub bench {result.name}`).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in all_rows]
    if result.notes:
        lines += [""] + [f"- {n}" for n in result.notes]
    if result.plots:
        # Links are relative to docs/benchmarks.md, whichever way the benchmark named the plot.
        lines += [""] + [f"![{Path(p).stem}]({p.removeprefix('docs/')})" for p in result.plots]
    return "\n".join(lines) + "\n"


def update_docs(result: BenchResult, docs_path: Path | None = None) -> Path:
    """Replace (or append) this benchmark's section in docs/benchmarks.md."""
    docs_path = docs_path or _repo_root() / "docs" / "benchmarks.md"
    docs_path.parent.mkdir(parents=True, exist_ok=True)
    text = docs_path.read_text() if docs_path.exists() else "# Benchmarks\n\n"
    begin, end = f"<!-- bench:{result.name} -->", f"<!-- /bench:{result.name} -->"
    section = f"{begin}\n{markdown_section(result)}{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _m: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    docs_path.write_text(text)
    return docs_path


def results_dir() -> Path:
    path = _repo_root() / "bench-results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_result(result: BenchResult, *, update_markdown: bool = True, console: Console | None = None) -> Path:
    """Print the table, write ``bench-results/<name>.json`` and update the docs section."""
    print_table(result, console)
    out = results_dir() / f"{result.name}.json"
    out.write_text(json.dumps(result.to_json(), indent=2, default=str))
    if update_markdown:
        update_docs(result)
    return out


def save_run(
    result: BenchResult, *, update_docs: bool, out: Path | None = None, console: Console | None = None
) -> Path:
    """Print the table and save the JSON; only ``update_docs`` touches docs/ and bench-results/.

    Without it the JSON goes to ``out`` or ``$AXHUB_HOME/bench/<name>.json``.
    """
    if update_docs:
        return save_result(result, console=console)
    print_table(result, console)
    if out is None:
        from axhub.core.settings import get_settings

        out = get_settings().home / "bench" / f"{result.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.to_json(), indent=2, default=str))
    (console or Console()).print(f"saved {out}")
    return out

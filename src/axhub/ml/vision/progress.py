"""Progress bars for long vision steps (features, coreset, scoring), drawn with rich.

On a terminal: one bar per step. Elsewhere (a log file, CI): a plain line per quarter of each
step, so a long run in the background still says where it is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


class RichProgress:
    """``progress(step, done, total)`` for the estimators, drawn as rich progress bars."""

    def __init__(self, label: Callable[[str], str] | None = None) -> None:
        from rich.progress import Progress

        self.label = label or (lambda step: step)  # the step's name in the user's language
        self.live = sys.stderr.isatty()
        self.bars = Progress(transient=True)
        self.tasks: dict[str, Any] = {}
        self.printed: dict[str, int] = {}
        self.start = time.perf_counter()

    def __enter__(self) -> RichProgress:
        if self.live:
            self.bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.bars.__exit__(None, None, None)

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.live:
            quarter = 4 * done // max(1, total)
            if self.printed.get(step) != quarter:
                self.printed[step] = quarter
                print(
                    f"[{time.perf_counter() - self.start:7.1f} s] {self.label(step)}: {done}/{total}",
                    file=sys.stderr,
                    flush=True,
                )
            return
        if step not in self.tasks:
            self.tasks[step] = self.bars.add_task(self.label(step), total=total)
        self.bars.update(self.tasks[step], completed=done, total=total)

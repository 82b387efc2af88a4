"""Progress bars for long vision steps (features, coreset, scoring), drawn with rich."""

from __future__ import annotations

from typing import Any


class RichProgress:
    """``progress(step, done, total)`` for the estimators, drawn as rich progress bars."""

    def __init__(self) -> None:
        from rich.progress import Progress

        self.bars = Progress(transient=True)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.__exit__(None, None, None)

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.bars.add_task(step, total=total)
        self.bars.update(self.tasks[step], completed=done, total=total)

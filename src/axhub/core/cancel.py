"""Cooperative cancellation that reaches inside long computations.

A job's handler runs model code that knows nothing about jobs. The job runner installs a
checkpoint for its thread (``cancellable(check)``); training loops call ``checkpoint()`` between
epochs, trees or folds, which raises the job's own "cancelled" exception when someone asked to
stop. Outside a job ``checkpoint()`` costs a context-variable read and does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_check: ContextVar[Callable[[], None] | None] = ContextVar("axhub_cancel_check", default=None)


def checkpoint() -> None:
    """Stop here if the surrounding job was cancelled (raises the job's exception)."""
    check = _check.get()
    if check is not None:
        check()


@contextmanager
def cancellable(check: Callable[[], None]) -> Iterator[None]:
    token = _check.set(check)
    try:
        yield
    finally:
        _check.reset(token)

"""Display names over stable ids: a site, machine or signal keeps its id (``name``/``slug``, what
files, topics and the store use) and may carry a Korean and an English name for people."""

from __future__ import annotations

from typing import Any


def display_name(row: Any, locale: str) -> str:
    """The row's name in ``locale`` when it has one, else its stable name."""
    if row is None:
        return ""
    own = getattr(row, "name_ko" if locale == "ko" else "name_en", "") or ""
    return str(own or row.name)

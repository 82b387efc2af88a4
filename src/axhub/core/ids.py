"""Identifiers: random, URL- and path-safe, and checked before they touch a file path."""

from __future__ import annotations

import re
import uuid

from axhub.core.errors import AxHubError

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def new_id(prefix: str = "") -> str:
    """A new random id, e.g. ``asset_3f2a...``; the prefix tells a reader what it names."""
    raw = uuid.uuid4().hex[:20]
    return f"{prefix}_{raw}" if prefix else raw


def check_path_safe(value: str, what: str = "id") -> str:
    """Return ``value`` if it can be used as one path component, else raise.

    Names never become paths unchecked (ARCHITECTURE.md, security model).
    """
    if not _SAFE.match(value) or value in {".", ".."} or ".." in value:
        raise AxHubError(
            f"{what} {value!r} cannot be used: only letters, digits, '_', '.' and '-' are allowed",
            hint="choose a name like 'cnc-01' or 'pump_a'",
        )
    return value


def slugify(name: str) -> str:
    """A path-safe slug from a human name ('CNC 01 / Line A' -> 'cnc-01-line-a')."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name.strip().lower()).strip("-")
    return slug[:100] or "item"

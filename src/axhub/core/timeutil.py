"""Time handling: everything stored is UTC; factories log local time."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from axhub.core.errors import AxHubError


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_timezone(name: str) -> ZoneInfo:
    """A tz database zone ('Asia/Seoul', 'UTC'), with a helpful error for a typo."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise AxHubError(
            f"unknown time zone {name!r}", hint="use an IANA name such as 'Asia/Seoul' or 'UTC'"
        ) from exc


def as_utc(value: datetime, assume_tz: str = "UTC") -> datetime:
    """Attach ``assume_tz`` to a naive datetime, then convert to UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=parse_timezone(assume_tz))
    return value.astimezone(UTC)

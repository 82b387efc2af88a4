"""Shift calendars: when a machine is planned to produce (ISO 22400 planned operation time).

A site's calendar is a list of shifts in local time (``06:00-14:00``; a shift whose end is not after
its start runs past midnight), the weekdays each runs on (Monday = 0), and planned downtime
(maintenance, meetings, holidays) as absolute intervals. A shift belongs to the local date on
which it *starts*: the night shift of Monday 22:00 to Tuesday 06:00 is Monday's. With no calendar
a machine is planned around the clock (one 24-hour shift a day).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd

from axhub.core.errors import AxHubError
from axhub.core.timeutil import parse_timezone

ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Shift:
    name: str
    start: time
    end: time
    days: tuple[int, ...] = ALL_DAYS

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Shift:
        try:
            name = str(raw["name"]).strip()
            start = time.fromisoformat(str(raw["start"]))
            end_text = str(raw["end"])
            end = time(0, 0) if end_text in ("24:00", "24:00:00") else time.fromisoformat(end_text)
            days = tuple(sorted({int(d) for d in raw.get("days", ALL_DAYS)}))
        except (KeyError, TypeError, ValueError) as exc:
            raise AxHubError(
                f"invalid shift {dict(raw)!r}",
                hint="a shift is {'name': 'A', 'start': '06:00', 'end': '14:00', 'days': [0,1,2,3,4]}",
            ) from exc
        if not name or any(d < 0 or d > 6 for d in days):
            raise AxHubError(f"invalid shift {dict(raw)!r}", hint="a name and weekdays 0 (Mon) to 6 (Sun)")
        return cls(name=name, start=start, end=end, days=days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "days": list(self.days),
        }


@dataclass(frozen=True)
class PlannedDowntime:
    start: datetime
    end: datetime
    reason: str = ""


@dataclass(frozen=True)
class ShiftCalendar:
    timezone: str = "Asia/Seoul"
    shifts: tuple[Shift, ...] = (Shift("day", time(0, 0), time(0, 0)),)
    planned: tuple[PlannedDowntime, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        parse_timezone(self.timezone)
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise AxHubError("two shifts share a name", hint="give each shift its own name")

    def windows(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Shift windows overlapping [start, end), clipped to it.

        Columns: ``start_us``, ``end_us`` (UTC microseconds), ``shift`` (e.g. ``2026-03-02/night``),
        ``day`` (local date of the shift start), ``week`` (ISO week, ``2026-W10``).
        """
        tz = parse_timezone(self.timezone)
        lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
        first = lo.tz_convert(tz).date() - timedelta(days=1)
        last = hi.tz_convert(tz).date()
        rows: list[tuple[int, int, str, str, str]] = []
        day = first
        while day <= last:
            for shift in self.shifts:
                if day.weekday() not in shift.days:
                    continue
                s_local = datetime.combine(day, shift.start, tzinfo=tz)
                e_day = day + timedelta(days=1) if shift.crosses_midnight else day
                e_local = datetime.combine(e_day, shift.end, tzinfo=tz)
                s_utc, e_utc = (
                    pd.Timestamp(s_local).tz_convert("UTC"),
                    pd.Timestamp(e_local).tz_convert("UTC"),
                )
                s_clip, e_clip = max(s_utc, lo), min(e_utc, hi)
                if s_clip < e_clip:
                    rows.append(
                        (
                            _us(s_clip),
                            _us(e_clip),
                            f"{day.isoformat()}/{shift.name}",
                            day.isoformat(),
                            _week(day),
                        )
                    )
            day += timedelta(days=1)
        frame = pd.DataFrame(rows, columns=["start_us", "end_us", "shift", "day", "week"])
        return frame.sort_values("start_us", kind="stable").reset_index(drop=True)

    def planned_downtime(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Planned downtime intervals overlapping [start, end) (columns start_us, end_us, reason)."""
        lo, hi = _us(pd.Timestamp(start)), _us(pd.Timestamp(end))
        rows = [
            (max(_us(pd.Timestamp(p.start)), lo), min(_us(pd.Timestamp(p.end)), hi), p.reason)
            for p in self.planned
            if _us(pd.Timestamp(p.start)) < hi and _us(pd.Timestamp(p.end)) > lo
        ]
        return pd.DataFrame(rows, columns=["start_us", "end_us", "reason"])

    @classmethod
    def from_config(
        cls,
        timezone: str,
        shifts: Sequence[Mapping[str, Any]] | None,
        planned: Sequence[PlannedDowntime] = (),
    ) -> ShiftCalendar:
        parsed = tuple(Shift.from_dict(s) for s in shifts) if shifts else cls.shifts
        return cls(timezone=timezone, shifts=parsed, planned=tuple(planned))


def _us(ts: pd.Timestamp) -> int:
    if ts.tzinfo is None:
        raise AxHubError("naive time given to the shift calendar; attach a time zone first")
    return int(ts.tz_convert("UTC").value // 1000)


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"

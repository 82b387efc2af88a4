"""OEE for one organisation's machines, lines, sites or the whole company, from what is stored.

This is where the pieces meet: each machine's production config says where its states and part
counts come from (a state tag or rules over signals in the time-series store; counter tags or
counts posted through the API), its site's shift calendar and planned downtime say when it was
planned to produce, and operators' downtime reasons say why it stopped. ``engine.segments``
then does the time accounting and ``kpi`` the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import duckdb
import numpy as np
import pandas as pd

from axhub.core.errors import AxHubError
from axhub.core.timeutil import utcnow
from axhub.production import engine, kpi
from axhub.production.shifts import PlannedDowntime, ShiftCalendar
from axhub.production.states import (
    DEFAULT_STATE_CODES,
    STOP_STATES,
    MachineState,
    StateRule,
    states_from_codes,
    states_from_rules,
)
from axhub.store.models import (
    AssetRow,
    DowntimeReasonRow,
    PlannedDowntimeRow,
    ProductionConfigRow,
    ProductionCountRow,
    ShiftCalendarRow,
    SiteRow,
)
from axhub.store.scoped import OrgScope

Level = Literal["machine", "line", "site", "company"]
Period = Literal["shift", "day", "week"]

# A state tag reports changes only: the state at the start of a window is the last change before
# it. One day back covers machines that report at least daily (a heartbeat or any change).
STATE_LOOKBACK = timedelta(days=1)

# Reasons offered on the shop-floor page; the complex view aggregates by these codes only
# (free text could name a customer or a person).
STANDARD_REASONS = (
    "breakdown",
    "tool_change",
    "setup",
    "material_wait",
    "no_operator",
    "quality_issue",
    "maintenance",
    "other",
)


class SeriesReader(Protocol):
    def query(
        self,
        org: str,
        asset: str,
        signals: list[str] | None = None,
        start: Any = None,
        end: Any = None,
        interval: str | None = None,
        agg: Any = "mean",
    ) -> pd.DataFrame: ...

    def time_range(self, org: str, asset: str) -> tuple[datetime | None, datetime | None]: ...


@dataclass(frozen=True)
class OeeReport:
    total: kpi.OeeFigures
    by_period: pd.DataFrame
    by_machine: pd.DataFrame
    losses: pd.DataFrame
    machines: list[str]


def _us(value: datetime | pd.Timestamp) -> int:
    return int(pd.Timestamp(value).tz_convert("UTC").value // 1000)


def _ts_us(frame: pd.DataFrame) -> np.ndarray:
    if "ts_us" in frame.columns:
        return frame["ts_us"].to_numpy(dtype="int64")
    return (pd.DatetimeIndex(frame["ts"]).tz_convert("UTC").as_unit("us").asi8).astype("int64")


class ProductionService:
    """OEE over one organisation's data (everything read through its ``OrgScope``)."""

    def __init__(self, scope: OrgScope, series: SeriesReader) -> None:
        self.scope = scope
        self.series = series

    # -- configuration ----------------------------------------------------------------------
    def config(self, asset: AssetRow) -> ProductionConfigRow | None:
        return self.scope.find(ProductionConfigRow, asset_id=asset.id)

    def calendar(self, site: SiteRow, start: datetime, end: datetime) -> ShiftCalendar:
        row = self.scope.find(ShiftCalendarRow, site_id=site.id)
        planned = [
            PlannedDowntime(p.start, p.end, p.reason)
            for p in self.scope.list(PlannedDowntimeRow, site_id=site.id)
            if p.start < end and p.end > start
        ]
        return ShiftCalendar.from_config(site.timezone, row.shifts if row else None, planned)

    def machines(self, level: Level, target_id: str | None) -> list[AssetRow]:
        """Assets with production configured under a machine, line, site or the company."""
        configured = {c.asset_id for c in self.scope.list(ProductionConfigRow)}
        if level == "company":
            assets = list(self.scope.list(AssetRow, order_by=AssetRow.slug))
        elif not target_id:
            raise AxHubError(f"an id is needed for a {level}", hint="pass the machine, line or site id")
        elif level == "machine":
            assets = [self.scope.get(AssetRow, target_id)]
        elif level == "line":
            line = self.scope.get(AssetRow, target_id)
            assets = list(self.scope.list(AssetRow, order_by=AssetRow.slug, parent_id=line.id))
        else:
            site = self.scope.get(SiteRow, target_id)
            assets = list(self.scope.list(AssetRow, order_by=AssetRow.slug, site_id=site.id))
        return [a for a in assets if a.id in configured]

    # -- inputs ------------------------------------------------------------------------------
    def _states(
        self, asset: AssetRow, cfg: ProductionConfigRow, start: datetime, end: datetime
    ) -> pd.DataFrame:
        lo = start - STATE_LOOKBACK
        if cfg.state_source == "tag" and cfg.state_signal:
            raw = self.series.query(self.scope.org_id, asset.slug, [cfg.state_signal], lo, end)
            codes = {int(k): MachineState(v) for k, v in cfg.state_codes.items()} or DEFAULT_STATE_CODES
            changes = states_from_codes(_ts_us(raw), raw["value"].to_numpy(dtype=float), codes)
        elif cfg.state_source == "rules" and cfg.state_rules:
            rules = [StateRule.from_dict(r) for r in cfg.state_rules]
            signals = sorted({c[0] for r in rules for c in r.conditions})
            raw = self.series.query(self.scope.org_id, asset.slug, signals, lo, end, interval="1min")
            if raw.empty:
                changes = pd.DataFrame({"ts": [], "state": []})
            else:
                wide = raw.assign(t=_ts_us(raw)).pivot_table(index="t", columns="signal", values="value")
                for missing in set(signals) - set(wide.columns):
                    wide[missing] = np.nan
                changes = states_from_rules(wide, rules)
        else:
            return engine.empty(engine.STATES_COLUMNS)
        ts = np.asarray(changes["ts"])
        ts_us = ts.astype("int64") if ts.dtype.kind in "iu" else _ts_us(changes)
        return pd.DataFrame({"asset": asset.slug, "ts_us": ts_us, "state": changes["state"].astype(str)})

    def _counts(
        self, asset: AssetRow, cfg: ProductionConfigRow, start: datetime, end: datetime
    ) -> pd.DataFrame:
        frames = []
        for column, signal in (("good", cfg.good_signal), ("scrap", cfg.scrap_signal)):
            if not signal:
                continue
            raw = self.series.query(self.scope.org_id, asset.slug, [signal], start - STATE_LOOKBACK, end)
            if raw.empty:
                continue
            values = raw["value"].to_numpy(dtype=float)
            if cfg.count_mode == "cumulative":
                # A PLC counter: parts are the increase; a drop is a reset, after which the value
                # itself is what was counted since.
                diff = np.diff(values, prepend=values[0])
                values = np.where(diff < 0, values, diff)
            ts_us = _ts_us(raw)
            keep = ts_us >= _us(start)
            other = "scrap" if column == "good" else "good"
            frames.append(
                pd.DataFrame(
                    {"ts_us": ts_us[keep], column: values[keep], other: 0.0, "ideal_s": cfg.ideal_cycle_s}
                )
            )
        posted = [
            (_us(r.ts), r.good, r.scrap, r.ideal_cycle_s or cfg.ideal_cycle_s)
            for r in self.scope.list(ProductionCountRow, asset_id=asset.id)
            if start <= r.ts < end
        ]
        if posted:
            frames.append(pd.DataFrame(posted, columns=["ts_us", "good", "scrap", "ideal_s"]))
        if not frames:
            return engine.empty(engine.COUNTS_COLUMNS)
        counts = pd.concat(frames, ignore_index=True)
        counts.insert(0, "asset", asset.slug)
        return counts[list(engine.COUNTS_COLUMNS)]

    def _reasons(self, asset: AssetRow, start: datetime, end: datetime) -> list[tuple[str, int, int, str]]:
        return [
            (asset.slug, _us(r.start), _us(r.end), r.reason)
            for r in self.scope.list(DowntimeReasonRow, asset_id=asset.id)
            if r.start < end and r.end > start
        ]

    # -- figures -----------------------------------------------------------------------------
    def segments(self, assets: Sequence[AssetRow], start: datetime, end: datetime) -> pd.DataFrame:
        """The time accounting of ``assets`` over [start, end), with shift, day and week columns."""
        end = min(end, utcnow())
        if end <= start or not assets:
            return pd.DataFrame()
        states, counts, windows, planned, reasons = [], [], [], [], []
        micro = 120.0
        sites: dict[str, SiteRow] = {}
        for asset in assets:
            cfg = self.config(asset)
            if cfg is None:
                continue
            micro = cfg.micro_stop_s
            site = sites.get(asset.site_id) or self.scope.get(SiteRow, asset.site_id)
            sites[asset.site_id] = site
            # Before a machine sent anything it was not connected yet: that time is neither
            # production nor loss. Gaps after it are counted (as 'unknown', no data).
            first, _ = self.series.time_range(self.scope.org_id, asset.slug)
            if first is None or first >= end:
                continue
            lo = max(start, first)
            cal = self.calendar(site, lo, end)
            w = cal.windows(lo, end)
            windows.append(w.assign(asset=asset.slug))
            pdt = cal.planned_downtime(lo, end)
            planned.append(pdt.assign(asset=asset.slug)[list(engine.PLANNED_COLUMNS)])
            states.append(self._states(asset, cfg, start, end))
            counts.append(self._counts(asset, cfg, start, end))
            reasons.extend(self._reasons(asset, start, end))
        if not windows:
            return pd.DataFrame()
        all_windows = pd.concat(windows, ignore_index=True)
        labels = all_windows[["shift", "day", "week"]].drop_duplicates("shift")
        seg = engine.segments(
            duckdb.connect(),
            states=_concat(states, engine.STATES_COLUMNS),
            windows=all_windows.rename(columns={"shift": "period"})[list(engine.WINDOWS_COLUMNS)],
            planned=_concat(planned, engine.PLANNED_COLUMNS),
            reasons=pd.DataFrame(reasons, columns=list(engine.REASONS_COLUMNS)).astype(
                {"start_us": "int64", "end_us": "int64"}
            ),
            counts=_concat(counts, engine.COUNTS_COLUMNS),
            micro_stop_s=micro,
        )
        return seg.rename(columns={"period": "shift"}).merge(labels, on="shift", how="left")

    def report(
        self, level: Level, target_id: str | None, start: datetime, end: datetime, by: Period = "day"
    ) -> OeeReport:
        assets = self.machines(level, target_id)
        seg = self.segments(assets, start, end)
        if seg.empty:
            empty = pd.DataFrame()
            return OeeReport(kpi.figures(empty), empty, empty, kpi.losses(empty), [a.slug for a in assets])
        return OeeReport(
            total=kpi.figures(seg),
            by_period=kpi.figures_by(seg, [by]),
            by_machine=kpi.figures_by(seg, ["asset"]),
            losses=kpi.losses(seg),
            machines=[a.slug for a in assets],
        )

    def stops(
        self, asset: AssetRow, start: datetime, end: datetime, min_s: float = 0.0
    ) -> list[dict[str, Any]]:
        """The machine's stops (idle, down, setup runs) in [start, end), with any reason given."""
        cfg = self.config(asset)
        if cfg is None:
            return []
        changes = self._states(asset, cfg, start, end)
        if changes.empty:
            return []
        ts = changes["ts_us"].to_numpy()
        ends = np.append(ts[1:], min(_us(end), _us(utcnow())))
        reasons = self._reasons(asset, start, end)
        out = []
        for t0, t1, state in zip(ts, ends, changes["state"], strict=True):
            if state not in {s.value for s in STOP_STATES} or t1 <= _us(start) or (t1 - t0) / 1e6 < min_s:
                continue
            given = next((r for r in reasons if r[1] < t1 and r[2] > t0), None)
            out.append(
                {
                    "start": pd.Timestamp(int(t0), unit="us", tz="UTC").to_pydatetime(),
                    "end": pd.Timestamp(int(t1), unit="us", tz="UTC").to_pydatetime(),
                    "state": state,
                    "duration_s": (t1 - t0) / 1e6,
                    "reason": given[3] if given else None,
                }
            )
        return out


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    kept = [f for f in frames if not f.empty]
    if not kept:
        return engine.empty(columns)
    frame = pd.concat(kept, ignore_index=True)[list(columns)]
    return frame.astype({c: "int64" for c in columns if c.endswith("_us")})

"""Alerts: threshold rules beside model alerts, de-duplication, rate limiting, storage, ack.

An alert says what is wrong, on which machine, since when, and *why*: its explanation
lists the top contributing signals and how far off each one was (a z-score against the
model's normal-data statistics, or the value against the rule's limit).

- De-duplication: an alert with the same key (rule or model + asset) within
  ``dedup_window_s`` of the last one is merged into it (count + 1, last seen), so an
  operator sees one alert per episode, not one per reading. An event MORE severe than the
  open alert is not merged: it is a new alert with its own time and explanation (a fault after
  a mild blip must not hide inside the blip's alert).
- Rate limiting: at most ``max_new_per_window`` new alerts per asset per
  ``rate_window_s``; more are counted as suppressed (an alert storm must not bury the rest).
- Storage goes through an ``AlertSink``: ``DbAlertSink`` writes the metadata DB's
  ``alerts`` table through the org-scoped data access; tests may use ``MemoryAlertSink``.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from axhub.core.domain import Severity
from axhub.core.ids import new_id
from axhub.core.timeutil import utcnow


@dataclass(frozen=True)
class AlertEvent:
    asset: str
    ts: datetime
    severity: Severity
    kind: Literal["model", "rule"]
    source: str
    title: str
    explanation: list[dict[str, Any]] = field(default_factory=list)
    score: float | None = None
    threshold: float | None = None
    # Readings this event stands for (a scorer reports one event per episode, not per row).
    rows: int = 1
    # Time of the last reading of the episode (``ts`` is its first).
    last_ts: datetime | None = None

    @property
    def dedup_key(self) -> str:
        return f"{self.kind}:{self.source}:{self.asset}"


class AlertSink(Protocol):
    """Where alerts are kept. ``add`` returns the new alert's id; ``merge`` updates one."""

    def add(self, event: AlertEvent) -> str: ...

    def merge(self, alert_id: str, event: AlertEvent) -> None: ...


@dataclass
class StoredAlert:
    id: str
    event: AlertEvent
    count: int = 1
    last_seen: datetime | None = None
    stored_at: datetime = field(default_factory=utcnow)
    acknowledged_by: str | None = None


class MemoryAlertSink:
    """Alerts in memory (tests, benchmarks, the edge agent's local view)."""

    def __init__(self) -> None:
        self.alerts: dict[str, StoredAlert] = {}

    def add(self, event: AlertEvent) -> str:
        alert_id = new_id("alert")
        self.alerts[alert_id] = StoredAlert(alert_id, event, count=event.rows, last_seen=event.ts)
        return alert_id

    def merge(self, alert_id: str, event: AlertEvent) -> None:
        stored = self.alerts[alert_id]
        stored.count += event.rows
        stored.last_seen = event.ts

    def acknowledge(self, alert_id: str, user: str) -> None:
        self.alerts[alert_id].acknowledged_by = user


Outcome = Literal["new", "merged", "suppressed"]
_RANK = {"info": 0, "warning": 1, "critical": 2}


class AlertManager:
    """Decides, for each alert event, whether it is new, merged into an open one, or suppressed."""

    def __init__(
        self,
        sink: AlertSink,
        *,
        dedup_window_s: float = 600.0,
        max_new_per_window: int = 5,
        rate_window_s: float = 600.0,
    ) -> None:
        self.sink = sink
        self.dedup_window_s = dedup_window_s
        self.max_new_per_window = max_new_per_window
        self.rate_window_s = rate_window_s
        self._open: dict[str, tuple[str, datetime]] = {}
        self._open_severity: dict[str, int] = {}
        self._recent: dict[str, deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.suppressed = 0

    def raise_alert(self, event: AlertEvent) -> Outcome:
        with self._lock:
            key = event.dedup_key
            open_alert = self._open.get(key)
            rank = _RANK.get(str(event.severity), 1)
            escalates = rank > self._open_severity.get(key, rank)
            if (
                open_alert is not None
                and not escalates
                and (event.ts - open_alert[1]).total_seconds() <= self.dedup_window_s
            ):
                self.sink.merge(open_alert[0], event)
                self._open[key] = (open_alert[0], max(event.last_ts or event.ts, open_alert[1]))
                return "merged"
            recent = self._recent[event.asset]
            while recent and (event.ts - recent[0]).total_seconds() > self.rate_window_s:
                recent.popleft()
            if len(recent) >= self.max_new_per_window:
                self.suppressed += 1
                return "suppressed"
            alert_id = self.sink.add(event)
            recent.append(event.ts)
            self._open[key] = (alert_id, event.last_ts or event.ts)
            self._open_severity[key] = rank
            return "new"


# ---------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class LimitRule:
    """Alert when a signal leaves [low, high]."""

    asset: str
    signal: str
    low: float | None = None
    high: float | None = None
    severity: Severity = Severity.WARNING

    @property
    def name(self) -> str:
        return f"limit:{self.signal}"


@dataclass(frozen=True)
class RateOfChangeRule:
    """Alert when a signal changes faster than ``max_per_s`` (units per second)."""

    asset: str
    signal: str
    max_per_s: float
    severity: Severity = Severity.WARNING

    @property
    def name(self) -> str:
        return f"rate:{self.signal}"


Rule = LimitRule | RateOfChangeRule


def _series(batch: pa.Table, asset: str, signal: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts_us, value) of one signal in a batch, time-ordered, nulls dropped."""
    mask = pc.and_(pc.equal(batch["asset"], asset), pc.equal(batch["signal"], signal))
    part = batch.filter(mask).filter(pc.is_valid(batch.filter(mask)["value"]))
    if part.num_rows == 0:
        return np.empty(0, np.int64), np.empty(0)
    ts = part["ts"].cast(pa.int64()).to_numpy()
    values = part["value"].to_numpy()
    order = np.argsort(ts, kind="stable")
    return ts[order], values[order]


def _when(ts_us: int) -> datetime:
    return datetime.fromtimestamp(ts_us / 1e6, tz=utcnow().tzinfo)


class RuleEngine:
    """Evaluates threshold rules on every batch written; keeps the last reading per signal."""

    def __init__(self, rules: Sequence[Rule], alerts: AlertManager) -> None:
        self.rules = list(rules)
        self.alerts = alerts
        self._last: dict[tuple[str, str], tuple[int, float]] = {}

    def process(self, batch: pa.Table) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for rule in self.rules:
            ts, values = _series(batch, rule.asset, rule.signal)
            if not len(ts):
                continue
            if isinstance(rule, LimitRule):
                events += self._limits(rule, ts, values)
            else:
                events += self._rate(rule, ts, values)
        for event in events:
            self.alerts.raise_alert(event)
        return events

    @staticmethod
    def _limits(rule: LimitRule, ts: np.ndarray, values: np.ndarray) -> list[AlertEvent]:
        high = values > rule.high if rule.high is not None else np.zeros(len(values), bool)
        low = values < rule.low if rule.low is not None else np.zeros(len(values), bool)
        out = []
        for i in np.flatnonzero(high | low):
            limit = rule.high if high[i] else rule.low
            assert limit is not None
            word = "above" if high[i] else "below"
            how_far = float(values[i] - limit)
            out.append(
                AlertEvent(
                    asset=rule.asset,
                    ts=_when(int(ts[i])),
                    severity=rule.severity,
                    kind="rule",
                    source=rule.name,
                    title=f"{rule.signal} {word} limit: {values[i]:.4g} (limit {limit:.4g})",
                    explanation=[
                        {
                            "signal": rule.signal,
                            "value": float(values[i]),
                            "limit": float(limit),
                            "excess": how_far,
                            "times_limit": float(values[i] / limit) if limit else None,
                        }
                    ],
                )
            )
        return out

    def _rate(self, rule: RateOfChangeRule, ts: np.ndarray, values: np.ndarray) -> list[AlertEvent]:
        key = (rule.asset, rule.signal)
        prev = self._last.get(key)
        all_ts = np.concatenate([[prev[0]], ts]) if prev else ts
        all_values = np.concatenate([[prev[1]], values]) if prev else values
        self._last[key] = (int(ts[-1]), float(values[-1]))
        if len(all_ts) < 2:
            return []
        dt = np.diff(all_ts) / 1e6
        dv = np.diff(all_values)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(dt > 0, dv / dt, 0.0)
        out = []
        for i in np.flatnonzero(np.abs(rate) > rule.max_per_s):
            out.append(
                AlertEvent(
                    asset=rule.asset,
                    ts=_when(int(all_ts[i + 1])),
                    severity=rule.severity,
                    kind="rule",
                    source=rule.name,
                    title=f"{rule.signal} changing fast: {rate[i]:+.4g}/s (limit {rule.max_per_s:.4g}/s)",
                    explanation=[
                        {
                            "signal": rule.signal,
                            "rate_per_s": float(rate[i]),
                            "limit_per_s": rule.max_per_s,
                            "times_limit": float(abs(rate[i]) / rule.max_per_s),
                        }
                    ],
                )
            )
        return out


# ---------------------------------------------------------------------- the database
class DbAlertSink:
    """Alerts in the metadata DB (``alerts`` table), through the org-scoped data access."""

    def __init__(self, db: Any, org_id: str) -> None:
        self.db = db
        self.org_id = org_id
        self._asset_ids: dict[str, str] = {}
        self.added: list[str] = []  # ids of the alerts this sink stored
        # Called with each new alert's id after it is committed: by default, notifications.
        self.on_added: Any = self._notify

    def _notify(self, alert_id: str) -> None:
        from axhub.serve.notify import notify_alert

        notify_alert(self.db, self.org_id, alert_id)

    def _asset_id(self, scope: Any, slug: str) -> str:
        from axhub.store.models import AssetRow

        if slug not in self._asset_ids:
            row = scope.find(AssetRow, slug=slug)
            # Alerts are never refused for lack of metadata: unknown assets keep their slug.
            self._asset_ids[slug] = row.id if row is not None else slug
        return self._asset_ids[slug]

    def add(self, event: AlertEvent) -> str:
        from axhub.store.models import AlertRow
        from axhub.store.scoped import OrgScope

        with self.db.session() as session:
            scope = OrgScope(session, self.org_id)
            row = scope.add(
                AlertRow(
                    asset_id=self._asset_id(scope, event.asset),
                    ts=event.ts,
                    severity=str(event.severity),
                    kind=event.kind,
                    source=event.source,
                    title=event.title[:500],
                    score=event.score,
                    threshold=event.threshold,
                    explanation=event.explanation,
                    dedup_key=event.dedup_key,
                    count=event.rows,
                    last_seen_at=event.last_ts or event.ts,
                )
            )
            alert_id = str(row.id)
        self.added.append(alert_id)
        if self.on_added is not None:
            self.on_added(alert_id)
        return alert_id

    def merge(self, alert_id: str, event: AlertEvent) -> None:
        from axhub.store.models import AlertRow
        from axhub.store.scoped import OrgScope

        with self.db.session() as session:
            row = OrgScope(session, self.org_id).get(AlertRow, alert_id)
            row.count += event.rows
            row.last_seen_at = max(event.last_ts or event.ts, row.last_seen_at or event.ts)
            # Same or lower severity only (see AlertManager): the worst readings explain it.
            if event.score is not None and (row.score is None or event.score > row.score):
                row.score = event.score
                row.explanation = event.explanation


def list_alerts(db: Any, org_id: str, *, open_only: bool = False, limit: int = 50) -> list[Any]:
    """Newest alerts of an organisation (optionally only the unacknowledged ones)."""
    from axhub.store.models import AlertRow
    from axhub.store.scoped import OrgScope

    with db.session() as session:
        stmt = OrgScope(session, org_id).select(AlertRow)
        if open_only:
            stmt = stmt.where(AlertRow.acknowledged_by.is_(None))
        rows = session.scalars(stmt.order_by(AlertRow.ts.desc()).limit(limit)).all()
        session.expunge_all()
        return list(rows)


def acknowledge_alert(db: Any, org_id: str, alert_id: str, user: str) -> Any:
    """Mark an alert as seen and handled by ``user`` (id or name)."""
    from axhub.store.models import AlertRow
    from axhub.store.scoped import OrgScope

    with db.session() as session:
        row = OrgScope(session, org_id).get(AlertRow, alert_id)
        if row.acknowledged_by is None:
            row.acknowledged_by = user[:40]
            row.acknowledged_at = utcnow()
        session.flush()
        session.expunge(row)
        return row

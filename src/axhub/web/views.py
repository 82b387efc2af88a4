"""What each page shows, read through the caller's ``OrgScope`` (never across organisations).

Functions here return plain dicts and rows for the templates; they hold no HTTP knowledge, so
they are easy to test and reuse (the CLI or a report could call them too).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import desc

from axhub.store.models import (
    AlertRow,
    ApiKeyRow,
    AssetRow,
    DeploymentRow,
    JobLogRow,
    JobRow,
    ModelVersionRow,
    SignalRow,
    SiteRow,
    UserRow,
)
from axhub.store.scoped import OrgScope

_SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}


@dataclass
class AssetCard:
    asset: AssetRow
    status: str  # ok | info | warning | critical
    open_alerts: int
    signals: int


@dataclass
class SiteBlock:
    site: SiteRow
    assets: list[AssetCard] = field(default_factory=list)


def open_alerts_by_asset(scope: OrgScope) -> dict[str, list[AlertRow]]:
    found: dict[str, list[AlertRow]] = defaultdict(list)
    for alert in scope.list(AlertRow, acknowledged_at=None, order_by=desc(AlertRow.ts)):
        found[alert.asset_id].append(alert)
    return found


def status_of(alerts: list[AlertRow]) -> str:
    if not alerts:
        return "ok"
    return max((a.severity for a in alerts), key=lambda s: _SEVERITY_RANK.get(s, 0))


def signals_by_asset(scope: OrgScope) -> dict[str, dict[str, SignalRow]]:
    """{asset id: {signal id: row}}: what alert titles need to name signals for people."""
    found: dict[str, dict[str, SignalRow]] = defaultdict(dict)
    for sig in scope.list(SignalRow):
        found[sig.asset_id][sig.name] = sig
    return dict(found)


def plant_overview(scope: OrgScope) -> dict[str, Any]:
    open_by_asset = open_alerts_by_asset(scope)
    signal_counts = Counter(s.asset_id for s in scope.list(SignalRow))
    sites = {s.id: SiteBlock(site=s) for s in scope.list(SiteRow, order_by=SiteRow.name)}
    for asset in scope.list(AssetRow, order_by=AssetRow.name):
        alerts = open_by_asset.get(asset.id, [])
        card = AssetCard(asset, status_of(alerts), len(alerts), signal_counts.get(asset.id, 0))
        if asset.site_id in sites:
            sites[asset.site_id].assets.append(card)
    cards = [c for block in sites.values() for c in block.assets]
    open_alerts = sorted(
        (a for alerts in open_by_asset.values() for a in alerts), key=lambda a: a.ts, reverse=True
    )
    return {
        "sites": list(sites.values()),
        "counts": {
            "assets": len(cards),
            "running_ok": sum(1 for c in cards if c.status == "ok"),
            "open_alerts": len(open_alerts),
            "critical": sum(1 for a in open_alerts if a.severity == "critical"),
        },
        "open_alerts": open_alerts[:8],
        "asset_names": {c.asset.id: c.asset.name for c in cards},
        "asset_rows": {c.asset.id: c.asset for c in cards},
        "signals_by_asset": signals_by_asset(scope),
        "asset_slugs": {c.asset.id: c.asset.slug for c in cards},
    }


def asset_detail(scope: OrgScope, slug: str) -> dict[str, Any]:
    asset = scope.asset_by_slug(slug)
    site = scope.get(SiteRow, asset.site_id)
    signals = list(scope.list(SignalRow, asset_id=asset.id, order_by=SignalRow.name))
    alerts = list(scope.list(AlertRow, asset_id=asset.id, order_by=desc(AlertRow.ts), limit=200))
    deployments = scope.list(DeploymentRow, asset_id=asset.id, active=True)
    models = [scope.get(ModelVersionRow, d.model_version_id) for d in deployments]
    rul_models = [m for m in models if m.family == "rul"]
    from axhub.store.models import AlertRuleRow, EventRow

    events = scope.list(EventRow, asset_id=asset.id, order_by=desc(EventRow.start), limit=200)
    return {
        "events": [[e.start.isoformat(), e.title] for e in events],
        **machine_models(scope, asset),
        "rules": list(scope.list(AlertRuleRow, asset_id=asset.id, order_by=AlertRuleRow.created_at)),
        "asset": asset,
        "site": site,
        "signals": signals,
        "signals_by_asset": {asset.id: {s.name: s for s in signals}},
        "alerts": alerts,
        "open_alerts": [a for a in alerts if a.acknowledged_at is None],
        "status": status_of([a for a in alerts if a.acknowledged_at is None]),
        "models": models,
        "rul_models": rul_models,
        # The newest RUL estimate a deployed model wrote into its metrics, if any.
        "rul": next((m.metrics.get("latest_rul") for m in rul_models if m.metrics.get("latest_rul")), None),
        "tool_wear": next(
            (m.metrics.get("latest_tool_wear") for m in models if m.metrics.get("latest_tool_wear")), None
        ),
    }


def alert_list(
    scope: OrgScope, *, state: str = "open", severity: str = "", asset_slug: str = "", limit: int = 200
) -> dict[str, Any]:
    assets = {a.id: a for a in scope.list(AssetRow)}
    stmt = scope.select(AlertRow).order_by(desc(AlertRow.ts))
    if state == "open":
        stmt = stmt.where(AlertRow.acknowledged_at.is_(None))
    elif state == "acknowledged":
        stmt = stmt.where(AlertRow.acknowledged_at.is_not(None))
    if severity:
        stmt = stmt.where(AlertRow.severity == severity)
    if asset_slug:
        match = [a.id for a in assets.values() if a.slug == asset_slug]
        stmt = stmt.where(AlertRow.asset_id.in_(match))
    alerts = list(scope.session.scalars(stmt.limit(limit)))
    users = {u.id: u for u in scope.list(UserRow)}
    sites = {s.id: s for s in scope.list(SiteRow)}
    return {
        "alerts": alerts,
        "assets": assets,
        "users": users,
        "sites": sites,
        "signals_by_asset": signals_by_asset(scope),
    }


def model_list(scope: OrgScope) -> dict[str, Any]:
    versions = list(scope.list(ModelVersionRow, order_by=desc(ModelVersionRow.created_at)))
    by_name: dict[str, list[ModelVersionRow]] = defaultdict(list)
    for v in versions:
        by_name[v.name].append(v)
    metric_names = sorted(
        {k for v in versions for k, val in v.metrics.items() if isinstance(val, int | float)}
    )
    return {"by_name": dict(by_name), "versions": versions, "metric_names": metric_names}


def job_list(scope: OrgScope, limit: int = 100) -> dict[str, Any]:
    jobs = list(scope.list(JobRow, order_by=desc(JobRow.created_at), limit=limit))
    counts = Counter(j.state for j in jobs)
    return {"jobs": jobs, "counts": counts}


def job_logs(scope: OrgScope, job_id: str, after: int = 0) -> list[JobLogRow]:
    scope.get(JobRow, job_id)  # 404 for another organisation's job
    stmt = scope.select(JobLogRow).where(JobLogRow.job_id == job_id, JobLogRow.id > after)
    return list(scope.session.scalars(stmt.order_by(JobLogRow.id).limit(500)))


def admin_view(scope: OrgScope) -> dict[str, Any]:
    from axhub.store.models import NotificationChannelRow

    return {
        "channels": list(scope.list(NotificationChannelRow, order_by=NotificationChannelRow.created_at)),
        "users": list(scope.list(UserRow, order_by=UserRow.email)),
        "keys": list(scope.list(ApiKeyRow, order_by=desc(ApiKeyRow.created_at))),
        "running_jobs": scope.count(JobRow, state="running"),
        "queued_jobs": scope.count(JobRow, state="queued"),
    }


def shifted(when: datetime, delta: timedelta) -> datetime:
    """``when + delta``, held at the ends of the calendar: stored data at 9999-12-31 or year 1
    must never make a page fail with an overflow."""
    try:
        return when + delta
    except OverflowError:
        edge = datetime.max if delta > timedelta(0) else datetime.min
        return edge.replace(tzinfo=when.tzinfo)


def recent_window(
    alerts: list[AlertRow], default_end: datetime, hours: float = 24.0
) -> tuple[datetime, datetime]:
    """The chart's first window: the day around the newest alert, else the last day."""
    end = shifted(alerts[0].ts, timedelta(hours=hours / 4)) if alerts else default_end
    return shifted(end, -timedelta(hours=hours)), end


def inspection_view(scope: OrgScope) -> dict[str, Any]:
    """Image datasets and the results vision jobs wrote (per-part verdicts, heatmaps).

    A finished vision scoring job stores ``result["parts"]``: one entry per part with
    ``part_id``, ``time``, ``defect`` (bool), ``score`` and optionally ``image_sha256`` /
    ``heatmap_sha256`` (blobs). Without such jobs the page explains how to get there.
    """
    from axhub.store.models import DatasetRow

    datasets = list(scope.list(DatasetRow, kind="images", order_by=desc(DatasetRow.created_at)))
    jobs = scope.list(JobRow, state="succeeded", order_by=desc(JobRow.finished_at), limit=50)
    parts: list[dict[str, Any]] = []
    for job in jobs:
        found = job.result.get("parts") if isinstance(job.result, dict) else None
        if isinstance(found, list):
            parts.extend(p for p in found if isinstance(p, dict))
    parts = parts[:60]
    defects = sum(1 for p in parts if p.get("defect"))
    vision_models = [m for m in scope.list(ModelVersionRow, family="vision")]
    return {
        "datasets": datasets,
        "parts": parts,
        "defect_rate": (defects / len(parts)) if parts else None,
        "defects": defects,
        "vision_models": vision_models,
    }


@dataclass
class MachineBlock:
    asset: AssetRow
    line: AssetRow | None
    signals: list[SignalRow] = field(default_factory=list)


@dataclass
class PlantSite:
    site: SiteRow
    lines: list[AssetRow] = field(default_factory=list)
    machines: list[MachineBlock] = field(default_factory=list)


def plant_structure(scope: OrgScope) -> dict[str, Any]:
    """Sites with their lines (assets of kind ``line``) and machines with their signals."""
    sites = {s.id: PlantSite(site=s) for s in scope.list(SiteRow, order_by=SiteRow.name)}
    assets = list(scope.list(AssetRow, order_by=AssetRow.slug))
    by_id = {a.id: a for a in assets}
    signals: dict[str, list[SignalRow]] = defaultdict(list)
    for sig in scope.list(SignalRow, order_by=SignalRow.name):
        signals[sig.asset_id].append(sig)
    for asset in assets:
        block = sites.get(asset.site_id)
        if block is None:
            continue
        if asset.kind == "line":
            block.lines.append(asset)
        else:
            line = by_id.get(asset.parent_id) if asset.parent_id else None
            block.machines.append(MachineBlock(asset, line, signals.get(asset.id, [])))
    machines = sum(len(b.machines) for b in sites.values())
    return {"plant": list(sites.values()), "n_machines": machines}


def usage_over_time(session: Any, days: int = 14, now: datetime | None = None) -> dict[str, Any]:
    """Per company and day (UTC) over the last ``days``: readings stored, files taken in, jobs
    submitted and alerts raised. Counts only: the operator never sees a company's data."""
    from sqlalchemy import func, select

    from axhub.core.timeutil import utcnow
    from axhub.store.models import IngestRunRow

    end = (now or utcnow()).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = end - timedelta(days=days)
    labels = [(start + timedelta(days=i)).date().isoformat() for i in range(days)]
    index = {d: i for i, d in enumerate(labels)}
    series: dict[str, dict[str, list[int]]] = defaultdict(
        lambda: {k: [0] * days for k in ("points", "files", "jobs", "alerts")}
    )

    def add(key: str, model: Any, column: Any, value: Any) -> None:
        day = func.date(column)
        stmt = (
            select(
                model.org_id, day, func.coalesce(func.sum(value), 0) if value is not None else func.count()
            )
            .where(column >= start, column < end)
            .group_by(model.org_id, day)
        )
        for org_id, d, n in session.execute(stmt).all():
            i = index.get(str(d)[:10])
            if i is not None:
                series[org_id][key][i] += int(n or 0)

    add("points", IngestRunRow, IngestRunRow.started_at, IngestRunRow.points_written)
    add("files", IngestRunRow, IngestRunRow.started_at, None)
    add("jobs", JobRow, JobRow.created_at, None)
    add("alerts", AlertRow, AlertRow.created_at, None)
    return {"days": labels, "series": {k: dict(v) for k, v in series.items()}}


def parse_window(start: str, end: str) -> tuple[datetime, datetime] | None:
    """Two ISO instants from a link (naive = UTC), or None when absent or unreadable."""
    from datetime import UTC

    try:
        a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        return None
    a = a if a.tzinfo else a.replace(tzinfo=UTC)
    b = b if b.tzinfo else b.replace(tzinfo=UTC)
    return (a, b) if b > a else None


def machine_models(scope: OrgScope, asset: AssetRow) -> dict[str, Any]:
    """The model versions trained for this machine (named after it) or deployed on it, newest
    first, with which one is deployed."""
    deployed = {d.model_version_id for d in scope.list(DeploymentRow, asset_id=asset.id, active=True)}
    versions = [
        v
        for v in scope.list(ModelVersionRow, order_by=desc(ModelVersionRow.created_at))
        if v.id in deployed or v.name.startswith(asset.slug + "-")
    ]
    return {"versions": versions, "deployed_ids": deployed}


def alert_detail(scope: OrgScope, alert_id: str) -> dict[str, Any]:
    """One alert with what explains it: the machine, its signals, the notes and who did what."""
    from axhub.store.models import AlertNoteRow

    alert = scope.get(AlertRow, alert_id)
    asset = scope.find(AssetRow, id=alert.asset_id)
    site = scope.get(SiteRow, asset.site_id) if asset else None
    signals = {s.name: s for s in scope.list(SignalRow, asset_id=asset.id)} if asset else {}
    items = [e for e in (alert.explanation or []) if isinstance(e, dict) and e.get("signal")]
    notes = list(scope.list(AlertNoteRow, alert_id=alert.id, order_by=AlertNoteRow.created_at))
    last = alert.last_seen_at if alert.last_seen_at and alert.last_seen_at > alert.ts else alert.ts
    return {
        "alert": alert,
        "asset": asset,
        "site": site,
        "signals_by_name": signals,
        "items": items,
        "focus": [str(e["signal"]) for e in items if str(e["signal"]) in signals],
        "notes": notes,
        "users": {u.id: u for u in scope.list(UserRow)},
        "window": {
            "start": (alert.ts - timedelta(hours=3)).isoformat(),
            "end": (last + timedelta(hours=1)).isoformat(),
        },
    }

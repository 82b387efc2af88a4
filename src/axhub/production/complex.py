"""The industrial complex's view: how consenting companies do together, never one company's data.

Only companies whose consent is in force count. Every figure is an aggregate over companies, and
any aggregate that rests on fewer than ``MIN_COMPANIES`` of them is suppressed (shown as such,
with no number), so no figure can be traced back to one or two neighbours. A company is named
only if it agreed to be named. Each company can see where it stands (its percentile) without
learning anyone else's figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axhub.production.service import STANDARD_REASONS, ProductionService, SeriesReader
from axhub.store.models import AlertRow, DeploymentRow
from axhub.store.platform import consenting_orgs
from axhub.store.scoped import OrgScope

MIN_COMPANIES = 3
OEE_BINS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0000001)


@dataclass(frozen=True)
class CompanyFigures:
    org_id: str
    name: str | None  # only when the company agreed to be named
    oee: float | None
    availability: float | None
    performance: float | None
    quality: float | None
    downtime_s: dict[str, float]
    alerts: dict[str, int]
    uses_models: bool


def _cause(cause: str) -> str:
    """Free-text reasons could name a customer or a person: the complex sees standard codes only."""
    if cause.startswith("state:"):
        return cause
    return cause if cause in STANDARD_REASONS else "other"


def company_figures(
    session: Session, series: SeriesReader, org_id: str, name: str | None, start: datetime, end: datetime
) -> CompanyFigures:
    scope = OrgScope(session, org_id)
    report = ProductionService(scope, series).report("company", None, start, end)
    downtime: dict[str, float] = {}
    for cause, kind, seconds in zip(
        report.losses["cause"], report.losses["kind"], report.losses["seconds"], strict=True
    ):
        if kind == "downtime":
            key = _cause(str(cause))
            downtime[key] = downtime.get(key, 0.0) + float(seconds)
    alert_rows = session.execute(
        select(AlertRow.kind, func.count())
        .where(AlertRow.org_id == org_id, AlertRow.ts >= start, AlertRow.ts < end)
        .group_by(AlertRow.kind)
    ).all()
    uses_models = scope.count(DeploymentRow, active=True) > 0
    t = report.total
    return CompanyFigures(
        org_id=org_id,
        name=name,
        oee=t.oee,
        availability=t.availability,
        performance=t.performance,
        quality=t.quality,
        downtime_s=downtime,
        alerts={str(kind): int(n) for kind, n in alert_rows},
        uses_models=uses_models,
    )


def _distribution(values: list[float]) -> dict[str, Any]:
    if len(values) < MIN_COMPANIES:
        return {"suppressed": True}
    arr = np.asarray(values)
    q = np.quantile(arr, [0.1, 0.25, 0.5, 0.75, 0.9])
    counts, _ = np.histogram(arr, bins=OEE_BINS)
    bins = [
        {
            "from": OEE_BINS[i],
            "to": min(OEE_BINS[i + 1], 1.0),
            "companies": int(c) if c >= MIN_COMPANIES else None,
        }
        for i, c in enumerate(counts)
    ]
    return {
        "suppressed": False,
        "companies": len(values),
        "mean": float(arr.mean()),
        "p10": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "p90": float(q[4]),
        "bins": bins,
    }


def _by_key(
    companies: list[CompanyFigures], pick: Callable[[CompanyFigures], dict[str, float] | dict[str, int]]
) -> list[dict[str, Any]]:
    totals: dict[str, float] = {}
    members: dict[str, int] = {}
    for c in companies:
        for key, value in pick(c).items():
            if value:
                totals[key] = totals.get(key, 0.0) + float(value)
                members[key] = members.get(key, 0) + 1
    rows = []
    for key in sorted(totals, key=lambda k: -totals[k]):
        if members[key] >= MIN_COMPANIES:
            rows.append({"key": key, "value": totals[key], "companies": members[key], "suppressed": False})
        else:
            rows.append({"key": key, "value": None, "companies": None, "suppressed": True})
    return rows


def complex_view(session: Session, series: SeriesReader, start: datetime, end: datetime) -> dict[str, Any]:
    """Aggregates over the consenting companies (for the data-center operator)."""
    consenting = consenting_orgs(session)
    companies = [
        company_figures(session, series, org.id, org.name if named else None, start, end)
        for org, named in consenting
    ]
    n = len(companies)
    if n < MIN_COMPANIES:
        return {"companies": n, "suppressed": True, "min_companies": MIN_COMPANIES}
    measured = [c for c in companies if c.oee is not None]
    return {
        "companies": n,
        "suppressed": False,
        "min_companies": MIN_COMPANIES,
        "oee": _distribution([c.oee for c in measured if c.oee is not None]),
        "availability": _distribution([c.availability for c in companies if c.availability is not None]),
        "performance": _distribution([c.performance for c in companies if c.performance is not None]),
        "quality": _distribution([c.quality for c in companies if c.quality is not None]),
        "downtime_by_cause": _by_key(companies, lambda c: c.downtime_s),
        "alerts_by_kind": _by_key(companies, lambda c: c.alerts),
        "model_adoption": {"companies_using_models": sum(c.uses_models for c in companies), "of": n},
        "named": sorted(
            ({"name": c.name, "oee": c.oee} for c in companies if c.name is not None),
            key=lambda r: str(r["name"]),
        ),
        "energy": None,  # no company meters energy yet
    }


def standing(
    session: Session, series: SeriesReader, org_id: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """Where one company stands in the complex (its own figure and percentile, nobody else's)."""
    consenting = consenting_orgs(session)
    if org_id not in {org.id for org, _ in consenting}:
        return {"consented": False, "suppressed": True}
    values = []
    own = None
    for org, _ in consenting:
        fig = company_figures(session, series, org.id, None, start, end)
        if fig.oee is not None:
            values.append(fig.oee)
        if org.id == org_id:
            own = fig.oee
    if len(values) < MIN_COMPANIES or own is None:
        return {"consented": True, "suppressed": True, "oee": own}
    below = sum(v < own for v in values)
    equal = sum(v == own for v in values)
    return {
        "consented": True,
        "suppressed": False,
        "oee": own,
        "percentile": 100.0 * (below + 0.5 * equal) / len(values),
        "companies": len(values),
    }

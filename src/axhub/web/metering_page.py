"""The operator's metering console: utilisation, queue wait and per-company CPU/GPU-hours over
time, and this month's hours against each company's quota (issue 19).

Cross-tenant by design, like the operator page: companies and their compute use, never their
data. Everything shown comes from ``store/metering.py``, the same functions as the
``/platform/metering/*`` API; quota changes go through that API from the page's script.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axhub.api.deps import Need
from axhub.core.timeutil import utcnow
from axhub.store import metering
from axhub.store.platform import list_orgs
from axhub.web.pages import PagePrincipal, _Page, render

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Span:
    """A window of the console and the buckets it is shown in."""

    length: timedelta
    utilisation_bucket: str
    usage_bucket: str


SPANS: dict[str, Span] = {
    "24h": Span(timedelta(hours=24), "hour", "hour"),
    "7d": Span(timedelta(days=7), "hour", "day"),
    "30d": Span(timedelta(days=30), "day", "day"),
    "12m": Span(timedelta(days=365), "day", "month"),
}


def _percent(used: float, quota: float | None) -> float | None:
    return None if not quota else round(100.0 * used / quota, 1)


def _summary(util: dict[str, Any]) -> dict[str, Any]:
    """Figures for the page's header: mean busy workers per class, mean and worst p95 wait."""
    buckets = util["buckets"]
    busy = {
        c: round(sum(b["busy_workers"].get(c, 0.0) for b in buckets) / max(1, len(buckets)), 2)
        for c in metering.CLASSES
    }
    started = sum(b["jobs_started"] for b in buckets)
    waited = sum((b["wait_mean_s"] or 0.0) * b["jobs_started"] for b in buckets)
    p95 = [b["wait_p95_s"] for b in buckets if b["wait_p95_s"] is not None]
    return {
        "busy": busy,
        "jobs_started": started,
        "wait_mean_s": round(waited / started, 1) if started else None,
        "wait_p95_max_s": round(max(p95), 1) if p95 else None,
    }


def console_data(session: Any, span_key: str) -> dict[str, Any]:
    span = SPANS.get(span_key, SPANS["7d"])
    until = utcnow()
    since = until - span.length
    util = metering.utilisation(session, since=since, until=until, bucket=span.utilisation_bucket)
    usage = metering.usage_series(session, since=since, until=until, bucket=span.usage_bucket)
    months = metering.org_summary(session)
    names = {o.id: o.name for o in list_orgs(session)}
    return {
        "span": span_key if span_key in SPANS else "7d",
        "spans": list(SPANS),
        "months": [
            {
                **asdict(m),
                "name": names.get(m.org_id, m.slug),
                "cpu_pct": _percent(m.cpu_hours, m.cpu_quota),
                "gpu_pct": _percent(m.gpu_hours, m.gpu_quota),
            }
            for m in months
        ],
        "utilisation": {
            "buckets": [
                {
                    "start": b["start"],
                    "cpu": b["busy_workers"].get("cpu", 0.0),
                    "gpu": b["busy_workers"].get("gpu", 0.0),
                    "wait_mean_s": b["wait_mean_s"],
                    "wait_p95_s": b["wait_p95_s"],
                    "jobs_started": b["jobs_started"],
                }
                for b in util["buckets"]
            ],
            "queued_now": util["queued_now"],
            "running_now": util["running_now"],
        },
        "usage": usage,
        "org_names": {p["org_id"]: names.get(p["org_id"], p["slug"]) for p in usage},
        "summary": _summary(util),
        "billing_tz": str(metering.BILLING_TZ),
    }


@router.get("/operator/metering", response_class=HTMLResponse)
def metering_page(request: Request, principal: PagePrincipal, span: str = "7d") -> HTMLResponse:
    if not principal.allows(Need.OPERATOR):
        return render(request, "forbidden.html", status_code=403, active="/operator/metering")
    with _Page(request, principal) as page:
        data = console_data(page.session, span)
        return render(request, "metering.html", active="/operator/metering", **page.ident, **data)

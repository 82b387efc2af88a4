"""Dashboard pages for production performance: OEE per line, downtime reasons on a tablet, and
the industrial complex's view for the data-center operator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axhub.api.deps import AppState, Need, app_state, timeseries_store
from axhub.core.timeutil import utcnow
from axhub.production import complex as complex_view
from axhub.production.service import STANDARD_REASONS, ProductionService
from axhub.store.models import AssetRow, ComplexConsentRow, ProductionConfigRow, ShiftCalendarRow, SiteRow
from axhub.store.scoped import OrgScope
from axhub.web.i18n import Translator, locale_of
from axhub.web.pages import PagePrincipal, _Page, render

router = APIRouter(include_in_schema=False)
PERIODS = ("shift", "day", "week")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for raw in frame.to_dict("records"):
        rows.append({str(k): (None if isinstance(v, float) and v != v else v) for k, v in raw.items()})
    return rows


def oee_card(scope: OrgScope, state: AppState) -> dict[str, Any] | None:
    """The overview's OEE figure: the whole company over the last 7 days (None if not set up)."""
    if scope.count(ProductionConfigRow) == 0:
        return None
    end = utcnow()
    report = ProductionService(scope, timeseries_store(state)).report(
        "company", None, end - timedelta(days=7), end
    )
    return report.total.as_dict()


def loss_label(t: Translator, cause: str) -> str:
    """A loss cause in the page's language: a known loss, a standard reason, or what the operator typed."""
    for key in (f"oee.loss.{cause}", f"oee.reason.{cause}"):
        text = t(key)
        if text != key:
            return text
    return cause


def _consent(scope: OrgScope) -> ComplexConsentRow | None:
    rows = scope.list(ComplexConsentRow, order_by=ComplexConsentRow.given_at.desc(), limit=1)
    return rows[0] if rows and rows[0].revoked_at is None else None


@router.get("/performance", response_class=HTMLResponse)
def performance_page(
    request: Request, principal: PagePrincipal, line: str = "", days: int = 7, by: str = "day"
) -> HTMLResponse:
    days = min(max(days, 1), 92)
    by = by if by in PERIODS else "day"
    state = app_state(request)
    with _Page(request, principal) as page:
        scope = page.scope
        lines = list(scope.list(AssetRow, order_by=AssetRow.name, kind="line"))
        selected = next((a for a in lines if a.slug == line), None)
        end = utcnow()
        start = end - timedelta(days=days)
        service = ProductionService(scope, timeseries_store(state))
        level, target = ("line", selected.id) if selected else ("company", None)
        report = service.report(level, target, start, end, by=by)  # type: ignore[arg-type]
        consent = _consent(scope)
        standing = (
            complex_view.standing(page.session, timeseries_store(state), principal.org_id, start, end)
            if consent is not None
            else None
        )
        all_assets = [a for a in scope.list(AssetRow, order_by=AssetRow.name) if a.kind != "line"]
        sites = list(scope.list(SiteRow, order_by=SiteRow.name))
        site_shifts = {
            c.site_id: ", ".join(f"{s['name']}={s['start']}-{s['end']}" for s in c.shifts)
            for c in scope.list(ShiftCalendarRow)
        }
        names = {a.slug: a.name for a in all_assets}
        t = Translator(locale_of(request))
        losses = _records(report.losses)
        return render(
            request,
            "performance.html",
            active="/performance",
            lines=lines,
            selected=selected,
            days=days,
            by=by,
            periods=PERIODS,
            total=report.total.as_dict(),
            by_period=_records(report.by_period),
            by_machine=_records(report.by_machine),
            losses=losses,
            loss_labels={row["cause"]: loss_label(t, str(row["cause"])) for row in losses},
            all_assets=all_assets,
            sites=sites,
            site_shifts=site_shifts,
            machines=report.machines,
            machine_names=names,
            consent=consent,
            standing=standing,
            can_admin=principal.allows(Need.ADMIN),
            **page.ident,
        )


@router.get("/performance/downtime", response_class=HTMLResponse)
def downtime_page(
    request: Request, principal: PagePrincipal, machine: str = "", hours: int = 24
) -> HTMLResponse:
    hours = min(max(hours, 1), 24 * 7)
    state = app_state(request)
    with _Page(request, principal) as page:
        scope = page.scope
        configured = {c.asset_id for c in scope.list(ProductionConfigRow)}
        machines = [a for a in scope.list(AssetRow, order_by=AssetRow.name) if a.id in configured]
        selected = next((a for a in machines if a.slug == machine), machines[0] if machines else None)
        stops: list[dict[str, Any]] = []
        if selected is not None:
            end = utcnow()
            service = ProductionService(scope, timeseries_store(state))
            stops = service.stops(selected, end - timedelta(hours=hours), end, min_s=60)[::-1]
        return render(
            request,
            "downtime.html",
            active="/performance",
            machines=machines,
            selected=selected,
            stops=stops,
            hours=hours,
            reasons=STANDARD_REASONS,
            can_write=principal.allows(Need.WRITE),
            **page.ident,
        )


@router.get("/complex", response_class=HTMLResponse)
def complex_page(request: Request, principal: PagePrincipal, days: int = 30) -> HTMLResponse:
    if not principal.allows(Need.OPERATOR):
        return render(request, "forbidden.html", status_code=403, active="/complex")
    days = min(max(days, 1), 366)
    state = app_state(request)
    with _Page(request, principal) as page:
        end = utcnow()
        view = complex_view.complex_view(
            page.session, timeseries_store(state), end - timedelta(days=days), end
        )
        return render(request, "complex.html", active="/complex", view=view, days=days, **page.ident)

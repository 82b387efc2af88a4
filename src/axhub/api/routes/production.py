"""Production performance: how machine states and counts are read, shift calendars, downtime
reasons, OEE per machine, line, site and company, and the industrial complex's view."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Query

from axhub.api.deps import (
    AdminScope,
    DbSession,
    Operator,
    Reader,
    ReadScope,
    State,
    WriteScope,
    timeseries_store,
)
from axhub.api.errors import ERROR_RESPONSES, ApiError
from axhub.api.schemas.common import Deleted
from axhub.api.schemas.production import (
    ConsentIn,
    ConsentOut,
    CountsIn,
    CountsStored,
    LossOut,
    OeeFiguresOut,
    OeeOut,
    OeeRowOut,
    PlannedDowntimeIn,
    PlannedDowntimeOut,
    ProductionConfigIn,
    ProductionConfigOut,
    ReasonIn,
    ReasonOut,
    ShiftsIn,
    ShiftsOut,
    StopOut,
)
from axhub.core.timeutil import utcnow
from axhub.production import complex as complex_view
from axhub.production.config import configure_machine
from axhub.production.config import set_shifts as store_shifts
from axhub.production.service import ProductionService
from axhub.store.models import (
    AssetRow,
    ComplexConsentRow,
    DowntimeReasonRow,
    PlannedDowntimeRow,
    ProductionConfigRow,
    ProductionCountRow,
    ShiftCalendarRow,
    SiteRow,
)

router = APIRouter(tags=["production"], responses=ERROR_RESPONSES)

MAX_SPAN = timedelta(days=400)
Start = Annotated[datetime | None, Query(description="From (default: 7 days ago)")]
End = Annotated[datetime | None, Query(description="Until (default: now)")]


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or utcnow()
    start = start or end - timedelta(days=7)
    for value in (start, end):
        if value.tzinfo is None:
            raise ApiError(
                422, "invalid_time", "times need a zone offset", hint="e.g. 2026-03-02T06:00:00+09:00"
            )
    if not start < end:
        raise ApiError(422, "invalid_window", "start must be before end")
    if end - start > MAX_SPAN:
        raise ApiError(422, "window_too_long", f"a window may span at most {MAX_SPAN.days} days")
    return start, end


def _series(state: State) -> Any:
    return timeseries_store(state)


# ------------------------------------------------------------------------ machine configuration
def _config_out(asset_id: str, row: ProductionConfigRow | None) -> ProductionConfigOut:
    if row is None:
        return ProductionConfigOut.model_validate(
            {"asset_id": asset_id, "configured": False, **ProductionConfigIn().model_dump()}
        )
    return ProductionConfigOut.model_validate(row)


@router.get(
    "/assets/{asset_id}/production", operation_id="get_production_config", response_model=ProductionConfigOut
)
def get_production_config(asset_id: str, scope: ReadScope) -> ProductionConfigOut:
    """How this machine's states and part counts are read (``configured: false`` if not yet)."""
    asset = scope.get(AssetRow, asset_id)
    return _config_out(asset.id, scope.find(ProductionConfigRow, asset_id=asset.id))


@router.put(
    "/assets/{asset_id}/production", operation_id="set_production_config", response_model=ProductionConfigOut
)
def set_production_config(asset_id: str, body: ProductionConfigIn, scope: WriteScope) -> ProductionConfigOut:
    """Say where states come from (a state tag with its codes, or rules over signals) and counts."""
    asset = scope.get(AssetRow, asset_id)
    return _config_out(asset.id, configure_machine(scope, asset, body.model_dump()))


# ------------------------------------------------------------------------------ shift calendars
@router.get("/sites/{site_id}/shifts", operation_id="get_shifts", response_model=ShiftsOut)
def get_shifts(site_id: str, scope: ReadScope) -> ShiftsOut:
    """The site's shifts in local time (none: planned around the clock)."""
    site = scope.get(SiteRow, site_id)
    row = scope.find(ShiftCalendarRow, site_id=site.id)
    return ShiftsOut(site_id=site.id, timezone=site.timezone, shifts=row.shifts if row else [])


@router.put("/sites/{site_id}/shifts", operation_id="set_shifts", response_model=ShiftsOut)
def set_shifts(site_id: str, body: ShiftsIn, scope: WriteScope) -> ShiftsOut:
    """Replace the site's shifts (a shift whose end is not after its start runs past midnight)."""
    site = scope.get(SiteRow, site_id)
    shifts = store_shifts(scope, site, [s.model_dump() for s in body.shifts])
    return ShiftsOut(site_id=site.id, timezone=site.timezone, shifts=shifts)


@router.get(
    "/sites/{site_id}/planned-downtime",
    operation_id="list_planned_downtime",
    response_model=list[PlannedDowntimeOut],
)
def list_planned_downtime(
    site_id: str, scope: ReadScope, start: Start = None, end: End = None
) -> list[PlannedDowntimeOut]:
    site = scope.get(SiteRow, site_id)
    lo, hi = _window(start, end)
    rows = scope.list(PlannedDowntimeRow, order_by=PlannedDowntimeRow.start, site_id=site.id)
    return [PlannedDowntimeOut.model_validate(r) for r in rows if r.start < hi and r.end > lo]


@router.post(
    "/sites/{site_id}/planned-downtime",
    operation_id="create_planned_downtime",
    response_model=PlannedDowntimeOut,
    status_code=201,
)
def create_planned_downtime(site_id: str, body: PlannedDowntimeIn, scope: WriteScope) -> PlannedDowntimeOut:
    """Planned maintenance, meetings or holidays: not counted against availability."""
    site = scope.get(SiteRow, site_id)
    start, end = _window(body.start, body.end)
    row = scope.add(PlannedDowntimeRow(site_id=site.id, start=start, end=end, reason=body.reason))
    return PlannedDowntimeOut.model_validate(row)


@router.delete(
    "/planned-downtime/{planned_downtime_id}", operation_id="delete_planned_downtime", response_model=Deleted
)
def delete_planned_downtime(planned_downtime_id: str, scope: WriteScope) -> Deleted:
    scope.delete(scope.get(PlannedDowntimeRow, planned_downtime_id))
    return Deleted(id=planned_downtime_id)


# ------------------------------------------------------------------------- counts, stops, reasons
@router.post(
    "/assets/{asset_id}/counts", operation_id="post_counts", response_model=CountsStored, status_code=201
)
def post_counts(asset_id: str, body: CountsIn, scope: WriteScope) -> CountsStored:
    """Good and scrap parts (from an MES, a file or a terminal), each at the time it was counted."""
    asset = scope.get(AssetRow, asset_id)
    for i, c in enumerate(body.counts):
        if c.ts.tzinfo is None or not 2000 <= c.ts.year <= 2100:
            raise ApiError(
                422, "invalid_time", f"counts[{i}].ts must have a zone offset and lie in 2000-2100"
            )
    for c in body.counts:
        scope.add(
            ProductionCountRow(
                asset_id=asset.id,
                ts=c.ts,
                product=c.product,
                good=c.good,
                scrap=c.scrap,
                ideal_cycle_s=c.ideal_cycle_s,
            )
        )
    return CountsStored(stored=len(body.counts))


@router.get("/assets/{asset_id}/stops", operation_id="list_stops", response_model=list[StopOut])
def list_stops(
    asset_id: str,
    scope: ReadScope,
    state: State,
    start: Start = None,
    end: End = None,
    min_s: Annotated[float, Query(ge=0, le=86_400)] = 0.0,
) -> list[StopOut]:
    """The machine's stops (idle, down, setup) with any reason given, for reason entry."""
    asset = scope.get(AssetRow, asset_id)
    lo, hi = _window(start, end)
    stops = ProductionService(scope, _series(state)).stops(asset, lo, hi, min_s=min_s)
    return [StopOut.model_validate(s) for s in stops]


@router.post(
    "/assets/{asset_id}/downtime-reasons",
    operation_id="create_downtime_reason",
    response_model=ReasonOut,
    status_code=201,
)
def create_downtime_reason(asset_id: str, body: ReasonIn, scope: WriteScope, principal: Reader) -> ReasonOut:
    """Why the machine stopped (entered on the shop floor)."""
    asset = scope.get(AssetRow, asset_id)
    start, end = _window(body.start, body.end)
    row = scope.add(
        DowntimeReasonRow(
            asset_id=asset.id,
            start=start,
            end=end,
            reason=body.reason.strip(),
            note=body.note,
            entered_by=principal.actor,
        )
    )
    return ReasonOut.model_validate(row)


@router.get(
    "/assets/{asset_id}/downtime-reasons",
    operation_id="list_downtime_reasons",
    response_model=list[ReasonOut],
)
def list_downtime_reasons(
    asset_id: str, scope: ReadScope, start: Start = None, end: End = None
) -> list[ReasonOut]:
    asset = scope.get(AssetRow, asset_id)
    lo, hi = _window(start, end)
    rows = scope.list(DowntimeReasonRow, order_by=DowntimeReasonRow.start, asset_id=asset.id)
    return [ReasonOut.model_validate(r) for r in rows if r.start < hi and r.end > lo]


# ------------------------------------------------------------------------------------------ OEE
def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def _rows(frame: pd.DataFrame, key: str) -> list[OeeRowOut]:
    if frame.empty:
        return []
    records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    return [OeeRowOut.model_validate(_clean({**r, "key": str(r[key])})) for r in records]


@router.get("/oee", operation_id="get_oee", response_model=OeeOut)
def get_oee(
    scope: ReadScope,
    state: State,
    level: Literal["machine", "line", "site", "company"] = "company",
    id: Annotated[str | None, Query(max_length=40, description="machine, line or site id")] = None,
    start: Start = None,
    end: End = None,
    by: Literal["shift", "day", "week"] = "day",
) -> OeeOut:
    """OEE by ISO 22400 (availability x performance x quality) with its losses, per period and machine."""
    lo, hi = _window(start, end)
    report = ProductionService(scope, _series(state)).report(level, id, lo, hi, by=by)
    return OeeOut(
        level=level,
        start=lo,
        end=hi,
        by=by,
        machines=report.machines,
        total=OeeFiguresOut.model_validate(report.total.as_dict()),
        by_period=_rows(report.by_period, by),
        by_machine=_rows(report.by_machine, "asset"),
        losses=[LossOut.model_validate(r) for r in report.losses.to_dict("records")],
    )


# --------------------------------------------------------------------------- the complex view
def _consent(scope: Any) -> ComplexConsentRow | None:
    rows = scope.list(ComplexConsentRow, order_by=ComplexConsentRow.given_at.desc(), limit=1)
    row = rows[0] if rows else None
    return row if row is not None and row.revoked_at is None else None


def _consent_out(row: ComplexConsentRow | None) -> ConsentOut:
    if row is None:
        return ConsentOut(consented=False)
    return ConsentOut(
        consented=True,
        named=row.named,
        complex_name=row.complex_name,
        given_at=row.given_at,
        given_by=row.given_by,
    )


@router.get("/complex/consent", operation_id="get_complex_consent", response_model=ConsentOut)
def get_complex_consent(scope: ReadScope) -> ConsentOut:
    """Whether your company counts in the industrial complex's aggregates."""
    return _consent_out(_consent(scope))


@router.put("/complex/consent", operation_id="give_complex_consent", response_model=ConsentOut)
def give_complex_consent(body: ConsentIn, scope: AdminScope, principal: Reader) -> ConsentOut:
    """Count your company in the complex's aggregates (admin); ``named`` lets it be named there."""
    current = _consent(scope)
    if current is not None:
        current.named, current.complex_name = body.named, body.complex_name
        scope.session.flush()
        return _consent_out(current)
    row = scope.add(
        ComplexConsentRow(named=body.named, complex_name=body.complex_name, given_by=principal.actor)
    )
    return _consent_out(row)


@router.delete("/complex/consent", operation_id="withdraw_complex_consent", response_model=ConsentOut)
def withdraw_complex_consent(scope: AdminScope, principal: Reader) -> ConsentOut:
    """Withdraw: your company leaves every aggregate at once (the record of consent is kept)."""
    current = _consent(scope)
    if current is not None:
        current.revoked_at, current.revoked_by = utcnow(), principal.actor
        scope.session.flush()
    return ConsentOut(consented=False)


@router.get("/complex/standing", operation_id="get_complex_standing", response_model=dict[str, Any])
def get_complex_standing(
    principal: Reader, session: DbSession, state: State, start: Start = None, end: End = None
) -> dict[str, Any]:
    """Where your company stands in the complex's OEE distribution (anonymous percentile)."""
    lo, hi = _window(start, end)
    return complex_view.standing(session, _series(state), principal.org_id, lo, hi)


@router.get("/platform/complex", operation_id="get_complex_view", response_model=dict[str, Any])
def get_complex_view(
    _: Operator, session: DbSession, state: State, start: Start = None, end: End = None
) -> dict[str, Any]:
    """Aggregates over consenting companies only; any figure resting on fewer than 3 is suppressed."""
    lo, hi = _window(start, end)
    return complex_view.complex_view(session, _series(state), lo, hi)

"""Deployments (model version -> hub scorer or edge device) and alerts (list, acknowledge, stream)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from axhub.api.deps import Principal, Reader, ReadScope, State, Writer, WriteScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.routes._util import SSE_RESPONSE, page_of, sse
from axhub.api.schemas.alerting import AckIn
from axhub.api.schemas.common import Deleted, Page, Paging, paging
from axhub.api.schemas.ops import AlertOut, DeploymentCreate, DeploymentOut, DeploymentUpdate
from axhub.core.timeutil import as_utc, utcnow
from axhub.registry.baseline import ensure_deployable
from axhub.store.models import AlertNoteRow, AlertRow, AssetRow, DeploymentRow, EdgeDeviceRow, ModelVersionRow
from axhub.store.scoped import OrgScope

deployments = APIRouter(prefix="/deployments", tags=["deployments"], responses=ERROR_RESPONSES)
alerts = APIRouter(prefix="/alerts", tags=["alerts"], responses=ERROR_RESPONSES)
Pg = Annotated[Paging, Depends(paging)]


@deployments.get("", operation_id="list_deployments", response_model=Page[DeploymentOut])
def list_deployments(scope: ReadScope, pg: Pg, active: bool | None = None) -> Page[DeploymentOut]:
    return page_of(
        scope, DeploymentRow, DeploymentOut, pg, order_by=DeploymentRow.created_at.desc(), active=active
    )


@deployments.post("", operation_id="create_deployment", response_model=DeploymentOut, status_code=201)
def create_deployment(body: DeploymentCreate, scope: WriteScope) -> DeploymentOut:
    """Deploy one of your model versions to the hub scorer (for an asset) or to an edge device.

    A version whose evaluation did not beat its trivial baseline is refused (409) unless
    ``allow_below_baseline`` is set."""
    version = scope.get(ModelVersionRow, body.model_version_id)
    ensure_deployable(
        version.name, version.version, version.metrics, allow_below_baseline=body.allow_below_baseline
    )
    if body.asset_id:
        scope.get(AssetRow, body.asset_id)
    if body.edge_device_id:
        scope.get(EdgeDeviceRow, body.edge_device_id)
    row = DeploymentRow(**body.model_dump(exclude={"allow_below_baseline"}))
    return DeploymentOut.model_validate(scope.add(row))


@deployments.get("/{deployment_id}", operation_id="get_deployment", response_model=DeploymentOut)
def get_deployment(deployment_id: str, scope: ReadScope) -> DeploymentOut:
    return DeploymentOut.model_validate(scope.get(DeploymentRow, deployment_id))


@deployments.patch("/{deployment_id}", operation_id="update_deployment", response_model=DeploymentOut)
def update_deployment(deployment_id: str, body: DeploymentUpdate, scope: WriteScope) -> DeploymentOut:
    row = scope.get(DeploymentRow, deployment_id)
    row.active = body.active
    scope.session.flush()
    return DeploymentOut.model_validate(row)


@deployments.delete("/{deployment_id}", operation_id="delete_deployment", response_model=Deleted)
def delete_deployment(deployment_id: str, scope: WriteScope) -> Deleted:
    scope.delete(scope.get(DeploymentRow, deployment_id))
    return Deleted(id=deployment_id)


@alerts.get("", operation_id="list_alerts", response_model=Page[AlertOut])
def list_alerts(
    scope: ReadScope,
    pg: Pg,
    asset_id: Annotated[str | None, Query(max_length=40)] = None,
    severity: Annotated[str | None, Query(pattern=r"^(info|warning|critical)$")] = None,
    acknowledged: bool | None = None,
) -> Page[AlertOut]:
    stmt = scope.select(AlertRow)
    if asset_id:
        stmt = stmt.where(AlertRow.asset_id == asset_id)
    if severity:
        stmt = stmt.where(AlertRow.severity == severity)
    if acknowledged is not None:
        stmt = stmt.where(
            AlertRow.acknowledged_at.is_not(None) if acknowledged else AlertRow.acknowledged_at.is_(None)
        )
    from sqlalchemy import func, select

    total = int(scope.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = scope.session.scalars(stmt.order_by(AlertRow.ts.desc()).limit(pg.limit).offset(pg.offset)).all()
    return Page[AlertOut](
        items=[AlertOut.model_validate(r) for r in rows], total=total, limit=pg.limit, offset=pg.offset
    )


@alerts.get(
    "/stream",
    operation_id="stream_alerts",
    response_class=StreamingResponse,
    responses={**ERROR_RESPONSES, **SSE_RESPONSE},
)
async def stream_alerts(
    request: Request,
    principal: Reader,
    app: State,
    since: Annotated[datetime | None, Query(description="Also send alerts created after this time")] = None,
    timeout: Annotated[
        float, Query(ge=0, le=3600, description="Close the stream after this many seconds")
    ] = 600,
    poll: Annotated[float, Query(ge=0.05, le=10)] = 1.0,
) -> StreamingResponse:
    """Server-sent events: one ``alert`` event per new alert of your organisation (at most a few
    streams per caller at once: 429 beyond)."""
    # Async: the cap is checked on the event loop, so a refused stream takes no worker thread.
    org_id = principal.org_id
    slot = app.streams.take(principal.actor, org_id, timeout)
    cursor = as_utc(since) if since else utcnow()

    async def events() -> AsyncIterator[bytes]:
        nonlocal cursor
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        yield b": connected\n\n"
        while time.monotonic() < deadline and not await request.is_disconnected():
            rows = await asyncio.to_thread(_new_alerts, app, org_id, cursor)
            for row in rows:
                if row.id in seen:
                    continue
                seen.add(row.id)
                cursor = max(cursor, row.created_at)
                yield sse("alert", row.model_dump(mode="json"), row.id)
            await asyncio.sleep(poll)
        yield sse("end", {})

    return StreamingResponse(
        app.streams.guard(slot, events()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


def _new_alerts(app: State, org_id: str, after: datetime) -> list[AlertOut]:
    with app.db.session() as s:
        scope = OrgScope(s, org_id)
        rows = s.scalars(
            scope.select(AlertRow)
            .where(AlertRow.created_at >= after)
            .order_by(AlertRow.created_at)
            .limit(200)
        ).all()
        return [AlertOut.model_validate(r) for r in rows]


@alerts.get("/{alert_id}", operation_id="get_alert", response_model=AlertOut)
def get_alert(alert_id: str, scope: ReadScope) -> AlertOut:
    return AlertOut.model_validate(scope.get(AlertRow, alert_id))


@alerts.post("/{alert_id}/ack", operation_id="acknowledge_alert", response_model=AlertOut)
def acknowledge_alert(
    alert_id: str, scope: WriteScope, principal: Writer, body: Annotated[AckIn | None, Body()] = None
) -> AlertOut:
    """Acknowledge an alert (who and when are recorded), optionally with a note."""
    row = scope.get(AlertRow, alert_id)
    if row.acknowledged_at is None:
        row.acknowledged_by = principal.actor
        row.acknowledged_at = utcnow()
    if body is not None and body.note:
        scope.add(AlertNoteRow(alert_id=row.id, author=principal.actor, text=body.note))
    scope.session.flush()
    return AlertOut.model_validate(row)


del Principal

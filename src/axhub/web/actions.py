"""The dashboard's own small endpoints (``/web/api``): live events, alert acknowledgement, job
logs and inspection images (uploads go to the API's ``create_upload``).

Each uses the API's authentication (session cookie + CSRF on writes, or a key) and the caller's
``OrgScope``; another organisation's ids answer 404 like everywhere else.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import desc

from axhub.api.deps import DbSession, Reader, State, Writer
from axhub.core.errors import NotFoundError
from axhub.core.timeutil import utcnow
from axhub.store.models import AlertRow, AssetRow, JobRow
from axhub.store.scoped import OrgScope
from axhub.web import views
from axhub.web.alert_text import alert_title
from axhub.web.i18n import Translator, locale_of
from axhub.web.names import display_name

router = APIRouter(prefix="/web/api", include_in_schema=False)

POLL_S = 2.0
# A browser's EventSource reconnects by itself (``retry:``); ending each stream after this long
# lets its stream slot expire on a schedule even if the disconnect went unnoticed.
MAX_LIFE_S = 1800.0


@router.post("/alerts/{alert_id}/ack")
def acknowledge_alert(alert_id: str, principal: Writer, session: DbSession) -> dict[str, Any]:
    alert = OrgScope(session, principal.org_id).get(AlertRow, alert_id)
    if alert.acknowledged_at is None:
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = principal.actor
    return {
        "id": alert.id,
        "acknowledged_at": alert.acknowledged_at.isoformat(),
        "acknowledged_by": alert.acknowledged_by,
    }


@router.get("/jobs/{job_id}/logs")
def job_logs(job_id: str, principal: Reader, session: DbSession, after: int = 0) -> list[dict[str, Any]]:
    scope = OrgScope(session, principal.org_id)
    return [
        {"id": r.id, "ts": r.ts.isoformat(), "level": r.level, "message": r.message}
        for r in views.job_logs(scope, job_id, after)
    ]


@router.get("/blobs/{sha256}")
def inspection_blob(sha256: str, principal: Reader, session: DbSession, state: State) -> Response:
    """An image or heatmap, only if one of this organisation's inspection results names it."""
    scope = OrgScope(session, principal.org_id)
    referenced = {
        str(p.get(key))
        for p in views.inspection_view(scope)["parts"]
        for key in ("image_sha256", "heatmap_sha256")
        if p.get(key)
    }
    if sha256 not in referenced:
        raise NotFoundError("image not found")
    data = state.blobs.get(sha256)
    media = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n".encode()


@router.get("/events")
async def live_events(request: Request, principal: Reader, state: State) -> StreamingResponse:
    """New alerts and job progress of the caller's organisation, pushed as server-sent events."""
    org_id = principal.org_id
    t = Translator(locale_of(request))
    slot = state.streams.take(principal.actor, org_id, MAX_LIFE_S)

    def snapshot(since: Any) -> tuple[list[dict[str, Any]], dict[str, tuple[str, float]]]:
        with state.db.session() as session:
            scope = OrgScope(session, org_id)
            assets = {a.id: a for a in scope.list(AssetRow)}
            sigs = views.signals_by_asset(scope)

            def title(a: AlertRow) -> str:
                names = {k: display_name(v, t.locale) for k, v in sigs.get(a.asset_id, {}).items()}
                asset = assets.get(a.asset_id)
                machine = display_name(asset, t.locale) if asset else a.asset_id
                return alert_title(a, machine, names, t)

            alerts = [
                {
                    "id": a.id,
                    "title": title(a),
                    "severity": a.severity,
                    "asset_id": a.asset_id,
                    "ts": a.ts.isoformat(),
                }
                for a in scope.session.scalars(
                    scope.select(AlertRow)
                    .where(AlertRow.created_at > since)
                    .order_by(desc(AlertRow.created_at))
                )
            ]
            active = scope.session.scalars(
                scope.select(JobRow).where((JobRow.finished_at.is_(None)) | (JobRow.finished_at > since))
            )
            jobs = {j.id: (j.state, float(j.progress)) for j in active}
        return alerts, jobs

    async def stream() -> AsyncIterator[bytes]:
        since = utcnow()
        known: dict[str, tuple[str, float]] = {}
        seen: set[str] = set()
        yield b"retry: 5000\n\n" + _sse("hello", {"org": org_id})
        ends = time.monotonic() + MAX_LIFE_S
        while not await request.is_disconnected() and time.monotonic() < ends:
            checked = utcnow()
            alerts, jobs = await asyncio.to_thread(snapshot, since - timedelta(seconds=1))
            for alert in alerts:
                if alert["id"] not in seen:
                    seen.add(alert["id"])
                    yield _sse("alert", alert)
            for job_id, (job_state, progress) in jobs.items():
                if known.get(job_id) != (job_state, progress):
                    yield _sse("job", {"id": job_id, "state": job_state, "progress": progress})
            known.update(jobs)
            since = checked
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        state.streams.guard(slot, stream()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

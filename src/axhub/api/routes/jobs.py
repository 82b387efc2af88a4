"""Jobs: submit, list, inspect, cancel; logs; live progress and logs over server-sent events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from axhub.api.deps import Reader, ReadScope, State, Writer, WriteScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.routes._util import SSE_RESPONSE, page_of, sse
from axhub.api.schemas.common import Page, Paging, paging
from axhub.api.schemas.work import JobLogOut, JobOut
from axhub.core.errors import NotFoundError, PermissionDeniedError
from axhub.jobs.param_limits import check_params
from axhub.jobs.queue import TERMINAL, JobQueue
from axhub.jobs.spec import (
    AnySpec,
    BacktestSpec,
    EvaluateSpec,
    ExportSpec,
    FederatedRunSpec,
    JobSpec,
    TrainSpec,
)
from axhub.ml.base import Estimator
from axhub.store.models import AssetRow, DatasetRow, JobLogRow, JobRow, ModelVersionRow
from axhub.store.scoped import OrgScope

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERROR_RESPONSES)
_SPEC = TypeAdapter(JobSpec)


def _queue(state: State) -> JobQueue:
    if state.queue is None:
        state.queue = JobQueue(state.db)
    return state.queue


def _check_refs(scope: OrgScope, spec: AnySpec) -> None:
    """Ids in a spec must be the caller's own (another company's look like missing ones)."""
    if isinstance(spec, TrainSpec):
        family, _, name = spec.estimator.partition("/")
        Estimator.lookup(family, name)
        check_params(spec.params)  # bounded work per job (n_estimators, epochs, ...)
        scope.get(DatasetRow, spec.dataset_id)
    elif isinstance(spec, EvaluateSpec):
        scope.get(DatasetRow, spec.dataset_id)
        scope.get(ModelVersionRow, spec.model_version_id)
    elif isinstance(spec, ExportSpec):
        scope.get(ModelVersionRow, spec.model_version_id)
    elif isinstance(spec, BacktestSpec):
        scope.get(ModelVersionRow, spec.model_version_id)
        scope.get(AssetRow, spec.asset_id)
    elif isinstance(spec, FederatedRunSpec):
        # Only the lead's admin starts a run, with its checks (members, family, one at a time).
        raise PermissionDeniedError(
            "federated runs start at POST /api/v1/federated/{id}/runs", hint="or from the dashboard"
        )


@router.get("", operation_id="list_jobs", response_model=Page[JobOut])
def list_jobs(
    scope: ReadScope,
    pg: Annotated[Paging, Depends(paging)],
    state: Annotated[str | None, Query(pattern=r"^(queued|running|succeeded|failed|cancelled)$")] = None,
) -> Page[JobOut]:
    return page_of(scope, JobRow, JobOut, pg, order_by=JobRow.created_at.desc(), state=state)


@router.post("", operation_id="submit_job", response_model=JobOut, status_code=201)
def submit_job(
    spec: Annotated[
        JobSpec, Body(description="What to run: kind train | evaluate | export | backtest | probe")
    ],
    scope: WriteScope,
    principal: Writer,
    app: State,
) -> JobOut:
    """Queue a job for your organisation; it starts when a worker is free and your quota allows."""
    _check_refs(scope, spec)
    row = _queue(app).submit(scope, spec, submitted_by=principal.actor)
    scope.session.commit()  # visible to workers before we wake them
    if app.executor is not None:
        app.executor.notify()
    return JobOut.model_validate(row)


@router.get("/{job_id}", operation_id="get_job", response_model=JobOut)
def get_job(job_id: str, scope: ReadScope) -> JobOut:
    return JobOut.model_validate(scope.get(JobRow, job_id))


@router.post("/{job_id}/cancel", operation_id="cancel_job", response_model=JobOut)
def cancel_job(job_id: str, scope: WriteScope, app: State) -> JobOut:
    """Cancel a queued job, or ask a running one to stop at its next checkpoint."""
    return JobOut.model_validate(_queue(app).cancel(scope, job_id))


@router.get("/{job_id}/logs", operation_id="list_job_logs", response_model=Page[JobLogOut])
def list_job_logs(job_id: str, scope: ReadScope, pg: Annotated[Paging, Depends(paging)]) -> Page[JobLogOut]:
    scope.get(JobRow, job_id)
    return page_of(scope, JobLogRow, JobLogOut, pg, order_by=JobLogRow.id, job_id=job_id)


@router.get(
    "/{job_id}/events",
    operation_id="stream_job_events",
    response_class=StreamingResponse,
    responses={**ERROR_RESPONSES, **SSE_RESPONSE},
)
async def stream_job_events(
    request: Request,
    job_id: str,
    principal: Reader,
    app: State,
    timeout: Annotated[
        float, Query(ge=0, le=3600, description="Close the stream after this many seconds")
    ] = 600,
    poll: Annotated[float, Query(ge=0.05, le=10)] = 0.5,
) -> StreamingResponse:
    """Server-sent events: ``job`` (state, progress) on every change and ``log`` per log line;
    the stream ends after the job reaches an end state. At most a few streams per caller are
    open at once (429 beyond); between polls the stream holds no database connection."""
    # Async, and the cap first: a refused stream (429) is answered on the event loop without a
    # worker thread or the database. Under a stream flood most requests are refused, and each
    # used to take three thread hops and a query before being told so.
    org_id = principal.org_id
    slot = app.streams.take(principal.actor, org_id, timeout)
    try:
        await run_in_threadpool(_check_job, app, org_id, job_id)  # 404 before any streaming
    except BaseException:
        app.streams.give_back(slot)
        raise

    async def events() -> AsyncIterator[bytes]:
        last_log = 0
        last_seen: tuple[str, float] | None = None
        deadline = time.monotonic() + timeout
        while True:
            job, logs = await asyncio.to_thread(_snapshot, app, org_id, job_id, last_log)
            if job is None:
                return
            for log in logs:
                last_log = log.id
                yield sse("log", log.model_dump(mode="json"), str(log.id))
            if (job.state, job.progress) != last_seen:
                last_seen = (job.state, job.progress)
                yield sse("job", job.model_dump(mode="json"))
            if job.state in TERMINAL or time.monotonic() >= deadline or await request.is_disconnected():
                yield sse("end", {"state": job.state})
                return
            await asyncio.sleep(poll)

    return StreamingResponse(
        app.streams.guard(slot, events()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


def _check_job(app: State, org_id: str, job_id: str) -> None:
    with app.db.session() as s:
        OrgScope(s, org_id).get(JobRow, job_id)


def _snapshot(app: State, org_id: str, job_id: str, after_log: int) -> tuple[JobOut | None, list[JobLogOut]]:
    with app.db.session() as s:
        scope = OrgScope(s, org_id)
        try:
            job = JobOut.model_validate(scope.get(JobRow, job_id))
        except NotFoundError:
            return None, []
        rows = s.scalars(
            scope.select(JobLogRow)
            .where(JobLogRow.job_id == job_id, JobLogRow.id > after_log)
            .order_by(JobLogRow.id)
            .limit(500)
        ).all()
        return job, [JobLogOut.model_validate(r) for r in rows]


del select

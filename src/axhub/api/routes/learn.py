"""A machine's own data to a deployed model: a dataset from a window, training on a normal
period (a job with progress), backtests over any period (a job), deploy in one call, events.
The work is ``jobs.learning`` (shared with the CLI); this module maps HTTP to it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from axhub.api.deps import ReadScope, State, Writer, WriteScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.routes._util import apply_update
from axhub.api.routes.jobs import _queue
from axhub.api.schemas.common import Deleted
from axhub.api.schemas.learn import (
    BacktestIn,
    DeployIn,
    DeployOut,
    EventIn,
    EventOut,
    EventUpdate,
    TrainIn,
    TrainOut,
    WindowDatasetIn,
)
from axhub.api.schemas.ops import DeploymentOut
from axhub.api.schemas.work import DatasetOut, JobOut
from axhub.core.timeutil import as_utc
from axhub.jobs import learning
from axhub.store.models import AssetRow, EventRow

learn = APIRouter(tags=["learn"], responses=ERROR_RESPONSES)
events = APIRouter(tags=["events"], responses=ERROR_RESPONSES)


@learn.post(
    "/assets/{asset_id}/datasets",
    operation_id="create_window_dataset",
    response_model=DatasetOut,
    status_code=201,
)
def create_window_dataset(
    asset_id: str, body: WindowDatasetIn, scope: WriteScope, state: State
) -> DatasetOut:
    """A dataset from a time window of this machine's readings (one column per signal)."""
    asset = scope.get(AssetRow, asset_id)
    row = learning.window_dataset(
        state.settings,
        scope,
        asset,
        body.start,
        body.end,
        signals=body.signals,
        interval=body.interval,
        name=body.name,
    )
    return DatasetOut.model_validate(row)


@learn.post(
    "/assets/{asset_id}/train", operation_id="train_on_period", response_model=TrainOut, status_code=201
)
def train_on_period(
    asset_id: str, body: TrainIn, scope: WriteScope, principal: Writer, state: State
) -> TrainOut:
    """Train a model on a period of this machine that was normal: a dataset of the window and a
    training job (follow it at ``/jobs/{id}`` or ``/jobs/{id}/events``; its result names the
    new model version). The version records the bucket interval and each operating state's
    normal range, so its alerts say e.g. '4.40 mm/s, normal 1.80 ± 0.10'."""
    asset = scope.get(AssetRow, asset_id)
    job, dataset = learning.submit_training(
        state.settings,
        _queue(state),
        scope,
        asset,
        body.start,
        body.end,
        signals=body.signals,
        interval=body.interval,
        estimator=body.estimator,
        params=body.params,
        model_name=body.model_name,
        actor=principal.actor,
    )
    if state.executor is not None:
        state.executor.notify()
    return TrainOut(job=JobOut.model_validate(job), dataset=DatasetOut.model_validate(dataset))


@learn.post(
    "/assets/{asset_id}/backtests", operation_id="backtest_asset", response_model=JobOut, status_code=201
)
def backtest_asset(
    asset_id: str, body: BacktestIn, scope: WriteScope, principal: Writer, state: State
) -> JobOut:
    """Score a past period of this machine (default: its whole history) through a model version,
    as a job. The result holds the threshold, the scores, the alerts that would have fired and
    the events marked in that period; with ``store_alerts`` the alerts are stored (backfill)."""
    asset = scope.get(AssetRow, asset_id)
    job = learning.submit_backtest(
        state.settings,
        _queue(state),
        scope,
        asset,
        body.model_version_id,
        body.start,
        body.end,
        store_alerts=body.store_alerts,
        actor=principal.actor,
    )
    if state.executor is not None:
        state.executor.notify()
    return JobOut.model_validate(job)


@learn.post(
    "/models/{version_id}/deploy", operation_id="deploy_model", response_model=DeployOut, status_code=201
)
def deploy_model(version_id: str, body: DeployIn, scope: WriteScope, state: State) -> DeployOut:
    """Deploy a model version on a machine in one call: the machine's previous hub deployments
    are switched off, new data on it (files, uploads, connectors) is scored by this version."""
    asset = scope.get(AssetRow, body.asset_id)
    row, replaced = learning.deploy(
        scope,
        state.blobs,
        version_id,
        asset,
        promote=body.promote,
        allow_below_baseline=body.allow_below_baseline,
    )
    return DeployOut(deployment=DeploymentOut.model_validate(row), replaced=replaced)


# ------------------------------------------------------------------ events
@events.get("/assets/{asset_id}/events", operation_id="list_events", response_model=list[EventOut])
def list_events(
    asset_id: str,
    scope: ReadScope,
    start: Annotated[datetime | None, Query()] = None,
    end: Annotated[datetime | None, Query()] = None,
) -> list[EventOut]:
    """Events marked on this machine (maintenance log entries, faults seen...), oldest first."""
    asset = scope.get(AssetRow, asset_id)
    stmt = scope.select(EventRow).where(EventRow.asset_id == asset.id)
    if start is not None:
        stmt = stmt.where(EventRow.start >= as_utc(start))
    if end is not None:
        stmt = stmt.where(EventRow.start < as_utc(end))
    rows = scope.session.scalars(stmt.order_by(EventRow.start).limit(5000)).all()
    return [EventOut.model_validate(r) for r in rows]


@events.post(
    "/assets/{asset_id}/events", operation_id="create_event", response_model=EventOut, status_code=201
)
def create_event(asset_id: str, body: EventIn, scope: WriteScope, principal: Writer) -> EventOut:
    asset = scope.get(AssetRow, asset_id)
    if body.end is not None:
        learning.check_window(body.start, body.end)
    row = EventRow(
        asset_id=asset.id,
        start=as_utc(body.start),
        end=as_utc(body.end) if body.end else None,
        kind=body.kind,
        title=body.title,
        note=body.note,
        created_by=principal.actor,
    )
    return EventOut.model_validate(scope.add(row))


@events.patch("/events/{event_id}", operation_id="update_event", response_model=EventOut)
def update_event(event_id: str, body: EventUpdate, scope: WriteScope) -> EventOut:
    row = scope.get(EventRow, event_id)
    apply_update(row, body)
    row.start = as_utc(row.start)
    row.end = as_utc(row.end) if row.end else None
    scope.session.flush()
    return EventOut.model_validate(row)


@events.delete("/events/{event_id}", operation_id="delete_event", response_model=Deleted)
def delete_event(event_id: str, scope: WriteScope) -> Deleted:
    scope.delete(scope.get(EventRow, event_id))
    return Deleted(id=event_id)

"""A machine's own data to a deployed model: a dataset from a window, training on a normal
period (a job with progress), backtests over any period (a job), deploy in one call, events."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from axhub.api.deps import ReadScope, State, Writer, WriteScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.routes._util import apply_update
from axhub.api.routes.data import new_dataset
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
from axhub.core.errors import ConflictError, InputProblem, InputValidationError
from axhub.core.timeutil import as_utc
from axhub.jobs.spec import BacktestSpec, TrainSpec
from axhub.ml.base import Estimator
from axhub.registry.store import ModelRegistry
from axhub.store.models import AssetRow, DatasetRow, DeploymentRow, EventRow, ModelVersionRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

learn = APIRouter(tags=["learn"], responses=ERROR_RESPONSES)
events = APIRouter(tags=["events"], responses=ERROR_RESPONSES)
# The recommended anomaly model (chosen on SKAB, see docs/benchmarks.md): MSPC over 8-row windows.
DEFAULT_PARAMS = {"anomaly/mspc": {"window": 8, "smooth": 8}}


def _window(start: datetime, end: datetime, field: str = "end") -> tuple[datetime, datetime]:
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise InputValidationError(InputProblem("request", None, field, "the end must be after the start"))
    return start, end


def _signals(state: State, scope: OrgScope, asset: AssetRow, given: list[str] | None) -> list[str]:
    store = TimeSeriesStore(state.settings.timeseries_root)
    stored = store.list_signals(scope.org_id, asset.slug)
    if not given:
        if not stored:
            raise InputValidationError(
                InputProblem(asset.slug, None, None, "the machine has no readings yet"),
                hint="upload a file or connect the machine first",
            )
        return stored
    unknown = [s for s in given if s not in stored]
    if unknown:
        raise InputValidationError(
            [InputProblem(asset.slug, None, s, "no readings of this signal") for s in unknown]
        )
    return list(given)


def _window_dataset(
    state: State, scope: OrgScope, asset: AssetRow, body: WindowDatasetIn | TrainIn, name: str | None
) -> DatasetRow:
    start, end = _window(body.start, body.end)
    spec = {
        "source": "readings",
        "asset": asset.slug,
        "signals": _signals(state, scope, asset, body.signals),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "interval": body.interval,
        "agg": "mean",
    }
    return new_dataset(scope, name or f"{asset.slug}-{start:%Y%m%d}", "readings", spec)


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
    return DatasetOut.model_validate(_window_dataset(state, scope, asset, body, body.name))


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
    family, _, name = body.estimator.partition("/")
    Estimator.lookup(family, name)
    dataset = _window_dataset(state, scope, asset, body, f"{asset.slug}-normal")
    params = body.params if body.params is not None else DEFAULT_PARAMS.get(body.estimator, {})
    spec = TrainSpec(
        estimator=body.estimator,
        dataset_id=dataset.id,
        params=params,
        model_name=body.model_name or f"{asset.slug}-anomaly",
        test_fraction=0.0,  # a normal period has no faults to measure on
    )
    job = _queue(state).submit(scope, spec, submitted_by=principal.actor)
    scope.session.commit()
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
    ModelRegistry(scope, state.blobs).get_readable(body.model_version_id)
    first, last = TimeSeriesStore(state.settings.timeseries_root).time_range(scope.org_id, asset.slug)
    start = as_utc(body.start) if body.start else first
    # The last reading is included when the period runs to the end of the history.
    end = as_utc(body.end) if body.end else (last + timedelta(microseconds=1) if last else None)
    if start is None or end is None:
        raise InputValidationError(
            InputProblem(asset.slug, None, None, "the machine has no readings yet"),
            hint="upload a file or connect the machine first",
        )
    start, end = _window(start, end)
    spec = BacktestSpec(
        model_version_id=body.model_version_id,
        asset_id=asset.id,
        start=start,
        end=end,
        store_alerts=body.store_alerts,
    )
    job = _queue(state).submit(scope, spec, submitted_by=principal.actor)
    scope.session.commit()
    if state.executor is not None:
        state.executor.notify()
    return JobOut.model_validate(job)


@learn.post(
    "/models/{version_id}/deploy", operation_id="deploy_model", response_model=DeployOut, status_code=201
)
def deploy_model(version_id: str, body: DeployIn, scope: WriteScope, state: State) -> DeployOut:
    """Deploy a model version on a machine in one call: the machine's previous hub deployments
    are switched off, new data on it (files, uploads, connectors) is scored by this version."""
    registry = ModelRegistry(scope, state.blobs)
    version = scope.get(ModelVersionRow, version_id)
    asset = scope.get(AssetRow, body.asset_id)
    replaced = []
    for old in scope.list(DeploymentRow, asset_id=asset.id, active=True, target="hub"):
        old.active = False
        replaced.append(old.id)
    if body.promote and version.stage != "production":
        # e.g. an archived version may still be deployed by hand; its stage then stays
        with contextlib.suppress(ConflictError):
            registry.set_stage(version.id, "production")
    row = scope.add(DeploymentRow(model_version_id=version.id, asset_id=asset.id, target="hub"))
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
        _window(body.start, body.end)
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

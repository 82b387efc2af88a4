"""A machine's own data to a deployed model, as product logic shared by the API and the CLI:
a dataset from a time window, training on a normal period, backtests, deployment."""

from __future__ import annotations

import contextlib
import socket
from datetime import datetime, timedelta
from typing import Any

from axhub.core.errors import ConflictError, InputProblem, InputValidationError
from axhub.core.settings import Settings
from axhub.core.timeutil import as_utc
from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import AnySpec, BacktestSpec, TrainSpec
from axhub.ml.base import Estimator
from axhub.registry.store import ModelRegistry
from axhub.store.blobs import BlobStore
from axhub.store.db import Database
from axhub.store.models import AssetRow, DatasetRow, DeploymentRow, JobRow, ModelVersionRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

# The recommended anomaly model (chosen on SKAB, see docs/benchmarks.md): MSPC over 8-row windows.
DEFAULT_ESTIMATOR = "anomaly/mspc"
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"anomaly/mspc": {"window": 8, "smooth": 8}}


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise InputValidationError(InputProblem("period", None, "end", "the end must be after the start"))
    return start, end


def stored_signals(
    settings: Settings, scope: OrgScope, asset: AssetRow, given: list[str] | None
) -> list[str]:
    stored = TimeSeriesStore(settings.timeseries_root).list_signals(scope.org_id, asset.slug)
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


def window_dataset(
    settings: Settings,
    scope: OrgScope,
    asset: AssetRow,
    start: datetime,
    end: datetime,
    *,
    signals: list[str] | None = None,
    interval: str | None = "10s",
    name: str | None = None,
) -> DatasetRow:
    """The next version of a readings dataset over ``[start, end)`` of ``asset``."""
    start, end = check_window(start, end)
    spec = {
        "source": "readings",
        "asset": asset.slug,
        "signals": stored_signals(settings, scope, asset, signals),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "interval": interval,
        "agg": "mean",
    }
    name = name or f"{asset.slug}-{start:%Y%m%d}"
    latest = scope.list(DatasetRow, name=name, order_by=DatasetRow.version.desc(), limit=1)
    version = latest[0].version + 1 if latest else 1
    return scope.add(DatasetRow(name=name, version=version, kind="readings", spec=spec))


def submit(queue: JobQueue, scope: OrgScope, spec: AnySpec, actor: str | None) -> JobRow:
    row = queue.submit(scope, spec, submitted_by=actor)
    scope.session.commit()  # visible to workers before anyone wakes them
    return row


def submit_training(
    settings: Settings,
    queue: JobQueue,
    scope: OrgScope,
    asset: AssetRow,
    start: datetime,
    end: datetime,
    *,
    signals: list[str] | None = None,
    interval: str | None = "10s",
    estimator: str = DEFAULT_ESTIMATOR,
    params: dict[str, Any] | None = None,
    model_name: str | None = None,
    actor: str | None = None,
) -> tuple[JobRow, DatasetRow]:
    """A dataset of the normal period and a training job on it (no hold-out: nothing to measure)."""
    family, _, name = estimator.partition("/")
    Estimator.lookup(family, name)
    dataset = window_dataset(
        settings, scope, asset, start, end, signals=signals, interval=interval, name=f"{asset.slug}-normal"
    )
    spec = TrainSpec(
        estimator=estimator,
        dataset_id=dataset.id,
        params=params if params is not None else DEFAULT_PARAMS.get(estimator, {}),
        model_name=model_name or f"{asset.slug}-anomaly",
        test_fraction=0.0,
    )
    return submit(queue, scope, spec, actor), dataset


def submit_backtest(
    settings: Settings,
    queue: JobQueue,
    scope: OrgScope,
    asset: AssetRow,
    version_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    store_alerts: bool = False,
    actor: str | None = None,
) -> JobRow:
    """A backtest job over ``[start, end)`` (default: the machine's whole history)."""
    ModelRegistry(scope, BlobStore(settings.blob_root)).get_readable(version_id)
    first, last = TimeSeriesStore(settings.timeseries_root).time_range(scope.org_id, asset.slug)
    begin = as_utc(start) if start else first
    finish = as_utc(end) if end else (last + timedelta(microseconds=1) if last else None)
    if begin is None or finish is None:
        raise InputValidationError(
            InputProblem(asset.slug, None, None, "the machine has no readings yet"),
            hint="upload a file or connect the machine first",
        )
    begin, finish = check_window(begin, finish)
    spec = BacktestSpec(
        model_version_id=version_id, asset_id=asset.id, start=begin, end=finish, store_alerts=store_alerts
    )
    return submit(queue, scope, spec, actor)


def deploy(
    scope: OrgScope,
    blobs: BlobStore,
    version_id: str,
    asset: AssetRow,
    *,
    promote: bool = True,
    allow_below_baseline: bool = False,
) -> tuple[DeploymentRow, list[str]]:
    """Deploy a version on a machine: its other hub deployments are switched off. A version
    whose evaluation did not beat its trivial baseline is refused unless overridden."""
    from axhub.registry.baseline import ensure_deployable

    version = scope.get(ModelVersionRow, version_id)
    ensure_deployable(
        version.name, version.version, version.metrics, allow_below_baseline=allow_below_baseline
    )
    replaced = []
    for old in scope.list(DeploymentRow, asset_id=asset.id, active=True, target="hub"):
        old.active = False
        replaced.append(old.id)
    if promote and version.stage != "production":
        # e.g. an archived version may still be deployed by hand; its stage then stays
        with contextlib.suppress(ConflictError):
            ModelRegistry(scope, blobs).set_stage(version.id, "production")
    row = scope.add(DeploymentRow(model_version_id=version.id, asset_id=asset.id, target="hub"))
    return row, replaced


def run_here(db: Database, settings: Settings, job_id: str, on_progress: Any = None) -> JobRow:
    """Run queued jobs in this process until ``job_id`` ends (the embedded CLI has no workers)."""
    import time

    from axhub.jobs.queue import TERMINAL
    from axhub.jobs.runner import run_leased_job

    queue = JobQueue(db)
    worker = f"cli@{socket.gethostname()}"
    while True:
        with db.session() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            if job.state in TERMINAL:
                s.expunge(job)
                return job
        lease = queue.lease(worker)
        if lease is None:
            time.sleep(0.2)
            continue
        if on_progress is not None:
            on_progress(lease.job_id)
        run_leased_job(queue, lease, settings)

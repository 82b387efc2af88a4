"""What each job kind does. A handler gets a :class:`JobContext` and its validated spec and
returns an :class:`Outcome`: the result JSON plus the writes to commit *with* the completion
(so a worker that lost its lease commits nothing; see ``queue.py``)."""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from axhub.core.errors import AxHubError
from axhub.jobs.context import JobContext
from axhub.jobs.data import load_frames, readings_for_training, split_tail, training_record
from axhub.jobs.spec import (
    BacktestSpec,
    EvaluateSpec,
    ExportSpec,
    FederatedRunSpec,
    ProbeSpec,
    TrainSpec,
    parse_spec,
)
from axhub.registry.store import ModelRegistry
from axhub.store.blobs import BlobStore
from axhub.store.models import DatasetRow, ModelVersionRow
from axhub.store.scoped import OrgScope


@dataclass
class Outcome:
    result: dict[str, Any] = field(default_factory=dict)
    on_commit: Callable[[Session], None] | None = None


def run_handler(ctx: JobContext) -> Outcome:
    spec = parse_spec(ctx.lease.spec)
    if isinstance(spec, TrainSpec):
        return train(ctx, spec)
    if isinstance(spec, EvaluateSpec):
        return evaluate(ctx, spec)
    if isinstance(spec, ExportSpec):
        return export(ctx, spec)
    if isinstance(spec, BacktestSpec):
        from axhub.jobs.backtest import backtest

        return backtest(ctx, spec)
    if isinstance(spec, FederatedRunSpec):
        from axhub.jobs.federated_run import federated_run

        return federated_run(ctx, spec)
    return probe(ctx, spec)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: metrics that could not be computed are stored as null."""
    clean: dict[str, Any] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            clean[key] = value
            continue
        clean[key] = number if math.isfinite(number) else None
    return clean


@contextlib.contextmanager
def _job_device(ctx: JobContext) -> Iterator[None]:
    """Torch estimators of a ``gpu``-class job compute on the GPU Ray (or the host) gave this
    process; without one they fall back to the CPU, and the job log says why."""
    from axhub.ml import device as devices

    wanted = devices.for_resource_class(ctx.lease.resource_class)
    with devices.use_device(wanted):
        if wanted != "cpu":
            reason = devices.fallback_reason()
            if reason is None:
                ctx.log(f"computing on {devices.describe()}")
            else:
                ctx.log(reason, level="warning")
        yield


def train(ctx: JobContext, spec: TrainSpec) -> Outcome:
    from axhub.ml.base import Estimator

    family, _, name = spec.estimator.partition("/")
    cls = Estimator.lookup(family, name)
    with ctx.db.session() as s:
        dataset = OrgScope(s, ctx.lease.org_id).get(DatasetRow, spec.dataset_id)
    ctx.log(f"loading dataset {dataset.name} v{dataset.version}")
    frames = load_frames(dataset, ctx.settings)
    readings = dataset.spec.get("source") == "readings"
    if readings:
        frames = readings_for_training(frames, dataset.name)
    if frames.test is None:
        frames = split_tail(frames.train, spec.test_fraction)
    ctx.progress(0.1, f"training {spec.estimator} on {len(frames.train)} rows")
    estimator = cls(**spec.params)
    with _job_device(ctx):
        estimator.fit(frames.train)
    extra_params: dict[str, Any] = {}
    if readings:
        # Live and batch scoring average readings the way this model was trained, and explain
        # alerts against the normal statistics of each operating state of the training period.
        extra_params = training_record(
            dataset.spec, frames.train, list(getattr(estimator, "feature_names_in_", []))
        )
    ctx.progress(0.7, "evaluating")
    metrics: dict[str, Any] = {}
    if frames.test is not None and len(frames.test):
        try:
            metrics = _finite(estimator.evaluate(frames.test))
        except AxHubError as exc:
            ctx.log(f"no metrics on the held-out rows: {exc}", level="warning")
    ctx.progress(0.85, "saving the bundle")
    bundle_zip = estimator.save(ctx.workdir / "bundle", metrics=metrics, make_zip=True)
    ctx.check()

    created: dict[str, Any] = {}

    def register(session: Session) -> None:
        scope = OrgScope(session, ctx.lease.org_id)
        registry = ModelRegistry(scope, BlobStore(ctx.settings.blob_root))
        row = registry.register(
            bundle_zip,
            name=spec.model_name,
            metrics=metrics,
            dataset=scope.get(DatasetRow, spec.dataset_id),
            created_by=f"job:{ctx.lease.job_id}",
            extra_params=extra_params or None,
        )
        created.update(id=row.id, version=row.version, name=row.name)

    # The id is only known inside the completion transaction; the result is patched there too.
    result: dict[str, Any] = {"metrics": metrics, "rows_train": len(frames.train)}

    def commit(session: Session) -> None:
        register(session)
        from axhub.store.models import JobRow

        job = session.get(JobRow, ctx.lease.job_id)
        assert job is not None
        job.result = {
            **result,
            "model_version_id": created["id"],
            "model_name": created["name"],
            "model_version": created["version"],
        }

    return Outcome(result=result, on_commit=commit)


def evaluate(ctx: JobContext, spec: EvaluateSpec) -> Outcome:
    from axhub.ml.base import Estimator

    with ctx.db.session() as s:
        scope = OrgScope(s, ctx.lease.org_id)
        dataset = scope.get(DatasetRow, spec.dataset_id)
        _, raw = ModelRegistry(scope, BlobStore(ctx.settings.blob_root)).bundle_bytes(spec.model_version_id)
    frames = load_frames(dataset, ctx.settings)
    data = frames.test if frames.test is not None else frames.train
    ctx.progress(0.3, f"scoring {len(data)} rows")
    with tempfile.TemporaryDirectory(prefix="axhub-eval-") as tmp:
        path = Path(tmp) / "bundle.zip"
        path.write_bytes(raw)
        estimator = Estimator.load(path)
        with _job_device(ctx):
            metrics = _finite(estimator.evaluate(data))
    return Outcome(result={"metrics": metrics, "dataset_id": dataset.id, "rows": len(data)})


def export(ctx: JobContext, spec: ExportSpec) -> Outcome:
    with ctx.db.session() as s:
        scope = OrgScope(s, ctx.lease.org_id)
        blobs = BlobStore(ctx.settings.blob_root)
        row, raw = ModelRegistry(scope, blobs).bundle_bytes(spec.model_version_id)
        if row.org_id != ctx.lease.org_id:
            scope.get(ModelVersionRow, spec.model_version_id)  # shared models are not re-exported
    if spec.format == "bundle":
        return Outcome(result={"format": "bundle", "sha256": row.bundle_sha256, "bytes": len(raw)})
    with tempfile.TemporaryDirectory(prefix="axhub-export-") as tmp:
        path = Path(tmp) / "bundle.zip"
        path.write_bytes(raw)
        with zipfile.ZipFile(path) as archive:
            onnx_bytes = archive.read("model.onnx")
    sha = BlobStore(ctx.settings.blob_root).put(onnx_bytes)
    ctx.log(f"ONNX graph stored ({len(onnx_bytes)} bytes)")
    return Outcome(result={"format": "onnx", "sha256": sha, "bytes": len(onnx_bytes)})


def probe(ctx: JobContext, spec: ProbeSpec) -> Outcome:
    started = time.monotonic()
    for step in range(spec.steps):
        time.sleep(spec.seconds / spec.steps)
        ctx.progress((step + 1) / spec.steps, f"step {step + 1}/{spec.steps}")
    if spec.fail:
        raise RuntimeError("probe asked to fail")
    return Outcome(result={"slept_s": round(time.monotonic() - started, 3), "attempt": ctx.lease.attempt})

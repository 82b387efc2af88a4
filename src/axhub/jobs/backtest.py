"""The backtest job: a past period of a machine through a model version.

Result: the threshold, the scores (at most ``MAX_POINTS`` for a chart), the alerts that would
have fired (episodes with their explanations) and the events people marked on the machine in
that period (maintenance log entries...), so one page can put them side by side. With
``store_alerts`` (a backfill) the episodes are stored as alerts.
"""

from __future__ import annotations

import pandas as pd

from axhub.jobs.context import JobContext
from axhub.jobs.handlers import Outcome
from axhub.jobs.spec import BacktestSpec
from axhub.registry.store import ModelRegistry
from axhub.serve.batch import score_period, store_episodes
from axhub.serve.deployed import DeployedModel, units_of
from axhub.store.blobs import BlobStore
from axhub.store.models import AssetRow, EventRow
from axhub.store.scoped import OrgScope


def backtest(ctx: JobContext, spec: BacktestSpec) -> Outcome:
    org_id = ctx.lease.org_id
    with ctx.db.session() as s:
        scope = OrgScope(s, org_id)
        asset = scope.get(AssetRow, spec.asset_id)
        version, path = ModelRegistry(scope, BlobStore(ctx.settings.blob_root)).bundle_path(
            spec.model_version_id
        )
        interval = version.params.get("interval")
        dep = DeployedModel(
            "backtest",
            asset.slug,
            version.id,
            f"{version.name} v{version.version}",
            path,
            pd.Timedelta(str(interval)).total_seconds() if interval else 0.0,
            dict(version.params),
            units_of(scope, asset),
        )
        events = [
            {
                "id": e.id,
                "start": e.start.isoformat(),
                "end": e.end.isoformat() if e.end else None,
                "kind": e.kind,
                "title": e.title,
            }
            for e in scope.list(EventRow, asset_id=asset.id, order_by=EventRow.start)
            if e.start < spec.end and (e.end or e.start) >= spec.start
        ]
    ctx.log(f"backtest of {dep.name} on {asset.slug} from {spec.start} to {spec.end}")
    scored = score_period(ctx.settings, org_id, dep, spec.start, spec.end, on_progress=ctx.progress)
    ctx.check()
    ctx.progress(0.9, f"{len(scored.episodes)} alert(s) would have fired")
    stored: list[str] = []
    if spec.store_alerts:
        stored = store_episodes(ctx.db, org_id, scored)
        ctx.log(f"{len(stored)} alert(s) stored")
    anomalous = int((scored.scores > scored.threshold).sum()) if len(scored.scores) else 0
    return Outcome(
        result={
            "model_version_id": version.id,
            "model": dep.name,
            "asset": asset.slug,
            "asset_id": asset.id,
            "start": spec.start.isoformat(),
            "end": spec.end.isoformat(),
            "threshold": scored.threshold,
            "rows_scored": len(scored.scores),
            "rows_skipped": scored.skipped_rows,
            "rows_over_threshold": anomalous,
            "scores": scored.points(),
            "alerts": [e.as_dict() for e in scored.episodes],
            "events": events,
            "alerts_stored": stored,
        }
    )

"""Live scorers for an organisation's active hub deployments.

A deployment row says "score asset X with model version Y on the hub"; this turns each such
row into a :class:`StreamingScorer` over the version's verified bundle, so that the ingest
worker scores what it stores (``IngestWorker(on_written=LiveScoring(...))``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from axhub.core.settings import Settings
from axhub.registry.bundle import BundleRunner
from axhub.registry.store import ModelRegistry
from axhub.serve.alerts import AlertManager
from axhub.serve.scorer import StreamingScorer
from axhub.store.blobs import BlobStore
from axhub.store.db import Database
from axhub.store.models import AssetRow, DeploymentRow
from axhub.store.scoped import OrgScope

log = logging.getLogger(__name__)


def deployed_scorers(
    db: Database, settings: Settings, org_id: str, alerts: AlertManager
) -> list[StreamingScorer]:
    """One scorer per active hub deployment of ``org_id`` (a broken bundle is logged, skipped)."""
    found: list[tuple[str, str, Path, float]] = []
    with db.session() as session:
        scope = OrgScope(session, org_id)
        registry = ModelRegistry(scope, BlobStore(settings.blob_root))
        for dep in scope.list(DeploymentRow, active=True, target="hub"):
            if dep.asset_id is None:
                continue
            asset = scope.get(AssetRow, dep.asset_id)
            version, path = registry.bundle_path(dep.model_version_id)
            # A model trained on resampled readings records its interval ("10s"): score the same.
            interval = version.params.get("interval")
            bucket_s = pd.Timedelta(str(interval)).total_seconds() if interval else 0.0
            found.append((asset.slug, f"{version.name} v{version.version}", path, bucket_s))
    scorers: list[StreamingScorer] = []
    for slug, name, path, bucket_s in found:
        try:
            runner = BundleRunner(path)  # verifies the bundle's hashes before loading
            scorers.append(StreamingScorer(runner, slug, alerts, model_name=name, bucket_s=bucket_s))
        except Exception:  # one bad model must not stop ingestion or the other models
            log.exception("cannot load deployed model %s for %s; it will not score", name, slug)
    return scorers

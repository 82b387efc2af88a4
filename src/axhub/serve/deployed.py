"""Live scorers and rules for an organisation's active hub deployments.

A deployment row says "score asset X with model version Y on the hub"; this turns each such
row into a :class:`StreamingScorer` over the version's verified bundle, so that the ingest
worker scores what it stores (``IngestWorker(on_written=LiveScoring(...))``). The version's
recorded normal statistics (per operating state) and the signals' units make the alerts'
explanations readable; the organisation's enabled limit and rate rules become a ``RuleEngine``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from axhub.core.domain import Severity
from axhub.core.settings import Settings
from axhub.registry.bundle import BundleRunner
from axhub.registry.store import ModelRegistry
from axhub.serve.alerts import AlertManager, LimitRule, RateOfChangeRule, Rule, RuleEngine
from axhub.serve.explain import NormalStats
from axhub.serve.scorer import StreamingScorer
from axhub.store.blobs import BlobStore
from axhub.store.db import Database
from axhub.store.models import AlertRuleRow, AssetRow, DeploymentRow, SignalRow
from axhub.store.scoped import OrgScope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployedModel:
    """What scoring needs to know about one active hub deployment."""

    deployment_id: str
    asset: str  # slug
    model_version_id: str
    name: str  # 'name vN'
    path: Path
    bucket_s: float
    params: dict[str, Any]
    units: dict[str, str]


def units_of(scope: OrgScope, asset: AssetRow) -> dict[str, str]:
    return {s.name: s.unit for s in scope.list(SignalRow, asset_id=asset.id) if s.unit}


def active_deployments(
    db: Database, settings: Settings, org_id: str, assets: set[str] | None = None
) -> list[DeployedModel]:
    """Active hub deployments of ``org_id`` (optionally only on the asset slugs given)."""
    found: list[DeployedModel] = []
    with db.session() as session:
        scope = OrgScope(session, org_id)
        registry = ModelRegistry(scope, BlobStore(settings.blob_root))
        for dep in scope.list(DeploymentRow, active=True, target="hub"):
            if dep.asset_id is None:
                continue
            asset = scope.get(AssetRow, dep.asset_id)
            if assets is not None and asset.slug not in assets:
                continue
            version, path = registry.bundle_path(dep.model_version_id)
            # A model trained on resampled readings records its interval ("10s"): score the same.
            interval = version.params.get("interval")
            bucket_s = pd.Timedelta(str(interval)).total_seconds() if interval else 0.0
            found.append(
                DeployedModel(
                    dep.id,
                    asset.slug,
                    version.id,
                    f"{version.name} v{version.version}",
                    path,
                    bucket_s,
                    dict(version.params),
                    units_of(scope, asset),
                )
            )
    return found


def deployed_scorers(
    db: Database, settings: Settings, org_id: str, alerts: AlertManager
) -> list[StreamingScorer]:
    """One scorer per active hub deployment of ``org_id`` (a broken bundle is logged, skipped)."""
    scorers: list[StreamingScorer] = []
    for dep in active_deployments(db, settings, org_id):
        try:
            runner = BundleRunner(dep.path)  # verifies the bundle's hashes before loading
            scorers.append(
                StreamingScorer(
                    runner,
                    dep.asset,
                    alerts,
                    model_name=dep.name,
                    bucket_s=dep.bucket_s,
                    normal=NormalStats.from_params(runner.columns, dep.params),
                    units=dep.units,
                )
            )
        except Exception:  # one bad model must not stop ingestion or the other models
            log.exception("cannot load deployed model %s for %s; it will not score", dep.name, dep.asset)
    return scorers


def rules_from_db(db: Database, org_id: str) -> list[Rule]:
    """The organisation's enabled limit and rate-of-change rules."""
    rules: list[Rule] = []
    with db.session() as session:
        scope = OrgScope(session, org_id)
        slugs = {a.id: a.slug for a in scope.list(AssetRow)}
        for row in scope.list(AlertRuleRow, enabled=True):
            asset = slugs.get(row.asset_id)
            if asset is None:
                continue
            severity = Severity(row.severity)
            if row.kind == "rate" and row.max_per_s:
                rules.append(RateOfChangeRule(asset, row.signal, row.max_per_s, severity))
            elif row.kind == "limit":
                rules.append(LimitRule(asset, row.signal, row.low, row.high, severity))
    return rules


def deployed_rules(db: Database, org_id: str, alerts: AlertManager) -> RuleEngine | None:
    rules = rules_from_db(db, org_id)
    return RuleEngine(rules, alerts) if rules else None

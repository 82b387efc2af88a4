"""The model registry: versions with parameters, metrics, lineage and stage; bundles in the
blob store; compare, promote, download; sharing with another organisation by explicit grant.

Everything goes through the caller's :class:`~axhub.store.scoped.OrgScope`. The one read that
crosses organisations is a model version another organisation *granted* to this one
(``model_shares``): it is looked up by the grant, never by id alone, so an ungranted version of
another company is indistinguishable from a missing one.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import axhub
from axhub.core.domain import ModelStage
from axhub.core.errors import ConflictError, NotFoundError
from axhub.registry.bundle import read_bundle
from axhub.store.blobs import BlobStore
from axhub.store.models import DatasetRow, ModelShareRow, ModelVersionRow, OrganizationRow
from axhub.store.scoped import OrgScope

# Allowed stage moves: a candidate is promoted or archived; production is archived (or
# replaced by promoting another version); an archived version can be brought back.
_MOVES: dict[str, set[str]] = {
    ModelStage.CANDIDATE.value: {ModelStage.PRODUCTION.value, ModelStage.ARCHIVED.value},
    ModelStage.PRODUCTION.value: {ModelStage.ARCHIVED.value},
    ModelStage.ARCHIVED.value: {ModelStage.CANDIDATE.value, ModelStage.PRODUCTION.value},
}


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    version = getattr(axhub, "__version__", "0")
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{version}+{sha}" if sha else str(version)


class ModelRegistry:
    def __init__(self, scope: OrgScope, blobs: BlobStore) -> None:
        self.scope = scope
        self.blobs = blobs

    # ------------------------------------------------------------------ writing
    def register(
        self,
        bundle: Path,
        *,
        name: str | None = None,
        metrics: dict[str, Any] | None = None,
        dataset: DatasetRow | None = None,
        created_by: str | None = None,
        extra_params: dict[str, Any] | None = None,
    ) -> ModelVersionRow:
        """Store a bundle (directory or .zip; verified first) as the next version of ``name``."""
        verified = read_bundle(bundle)
        manifest = verified.manifest
        name = name or f"{manifest['family']}-{manifest['name']}"
        archive = bundle if bundle.suffix == ".zip" else _zip(bundle)
        sha = self.blobs.put(archive)
        latest = self.scope.session.scalar(
            self.scope.select(ModelVersionRow)
            .with_only_columns(func.max(ModelVersionRow.version))
            .where(ModelVersionRow.name == name)
        )
        params = dict(manifest.get("params", {}))
        if extra_params:
            params.update(extra_params)
        return self.scope.add(
            ModelVersionRow(
                name=name,
                version=int(latest or 0) + 1,
                family=str(manifest["family"]),
                estimator=str(manifest["name"]),
                params=params,
                metrics=dict(metrics if metrics is not None else manifest.get("metrics", {})),
                dataset_id=dataset.id if dataset else None,
                dataset_version=dataset.version if dataset else None,
                code_version=code_version(),
                stage=ModelStage.CANDIDATE.value,
                bundle_sha256=sha,
                created_by=created_by,
            )
        )

    def set_stage(self, version_id: str, stage: str) -> ModelVersionRow:
        """Move a version to ``stage``; promoting one to production archives the previous one."""
        row = self.scope.get(ModelVersionRow, version_id)
        target = ModelStage(stage).value
        if target == row.stage:
            return row
        if target not in _MOVES[row.stage]:
            raise ConflictError(
                f"model version {row.name} v{row.version} cannot go from {row.stage} to {target}",
                hint=f"allowed: {', '.join(sorted(_MOVES[row.stage]))}",
            )
        if target == ModelStage.PRODUCTION.value:
            for other in self.scope.list(ModelVersionRow, name=row.name, stage=ModelStage.PRODUCTION.value):
                other.stage = ModelStage.ARCHIVED.value
        row.stage = target
        self.scope.session.flush()
        return row

    # ------------------------------------------------------------------ reading
    def get(self, version_id: str) -> ModelVersionRow:
        return self.scope.get(ModelVersionRow, version_id)

    def get_readable(self, version_id: str) -> ModelVersionRow:
        """Own version, or one another organisation explicitly shared with this one."""
        own = self.scope.find(ModelVersionRow, id=version_id)
        if own is not None:
            return own
        shared = self.scope.session.scalars(
            select(ModelVersionRow)
            .join(ModelShareRow, ModelShareRow.model_version_id == ModelVersionRow.id)
            .where(ModelVersionRow.id == version_id, ModelShareRow.grantee_org_id == self.scope.org_id)
        ).first()
        if shared is None:
            raise NotFoundError(f"model version '{version_id}' not found")
        return shared

    def list(
        self, *, name: str | None = None, stage: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[Sequence[ModelVersionRow], int]:
        filters: dict[str, Any] = {}
        if name:
            filters["name"] = name
        if stage:
            filters["stage"] = ModelStage(stage).value
        rows = self.scope.list(
            ModelVersionRow,
            order_by=(ModelVersionRow.created_at.desc()),
            limit=limit,
            offset=offset,
            **filters,
        )
        return rows, self.scope.count(ModelVersionRow, **filters)

    def shared_with_me(self) -> Sequence[ModelVersionRow]:
        return self.scope.session.scalars(
            select(ModelVersionRow)
            .join(ModelShareRow, ModelShareRow.model_version_id == ModelVersionRow.id)
            .where(ModelShareRow.grantee_org_id == self.scope.org_id)
            .order_by(ModelVersionRow.created_at.desc())
        ).all()

    def compare(self, version_ids: Sequence[str]) -> dict[str, Any]:
        """Metrics side by side: one row per version, one column per metric any of them has."""
        rows = [self.get_readable(v) for v in version_ids]
        metric_names = sorted({k for r in rows for k in r.metrics})
        return {
            "metrics": metric_names,
            "versions": [
                {
                    "id": r.id,
                    "name": r.name,
                    "version": r.version,
                    "estimator": f"{r.family}/{r.estimator}",
                    "stage": r.stage,
                    "dataset_id": r.dataset_id,
                    "values": {m: r.metrics.get(m) for m in metric_names},
                }
                for r in rows
            ],
        }

    def bundle_bytes(self, version_id: str) -> tuple[ModelVersionRow, bytes]:
        row = self.get_readable(version_id)
        if not row.bundle_sha256:
            raise NotFoundError(f"model version '{version_id}' has no bundle")
        return row, self.blobs.get(row.bundle_sha256)

    def bundle_path(self, version_id: str) -> tuple[ModelVersionRow, Path]:
        """The version's bundle archive where the blob store keeps it (read it with
        ``read_bundle``/``BundleRunner``, which verify every file; no copy is made)."""
        row = self.get_readable(version_id)
        path = self.blobs.path(row.bundle_sha256) if row.bundle_sha256 else None
        if path is None or not path.is_file():
            raise NotFoundError(f"model version '{version_id}' has no bundle")
        return row, path

    # ------------------------------------------------------------------ sharing
    def share(self, version_id: str, share_code: str) -> ModelShareRow:
        """Share with the company whose (random, unguessable) share code this is; a slug is not
        enough, so trying names tells nothing about which companies exist."""
        row = self.get(version_id)
        grantee = self.scope.session.scalars(
            select(OrganizationRow).where(OrganizationRow.share_code == share_code.strip())
        ).first()
        if grantee is None or grantee.id == self.scope.org_id:
            raise NotFoundError(
                "no other company has this share code",
                hint="ask the other company's administrator for its share code (shown under /org)",
            )
        if self.scope.find(ModelShareRow, model_version_id=row.id, grantee_org_id=grantee.id):
            raise ConflictError("model version already shared with that company")
        return self.scope.add(ModelShareRow(model_version_id=row.id, grantee_org_id=grantee.id))

    def shares(self, version_id: str) -> Sequence[ModelShareRow]:
        row = self.get(version_id)
        return self.scope.list(ModelShareRow, model_version_id=row.id, order_by=ModelShareRow.created_at)

    def unshare(self, version_id: str, share_id: str) -> None:
        row = self.get(version_id)
        share = self.scope.get(ModelShareRow, share_id)
        if share.model_version_id != row.id:
            raise NotFoundError(f"share '{share_id}' not found")
        self.scope.delete(share)


def _zip(directory: Path) -> Path:
    from axhub.registry.bundle import zip_bundle

    return zip_bundle(directory)

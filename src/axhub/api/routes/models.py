"""The model registry over HTTP: versions, compare, stage changes, bundle download, sharing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from axhub.api.deps import ReadScope, State, WriteScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.schemas.common import Deleted, Page, Paging, paging
from axhub.api.schemas.work import (
    CompareOut,
    EstimatorOut,
    ModelVersionOut,
    ShareIn,
    ShareOut,
    StageIn,
)
from axhub.ml.base import Estimator
from axhub.registry.store import ModelRegistry
from axhub.store.models import ModelVersionRow
from axhub.store.scoped import OrgScope

router = APIRouter(prefix="/models", tags=["models"], responses=ERROR_RESPONSES)


def _registry(scope: OrgScope, state: State) -> ModelRegistry:
    return ModelRegistry(scope, state.blobs)


def _out(row: ModelVersionRow, org_id: str) -> ModelVersionOut:
    out = ModelVersionOut.model_validate(row)
    out.shared = row.org_id != org_id
    if out.shared:
        out.created_by = None  # another company's user ids are theirs
    return out


@router.get("", operation_id="list_models", response_model=Page[ModelVersionOut])
def list_models(
    scope: ReadScope,
    state: State,
    pg: Annotated[Paging, Depends(paging)],
    name: Annotated[str | None, Query(max_length=200)] = None,
    stage: Annotated[str | None, Query(pattern=r"^(candidate|production|archived)$")] = None,
) -> Page[ModelVersionOut]:
    rows, total = _registry(scope, state).list(name=name, stage=stage, limit=pg.limit, offset=pg.offset)
    return Page[ModelVersionOut](
        items=[_out(r, scope.org_id) for r in rows], total=total, limit=pg.limit, offset=pg.offset
    )


@router.get("/shared", operation_id="list_shared_models", response_model=list[ModelVersionOut])
def list_shared_models(scope: ReadScope, state: State) -> list[ModelVersionOut]:
    """Model versions other organisations explicitly shared with yours."""
    return [_out(r, scope.org_id) for r in _registry(scope, state).shared_with_me()]


@router.get("/estimators", operation_id="list_estimators", response_model=list[EstimatorOut])
def list_estimators(_: ReadScope) -> list[EstimatorOut]:
    """The estimators a train job can use, with their parameters."""
    return [
        EstimatorOut(key=key, family=cls.family, name=cls.name, params=cls.param_names())
        for key, cls in Estimator.registry().items()
    ]


@router.get("/compare", operation_id="compare_models", response_model=CompareOut)
def compare_models(
    scope: ReadScope,
    state: State,
    ids: Annotated[list[str], Query(min_length=1, max_length=20, description="Model version ids")],
) -> CompareOut:
    """Metrics of several versions side by side."""
    return CompareOut.model_validate(_registry(scope, state).compare(ids))


@router.get("/{version_id}", operation_id="get_model", response_model=ModelVersionOut)
def get_model(version_id: str, scope: ReadScope, state: State) -> ModelVersionOut:
    return _out(_registry(scope, state).get_readable(version_id), scope.org_id)


@router.post("/{version_id}/stage", operation_id="set_model_stage", response_model=ModelVersionOut)
def set_model_stage(version_id: str, body: StageIn, scope: WriteScope, state: State) -> ModelVersionOut:
    """Promote to production (the previous production version is archived), archive, or restore."""
    return _out(_registry(scope, state).set_stage(version_id, body.stage), scope.org_id)


@router.get(
    "/{version_id}/bundle",
    operation_id="download_model_bundle",
    response_class=Response,
    responses={**ERROR_RESPONSES, 200: {"content": {"application/zip": {}}, "description": "Bundle zip"}},
)
def download_model_bundle(version_id: str, scope: ReadScope, state: State) -> Response:
    """The bundle (ONNX + preprocessing JSON + manifest, hashed) as a zip."""
    row, data = _registry(scope, state).bundle_bytes(version_id)
    filename = f"{row.family}-{row.estimator}-v{row.version}.zip".replace('"', "")
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Bundle-SHA256": row.bundle_sha256 or "",
        },
    )


@router.get("/{version_id}/shares", operation_id="list_model_shares", response_model=list[ShareOut])
def list_model_shares(version_id: str, scope: WriteScope, state: State) -> list[ShareOut]:
    return [ShareOut.model_validate(s) for s in _registry(scope, state).shares(version_id)]


@router.post("/{version_id}/shares", operation_id="share_model", response_model=ShareOut, status_code=201)
def share_model(version_id: str, body: ShareIn, scope: WriteScope, state: State) -> ShareOut:
    """Let another organisation use this version (its bundle and metrics; never your data)."""
    return ShareOut.model_validate(_registry(scope, state).share(version_id, body.share_code))


@router.delete("/{version_id}/shares/{share_id}", operation_id="unshare_model", response_model=Deleted)
def unshare_model(version_id: str, share_id: str, scope: WriteScope, state: State) -> Deleted:
    _registry(scope, state).unshare(version_id, share_id)
    return Deleted(id=share_id)

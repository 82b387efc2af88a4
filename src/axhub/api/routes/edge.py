"""Edge fleet routes.

``/api/v1/edge/...`` are for people and their keys (tokens, devices, revoke, config, rollouts).
``/device/v1/...`` is the agents' protocol, authenticated with the device's own credential
(``Authorization: Device axd_...``): enrolment (one-time token in the body), heartbeat, sync
batches and bundle downloads. It is kept out of the OpenAPI document (only agents speak it;
docs/edge.md describes it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

import axhub
from axhub.api.deps import (
    AdminScope,
    AppState,
    DbSession,
    Reader,
    ReadScope,
    State,
    Writer,
    WriteScope,
    timeseries_store,
)
from axhub.api.errors import ERROR_RESPONSES, ApiError
from axhub.api.schemas.edge import (
    EdgeConfigIn,
    EdgeDeviceOut,
    EdgeRolloutIn,
    EdgeRolloutOut,
    EdgeTokenIn,
    EdgeTokenOut,
    HubKeyOut,
)
from axhub.fleet import service
from axhub.registry.signing import HubSigningKey, load_or_create_hub_key
from axhub.registry.store import ModelRegistry
from axhub.store.blobs import BlobStore
from axhub.store.models import EdgeDeviceRow, EdgeDeviceStateRow, EdgeRolloutRow
from axhub.store.scoped import OrgScope

router = APIRouter(prefix="/edge", tags=["edge"], responses=ERROR_RESPONSES)
device_api = APIRouter(prefix="/device/v1", include_in_schema=False)


def hub_key(state: AppState) -> HubSigningKey:
    cached = getattr(state, "_edge_key", None)
    if cached is None:
        cached = load_or_create_hub_key(state.settings.home)
        state._edge_key = cached  # type: ignore[attr-defined]
    return cached


# ------------------------------------------------------------------ people
@router.post("/tokens", operation_id="create_edge_token", response_model=EdgeTokenOut, status_code=201)
def create_edge_token(body: EdgeTokenIn, scope: WriteScope, principal: Writer) -> EdgeTokenOut:
    """A one-time enrolment token for one device (valid ``ttl_hours``; shown only now)."""
    token, row = service.issue_token(
        scope, body.name, body.group, created_by=principal.actor, ttl_hours=body.ttl_hours
    )
    return EdgeTokenOut(
        id=row.id, token=token, name=row.device_name, group=row.group_name, expires_at=row.expires_at
    )


@router.get("/devices", operation_id="list_edge_devices", response_model=list[EdgeDeviceOut])
def list_edge_devices(scope: ReadScope) -> list[EdgeDeviceOut]:
    """The fleet: online, last sync, buffer depth, bundle, agent version, CPU and memory."""
    return [EdgeDeviceOut(**d) for d in service.fleet(scope)]


def _device_out(scope: OrgScope, device_id: str) -> EdgeDeviceOut:
    found = [d for d in service.fleet(scope) if d["id"] == device_id]
    if not found:
        raise ApiError(404, "not_found", f"edge device '{device_id}' not found")
    return EdgeDeviceOut(**found[0])


@router.post("/devices/{device_id}/revoke", operation_id="revoke_edge_device", response_model=EdgeDeviceOut)
def revoke_edge_device(device_id: str, scope: AdminScope, request: Request) -> EdgeDeviceOut:
    """Refuse this device from now on (its credential stops working at once)."""
    principal = request.state.principal
    service.revoke(scope, device_id, principal.actor)
    scope.session.flush()
    return _device_out(scope, device_id)


@router.put(
    "/devices/{device_id}/config", operation_id="set_edge_device_config", response_model=EdgeDeviceOut
)
def set_edge_device_config(device_id: str, body: EdgeConfigIn, scope: WriteScope) -> EdgeDeviceOut:
    """Push a configuration (connectors, assets to score, quota...); the device applies it on
    its next heartbeat."""
    service.set_config(scope, device_id, body.config)
    scope.session.flush()
    return _device_out(scope, device_id)


@router.post("/rollouts", operation_id="start_edge_rollout", response_model=EdgeRolloutOut, status_code=201)
def start_edge_rollout(
    body: EdgeRolloutIn, scope: WriteScope, principal: Writer, state: State
) -> EdgeRolloutOut:
    """Sign a model version's bundle with the hub key and roll it out to a group, canary first."""
    blobs = BlobStore(state.settings.blob_root)
    version, path = ModelRegistry(scope, blobs).bundle_path(body.model_version_id)
    rollout = service.start_rollout(
        scope,
        blobs,
        hub_key(state),
        group=body.group,
        archive=path,
        name=f"{version.name} v{version.version}",
        model_version_id=version.id,
        canary_device_id=body.canary_device_id,
        created_by=principal.actor,
    )
    return EdgeRolloutOut.model_validate(rollout)


@router.get("/rollouts", operation_id="list_edge_rollouts", response_model=list[EdgeRolloutOut])
def list_edge_rollouts(scope: ReadScope) -> list[EdgeRolloutOut]:
    rows = sorted(scope.list(EdgeRolloutRow), key=lambda r: r.created_at, reverse=True)
    return [EdgeRolloutOut.model_validate(r) for r in rows]


@router.get("/hub-key", operation_id="get_edge_hub_key", response_model=HubKeyOut)
def get_edge_hub_key(principal: Reader, state: State) -> HubKeyOut:
    """The hub's Ed25519 public key that devices check bundles with (and its fingerprint)."""
    key = hub_key(state)
    return HubKeyOut(public_key=key.public_pem.decode(), fingerprint=key.fingerprint)


# ------------------------------------------------------------------ devices
def _credential(authorization: str | None) -> str:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "device" or not value.strip():
        raise ApiError(401, "unauthorized", "edge devices send 'Authorization: Device axd_...'")
    return value.strip()


def _device(
    session: Session, authorization: str | None
) -> tuple[OrgScope, EdgeDeviceRow, EdgeDeviceStateRow]:
    try:
        return service.device_for(session, _credential(authorization))
    except service.DeviceRefused as exc:
        status = 403 if exc.revoked else 401
        raise ApiError(
            status, "device_revoked" if exc.revoked else "unauthorized", str(exc), hint=exc.hint
        ) from exc


Auth = Annotated[str | None, Header()]


@device_api.get("/hub-key", operation_id="device_hub_key")
def device_hub_key(state: State) -> dict[str, str]:
    """Public: a device may fetch the key before enrolling (and compare the fingerprint)."""
    key = hub_key(state)
    return {"public_key": key.public_pem.decode(), "fingerprint": key.fingerprint}


@device_api.post("/enrol", operation_id="device_enrol")
def device_enrol(session: DbSession, state: State, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    token = body.get("token")
    if not isinstance(token, str) or not token.startswith(service.TOKEN_PREFIX):
        raise ApiError(401, "unauthorized", "an enrolment token (axt_...) is needed")
    try:
        found = service.enrol(session, token, body.get("name"), str(body.get("agent_version", "")))
    except service.DeviceRefused as exc:
        raise ApiError(
            401, "unauthorized", str(exc), hint="ask for a new token ('axhub edge token')"
        ) from exc
    return {**found, "hub_public_key": hub_key(state).public_pem.decode(), "hub_version": axhub.__version__}


@device_api.post("/heartbeat", operation_id="device_heartbeat")
def device_heartbeat(
    session: DbSession, authorization: Auth, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    scope, device, dev_state = _device(session, authorization)
    return service.heartbeat(scope, device, dev_state, body)


@device_api.post("/sync", operation_id="device_sync")
async def device_sync(
    request: Request,
    state: State,
    authorization: Auth,
    x_batch_id: Annotated[str, Header()],
    x_batch_kind: Annotated[str, Header()],
) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    payload = await request.body()

    def apply() -> dict[str, Any]:
        with state.db.session() as session:
            scope, device, dev_state = _device(session, authorization)
            return service.receive_batch(
                scope,
                device,
                dev_state,
                batch_id=x_batch_id,
                kind=x_batch_kind,
                payload=payload,
                timeseries=timeseries_store(state),
            )

    return await run_in_threadpool(apply)


@device_api.get("/bundles/{sha256}", operation_id="device_bundle")
def device_bundle(sha256: str, session: DbSession, state: State, authorization: Auth) -> FileResponse:
    scope, _device_row, dev_state = _device(session, authorization)
    path = service.bundle_for_device(scope, dev_state, sha256, BlobStore(state.settings.blob_root))
    return FileResponse(path, media_type="application/zip")

"""Fleet operations, all through ``OrgScope`` except the two lookups that happen before the
organisation is known (an enrolment token, a device credential), which go by a sha256 of a
random secret and then continue in that row's organisation.

Exactly once: a sync batch is applied, then its id is recorded, in ONE transaction; readings
writes are idempotent on (asset, signal, ts) and alerts keep the id the device gave them, so a
batch resent after a crash (before or after the hub's commit) changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from axhub.core.errors import AxHubError, InputProblem, InputValidationError, NotFoundError
from axhub.core.reading_rules import asset_id_problem, signal_name_problem, time_problem_us
from axhub.core.readings import READINGS_SCHEMA, VALUE_INT_FIELD
from axhub.core.timeutil import utcnow
from axhub.edge.buffer import ALERTS_KIND, READINGS_KIND, RESULTS_KIND, decode_events, decode_readings
from axhub.edge.config import AgentConfig
from axhub.registry.bundle import MANIFEST_FILE, read_bundle, sign_bundle_ed25519, zip_bundle
from axhub.registry.normal_ranges import describe
from axhub.registry.signing import HubSigningKey
from axhub.store.blobs import BlobStore
from axhub.store.models import (
    AlertRow,
    EdgeDeviceRow,
    EdgeDeviceStateRow,
    EdgeEnrolTokenRow,
    EdgeRolloutRow,
    EdgeSyncBatchRow,
    ModelVersionRow,
    SignalRow,
)
from axhub.store.scoped import OrgScope

TOKEN_PREFIX = "axt_"
CREDENTIAL_PREFIX = "axd_"
ONLINE_WITHIN_S = 60


class DeviceRefused(AxHubError):
    """A device credential that is unknown or revoked."""

    def __init__(self, message: str, *, revoked: bool) -> None:
        super().__init__(message, hint="enrol the device again with a new token" if revoked else "")
        self.revoked = revoked


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ------------------------------------------------------------------------------ enrolment
def issue_token(
    scope: OrgScope,
    device_name: str,
    group: str = "default",
    *,
    created_by: str | None,
    ttl_hours: float = 72,
) -> tuple[str, EdgeEnrolTokenRow]:
    """A one-time enrolment token (returned once; only its hash is stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    row = scope.add(
        EdgeEnrolTokenRow(
            token_hash=_hash(token),
            device_name=device_name,
            group_name=group or "default",
            expires_at=utcnow() + timedelta(hours=ttl_hours),
            created_by=created_by,
        )
    )
    return token, row


def enrol(session: Session, token: str, name: str | None, agent_version: str) -> dict[str, Any]:
    """Use a token (once) and create the device; returns its id, credential and organisation."""
    row = session.scalar(select(EdgeEnrolTokenRow).where(EdgeEnrolTokenRow.token_hash == _hash(token)))
    if row is None or row.expires_at < utcnow():
        raise DeviceRefused("unknown or expired enrolment token", revoked=False)
    # Atomic: of two devices racing with one token, exactly one gets it.
    used = session.execute(
        update(EdgeEnrolTokenRow)
        .where(EdgeEnrolTokenRow.id == row.id, EdgeEnrolTokenRow.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise DeviceRefused("this enrolment token was already used", revoked=False)
    scope = OrgScope(session, row.org_id)
    credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
    device = scope.add(EdgeDeviceRow(name=name or row.device_name, token_hash=_hash(credential)))
    scope.add(
        EdgeDeviceStateRow(device_id=device.id, group_name=row.group_name, agent_version=agent_version[:40])
    )
    row.device_id = device.id
    return {"device_id": device.id, "credential": credential, "org_id": row.org_id, "name": device.name}


def device_for(session: Session, credential: str) -> tuple[OrgScope, EdgeDeviceRow, EdgeDeviceStateRow]:
    """The device a credential belongs to (DeviceRefused when unknown or revoked)."""
    device = session.scalar(select(EdgeDeviceRow).where(EdgeDeviceRow.token_hash == _hash(credential)))
    if device is None:
        raise DeviceRefused("unknown device credential", revoked=False)
    scope = OrgScope(session, device.org_id)
    state = scope.find(EdgeDeviceStateRow, device_id=device.id)
    if state is None or state.revoked_at is not None:
        raise DeviceRefused(f"device '{device.name}' was revoked", revoked=True)
    return scope, device, state


def revoke(scope: OrgScope, device_id: str, by: str | None) -> EdgeDeviceStateRow:
    state = _state(scope, device_id)
    if state.revoked_at is None:
        state.revoked_at = utcnow()
        state.revoked_by = by
    return state


def _state(scope: OrgScope, device_id: str) -> EdgeDeviceStateRow:
    state = scope.find(EdgeDeviceStateRow, device_id=device_id)
    if state is None:
        raise NotFoundError(
            f"edge device '{device_id}' not found", hint="list devices with 'axhub edge status'"
        )
    return state


# ------------------------------------------------------------------------------ config, heartbeat
def set_config(scope: OrgScope, device_id: str, config: dict[str, Any]) -> EdgeDeviceStateRow:
    """Validate and store a configuration for the device; it picks it up on its next heartbeat."""
    state = _state(scope, device_id)
    checked = AgentConfig.model_validate({**config, "version": state.config_version + 1})
    if checked.connectors:
        from axhub.ingest.tag_mapping import parse_mapping

        parse_mapping(checked.connectors, file="config.connectors")
    state.config = checked.model_dump()
    state.config_version = checked.version
    return state


def heartbeat(
    scope: OrgScope, device: EdgeDeviceRow, state: EdgeDeviceStateRow, body: dict[str, Any]
) -> dict[str, Any]:
    """Record the device's status; answer with its configuration and the bundle it should run."""
    reports = body.pop("bundle_reports", []) or []
    now = utcnow()
    device.last_heartbeat_at = now
    state.status = body
    state.agent_version = str(body.get("agent_version", ""))[:40]
    active = (body.get("bundle") or {}).get("sha256")
    device.deployed_bundle_sha256 = active
    for report in reports if isinstance(reports, list) else []:
        _bundle_report(scope, state, report)
    answer: dict[str, Any] = {"server_time": now.isoformat()}
    if state.config_version > 0:
        answer["config"] = state.config
    if state.target_bundle_sha256:
        answer["bundle"] = {"sha256": state.target_bundle_sha256, "rollout_id": state.target_rollout_id}
    return answer


def _bundle_report(scope: OrgScope, state: EdgeDeviceStateRow, report: dict[str, Any]) -> None:
    rollout_id = report.get("rollout_id")
    rollout = scope.find(EdgeRolloutRow, id=rollout_id) if isinstance(rollout_id, str) else None
    outcome = str(report.get("outcome", ""))
    if outcome in ("refused", "rolled_back") and state.target_bundle_sha256 == report.get("sha256"):
        state.target_bundle_sha256 = None  # do not ask it again; the rollout says why
        state.target_rollout_id = None
    if rollout is None or rollout.canary_device_id != state.device_id or rollout.stage != "canary":
        return
    rollout.updated_at = utcnow()
    if outcome == "active":
        rollout.stage = "fleet"
        for other in scope.list(EdgeDeviceStateRow, group_name=rollout.group_name):
            if other.revoked_at is None and other.device_id != state.device_id:
                other.target_bundle_sha256 = rollout.bundle_sha256
                other.target_rollout_id = rollout.id
    elif outcome in ("refused", "rolled_back"):
        rollout.stage = "failed"
        rollout.note = str(report.get("reason", ""))[:2000]


# ------------------------------------------------------------------------------ rollouts
# What the hub learnt at training that the device needs to explain its alerts the way hub alerts
# are explained (reading vs normal range per signal): carried in the signed manifest.
EDGE_PARAMS = ("normal_states",)


def sign_archive(archive: Path, key: HubSigningKey, params: dict[str, Any] | None = None) -> Path:
    """A signed copy of a bundle archive (zip or directory), as a new zip in a temp directory.

    ``params`` (the model version's training record) are added to the manifest's ``params``
    before signing, so the device can trust them like the rest of the manifest.
    """
    verified = read_bundle(archive)
    work = Path(tempfile.mkdtemp(prefix="axhub-sign-"))
    target = work / "bundle"
    shutil.copytree(verified.path, target)
    if verified._tmp is not None:
        verified._tmp.cleanup()
    carried = {k: v for k, v in (params or {}).items() if k in EDGE_PARAMS and v}
    if carried:
        manifest_path = target / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text())
        manifest["params"] = {**dict(manifest.get("params") or {}), **carried}
        manifest.pop("signature", None)  # an HMAC over the old manifest; the Ed25519 one replaces it
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    sign_bundle_ed25519(target, key.private_pem)
    return zip_bundle(target, work / "bundle.zip")


def start_rollout(
    scope: OrgScope,
    blobs: BlobStore,
    key: HubSigningKey,
    *,
    group: str,
    archive: Path,
    name: str = "",
    model_version_id: str | None = None,
    canary_device_id: str | None = None,
    created_by: str | None = None,
) -> EdgeRolloutRow:
    """Sign the bundle with the hub key and send it to the group's canary device first."""
    devices = [s for s in scope.list(EdgeDeviceStateRow, group_name=group) if s.revoked_at is None]
    if not devices:
        raise NotFoundError(
            f"no active edge devices in group '{group}'", hint="enrol a device into the group"
        )
    devices.sort(key=lambda s: (s.enrolled_at, s.device_id))
    if canary_device_id is not None:
        canary = next((s for s in devices if s.device_id == canary_device_id), None)
        if canary is None:
            raise NotFoundError(f"device '{canary_device_id}' is not an active member of group '{group}'")
    else:
        canary = devices[0]
    version = scope.find(ModelVersionRow, id=model_version_id) if model_version_id else None
    signed = sign_archive(archive, key, dict(version.params or {}) if version is not None else None)
    try:
        sha = blobs.put(signed)
    finally:
        shutil.rmtree(signed.parent, ignore_errors=True)
    rollout = scope.add(
        EdgeRolloutRow(
            group_name=group,
            model_version_id=model_version_id,
            name=name,
            bundle_sha256=sha,
            canary_device_id=canary.device_id,
            stage="canary",
            created_by=created_by,
        )
    )
    canary.target_bundle_sha256 = sha
    canary.target_rollout_id = rollout.id
    return rollout


def bundle_for_device(scope: OrgScope, state: EdgeDeviceStateRow, sha: str, blobs: BlobStore) -> Path:
    """The archive a device may download: only its own target (another org's is never found)."""
    if state.target_bundle_sha256 != sha or scope.find(EdgeRolloutRow, bundle_sha256=sha) is None:
        raise NotFoundError("no such bundle for this device")
    path = blobs.path(sha)
    if not path.is_file():
        raise NotFoundError("no such bundle for this device")
    return path


# ------------------------------------------------------------------------------ sync
def _check_readings(table: pa.Table, batch_id: str) -> pa.Table:
    # An agent sends ``value_int`` with integers beyond +-2^53: kept, so they stay exact.
    schema = READINGS_SCHEMA
    if VALUE_INT_FIELD.name in table.column_names:
        schema = schema.append(VALUE_INT_FIELD)
    if not table.schema.equals(schema, check_metadata=False):
        try:
            table = table.select(schema.names).cast(schema)
        except (KeyError, pa.ArrowInvalid, ValueError) as exc:
            raise InputValidationError(
                InputProblem(f"batch {batch_id}", None, None, f"not a readings table: {exc}")
            ) from exc
    problems: list[InputProblem] = []
    pairs = table.group_by(["asset", "signal"]).aggregate([]).to_pylist()
    for pair in pairs:
        p = asset_id_problem(pair["asset"]) or signal_name_problem(pair["signal"])
        if p is not None:
            problems.append(InputProblem(f"batch {batch_id}", None, "asset/signal", p.en, p.code))
    if table.num_rows:
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        for value in (int(ts.min()), int(ts.max())):
            p = time_problem_us(value)
            if p is not None:
                problems.append(InputProblem(f"batch {batch_id}", None, "ts", p.en, p.code))
        values = table.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values) & ~np.isnan(values))
        if len(bad):
            problems.append(InputProblem(f"batch {batch_id}", int(bad[0]), "value", "value is infinite"))
    if problems:
        raise InputValidationError(problems[:20], hint="the batch was refused whole; nothing was stored")
    return table


def receive_batch(
    scope: OrgScope,
    device: EdgeDeviceRow,
    state: EdgeDeviceStateRow,
    *,
    batch_id: str,
    kind: str,
    payload: bytes,
    timeseries: Any,
) -> dict[str, Any]:
    """Apply one batch exactly once; returns what was stored (``duplicate`` when seen before)."""
    if not batch_id or len(batch_id) > 64:
        raise InputValidationError(InputProblem("batch", None, "X-Batch-Id", "missing or longer than 64"))
    seen = scope.find(EdgeSyncBatchRow, device_id=device.id, batch_id=batch_id)
    if seen is not None:
        return {"batch_id": batch_id, "duplicate": True, "rows": seen.rows}
    if kind == READINGS_KIND:
        try:
            table = decode_readings(payload)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputValidationError(
                InputProblem(f"batch {batch_id}", None, None, f"not an Arrow IPC stream: {exc}")
            ) from exc
        table = _check_readings(table, batch_id)
        rows = table.num_rows
        if rows:
            timeseries.write(scope.org_id, table)  # durable and idempotent on (asset, signal, ts)
            pairs = table.group_by(["asset", "signal"]).aggregate([]).to_pylist()
            scope.register_signals(sorted({(p["asset"], p["signal"], "") for p in pairs}))
    elif kind in (ALERTS_KIND, RESULTS_KIND):
        try:
            events = decode_events(payload)
        except (OSError, ValueError, EOFError) as exc:
            raise InputValidationError(
                InputProblem(f"batch {batch_id}", None, None, f"not gzip JSON: {exc}")
            ) from exc
        rows = len(events)
        store = _store_event if kind == ALERTS_KIND else _store_result
        for i, event in enumerate(events):
            store(scope, device, kind, event, batch_id, i)
    else:
        raise InputValidationError(InputProblem("batch", None, "X-Batch-Kind", f"unknown kind {kind!r}"))
    scope.add_unless_exists(
        EdgeSyncBatchRow(device_id=device.id, batch_id=batch_id, kind=kind, rows=rows),
        device_id=device.id,
        batch_id=batch_id,
    )
    state.last_sync_at = utcnow()
    return {"batch_id": batch_id, "duplicate": False, "rows": rows}


def _store_event(
    scope: OrgScope, device: EdgeDeviceRow, kind: str, event: Any, batch_id: str, index: int
) -> None:
    """One alert from a device, under the id the device gave it (a resend finds it there)."""
    ts, asset_slug, asset_id = _event_basics(scope, event, f"batch {batch_id}", index)
    score = event.get("score")
    threshold = event.get("threshold")
    scope.add_unless_exists(
        AlertRow(
            id=event["id"],
            asset_id=asset_id,
            ts=ts,
            severity=str(event.get("severity", "warning"))[:20],
            kind=str(event.get("kind", "model"))[:20],
            source=f"{str(event.get('source', 'edge'))[:150]}@{device.name[:40]}",
            title=str(event.get("title", ""))[:500],
            score=float(score) if isinstance(score, int | float) else None,
            threshold=float(threshold) if isinstance(threshold, int | float) else None,
            explanation=_with_units(scope, asset_id, list(event.get("explanation") or [])[:10]),
            dedup_key=f"edge:{device.id}:{asset_slug}",
        ),
        id=event["id"],
    )


def _with_units(scope: OrgScope, asset_id: str, items: list[Any]) -> list[Any]:
    """A device's explanation with the machine's units (the hub knows them, the bundle does not),
    so "4.40 mm/s, normal 1.80 ± 0.10" reads the same as on hub-scored alerts."""
    units = {s.name: s.unit for s in scope.list(SignalRow, asset_id=asset_id) if s.unit}
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and not item.get("unit") and units.get(str(item.get("signal"))):
            item = {**item, "unit": units[str(item["signal"])]}
            if isinstance(item.get("value"), int | float) and isinstance(
                item.get("normal_mean"), int | float
            ):
                item["text"] = describe(item, "en")
                item["text_ko"] = describe(item, "ko")
        out.append(item)
    return out


def _event_basics(scope: OrgScope, event: Any, where: str, index: int) -> tuple[datetime, str, str]:
    """Checks every device event shares: its id, time and machine (id, aware ts, asset id)."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or len(event["id"]) > 40:
        raise InputValidationError(InputProblem(where, index, "id", "event without a valid id"))
    try:
        ts = datetime.fromisoformat(str(event["ts"]))
    except (KeyError, ValueError) as exc:
        raise InputValidationError(InputProblem(where, index, "ts", "missing or not ISO 8601")) from exc
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    asset_slug = str(event.get("asset", ""))
    p = asset_id_problem(asset_slug)
    if p is not None:
        raise InputValidationError(InputProblem(where, index, "asset", p.en, p.code))
    return ts, asset_slug, _asset_id(scope, asset_slug)


#: An inspection event's title starts with its verdict: "defect: <file>" or "ok: <file>".
DEFECT_VERDICT = "defect"
#: ... or "unreadable: <file>" when the device could not read the image (no verdict).
UNREADABLE_VERDICT = "unreadable"
#: The fleet page's inspection counts cover this much time (by the images' own time).
INSPECTIONS_WINDOW = timedelta(hours=24)


def _store_result(
    scope: OrgScope, device: EdgeDeviceRow, kind: str, event: Any, batch_id: str, index: int
) -> None:
    """One inspection result (a vision bundle's verdict on one image) as an ``inspection`` event on
    the machine's timeline, under the id the device gave it: a resend finds it there (exactly once)."""
    from axhub.store.models import EventRow

    ts, _slug, asset_id = _event_basics(scope, event, f"batch {batch_id}", index)
    # No verdict (the device could not read the image) must not read "ok" on the timeline.
    if event.get("defect") is None:
        verdict = UNREADABLE_VERDICT
    else:
        verdict = DEFECT_VERDICT if event.get("defect") else "ok"
    details = {
        k: event.get(k) for k in ("file", "score", "threshold", "defect", "bundle", "error") if k in event
    }
    scope.add_unless_exists(
        EventRow(
            id=event["id"],
            asset_id=asset_id,
            start=ts,
            kind="inspection",
            title=f"{verdict}: {str(event.get('file', ''))[:200]}",
            note=json.dumps(details, ensure_ascii=False)[:4000],
            created_by=device.id,
        ),
        id=event["id"],
    )


def _asset_id(scope: OrgScope, slug: str) -> str:
    from axhub.store.models import AssetRow

    found = scope.find(AssetRow, slug=slug)
    if found is None:
        site = scope.ensure_site("Default site")
        found = scope.ensure_asset(site, slug, slug=slug)
    return found.id


# ------------------------------------------------------------------------------ fleet view
def inspection_counts(scope: OrgScope, since: datetime) -> dict[str, tuple[int, int, int]]:
    """Device id -> (images inspected, flagged as defects, unreadable) from results timed at or
    after ``since``; an unreadable image got no verdict, so it is not counted as inspected."""
    from axhub.store.models import EventRow

    def starting(verdict: str) -> Any:
        return func.sum(case((EventRow.title.like(f"{verdict}:%"), 1), else_=0))

    rows = scope.session.execute(
        select(EventRow.created_by, func.count(), starting(DEFECT_VERDICT), starting(UNREADABLE_VERDICT))
        .where(EventRow.org_id == scope.org_id, EventRow.kind == "inspection", EventRow.start >= since)
        .group_by(EventRow.created_by)
    )
    return {
        str(device): (int(n) - int(unreadable or 0), int(bad or 0), int(unreadable or 0))
        for device, n, bad, unreadable in rows
        if device
    }


def fleet(scope: OrgScope) -> list[dict[str, Any]]:
    """Every device of the organisation with what the fleet page shows."""
    devices = {d.id: d for d in scope.list(EdgeDeviceRow)}
    now = utcnow()
    inspections = inspection_counts(scope, now - INSPECTIONS_WINDOW)
    out = []
    for state in scope.list(EdgeDeviceStateRow):
        device = devices.get(state.device_id)
        if device is None:
            continue
        status = state.status or {}
        beat = device.last_heartbeat_at
        out.append(
            {
                "id": device.id,
                "name": device.name,
                "group": state.group_name,
                "revoked": state.revoked_at is not None,
                "online": bool(
                    beat and (now - beat).total_seconds() < ONLINE_WITHIN_S and not state.revoked_at
                ),
                "last_heartbeat_at": beat,
                "last_sync_at": state.last_sync_at,
                "agent_version": state.agent_version,
                "bundle_sha256": device.deployed_bundle_sha256,
                "bundle_name": (status.get("bundle") or {}).get("name"),
                "target_bundle_sha256": state.target_bundle_sha256,
                "buffer_depth": int((status.get("buffer") or {}).get("total", 0)),
                "dropped_readings": int((status.get("counters") or {}).get("dropped_readings", 0)),
                "cpu_percent": status.get("cpu_percent"),
                "rss_mb": status.get("rss_mb"),
                "config_version": state.config_version,
                "last_error": status.get("last_error"),
                # vision results the hub holds for the last 24 h (none: the device inspects nothing)
                "inspected_24h": inspections.get(device.id, (0, 0, 0))[0],
                "flagged_24h": inspections.get(device.id, (0, 0, 0))[1],
                "unreadable_24h": inspections.get(device.id, (0, 0, 0))[2],
            }
        )
    out.sort(key=lambda d: (d["group"], d["name"]))
    return out

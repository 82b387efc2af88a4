"""Edge fleet: enrolment tokens, devices, pushed configuration, rollouts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from axhub.api.schemas.common import In, Out


class EdgeTokenIn(In):
    name: str = Field(
        min_length=1, max_length=200, description="The device's name (e.g. '프레스 1 게이트웨이')"
    )
    group: str = Field(default="default", min_length=1, max_length=100)
    ttl_hours: float = Field(default=72, gt=0, le=24 * 30)


class EdgeTokenOut(Out):
    id: str
    token: str = Field(description="Shown once: give it to the device ('axhub edge enrol --token ...')")
    name: str
    group: str
    expires_at: datetime


class EdgeDeviceOut(Out):
    id: str
    name: str
    group: str
    revoked: bool
    online: bool
    last_heartbeat_at: datetime | None
    last_sync_at: datetime | None
    agent_version: str
    bundle_sha256: str | None
    bundle_name: str | None
    target_bundle_sha256: str | None
    buffer_depth: int
    dropped_readings: int
    cpu_percent: float | None
    rss_mb: float | None
    config_version: int
    last_error: str | None
    inspected_24h: int = Field(description="Images this device's vision bundle inspected in the last 24 h")
    flagged_24h: int = Field(description="Of those, images flagged as defects")
    unreadable_24h: int = Field(
        default=0,
        description="Images the device could not read in the last 24 h (no verdict; not in inspected_24h)",
    )


class EdgeConfigIn(In):
    config: dict[str, Any] = Field(description="The agent configuration (see docs/edge.md)")


class EdgeRolloutIn(In):
    group: str = Field(min_length=1, max_length=100)
    model_version_id: str = Field(min_length=1, max_length=40)
    canary_device_id: str | None = Field(default=None, max_length=40)


class EdgeRolloutOut(Out):
    id: str
    group_name: str
    model_version_id: str | None
    name: str
    bundle_sha256: str
    canary_device_id: str | None
    stage: str
    note: str
    created_at: datetime


class HubKeyOut(Out):
    public_key: str
    fingerprint: str

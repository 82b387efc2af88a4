"""Metadata tables (SQLAlchemy 2). Every tenant-owned row carries ``org_id``.

Schema changes go through Alembic (``store/migrations``); ``tests/test_store_db.py`` checks
that the migrations and these models agree.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from axhub.core.ids import new_id
from axhub.core.timeutil import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a time zone first")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def new_share_code() -> str:
    return "sh_" + secrets.token_urlsafe(18)


def _id(prefix: str) -> Any:
    return mapped_column(String(40), primary_key=True, default=lambda: new_id(prefix))


def _org_fk() -> Any:
    return mapped_column(String(40), ForeignKey("organizations.id", ondelete="CASCADE"), index=True)


class OrganizationRow(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = _id("org")
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # Quotas for shared compute: how many jobs may run at once, which resource class.
    max_concurrent_jobs: Mapped[int] = mapped_column(Integer, default=2)
    compute_class: Mapped[str] = mapped_column(String(20), default="cpu")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The company's zone: new sites default to it, and so do files of a machine without a site zone.
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Seoul", server_default="Asia/Seoul")
    # What another company types to share a model with this one: random, so that sharing never
    # tells whether a company (slug) exists (accounts_repo.share_code_of fills it for older rows).
    share_code: Mapped[str | None] = mapped_column(
        String(40), unique=True, index=True, default=new_share_code
    )


class UserRow(Base):
    __tablename__ = "users"
    # A sign-in name is an e-mail *within a company*: two companies may each have an account for
    # the same address, so creating one never tells whether the address is used elsewhere.
    __table_args__ = (UniqueConstraint("org_id", "email", name="uq_users_org_email"),)
    id: Mapped[str] = _id("user")
    org_id: Mapped[str] = _org_fk()
    email: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    locale: Mapped[str] = mapped_column(String(10), default="ko")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Session generation: every session cookie carries the value it was issued under; signing
    # out, a password change or an administrator's action raises it, which ends them all.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = _id("key")
    org_id: Mapped[str] = _org_fk()
    user_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    # The first characters of the key, shown to people so they can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    role: Mapped[str] = mapped_column(String(20), default="viewer")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class SiteRow(Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = _id("site")
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Seoul")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Display names per language over the stable id (name/slug); empty falls back to ``name``.
    name_ko: Mapped[str] = mapped_column(String(200), default="", server_default="")
    name_en: Mapped[str] = mapped_column(String(200), default="", server_default="")


class AssetRow(Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("org_id", "slug"),)
    id: Mapped[str] = _id("asset")
    org_id: Mapped[str] = _org_fk()
    site_id: Mapped[str] = mapped_column(String(40), ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("assets.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    # The asset's key in the time-series store and in mapping files (path-safe).
    slug: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), default="other")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Display names per language over the stable id (name/slug); empty falls back to ``name``.
    name_ko: Mapped[str] = mapped_column(String(200), default="", server_default="")
    name_en: Mapped[str] = mapped_column(String(200), default="", server_default="")


class SignalRow(Base):
    __tablename__ = "signals"
    __table_args__ = (UniqueConstraint("asset_id", "name"),)
    id: Mapped[str] = _id("sig")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(40), default="")
    dtype: Mapped[str] = mapped_column(String(20), default="float")
    source_address: Mapped[str | None] = mapped_column(String(500), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    # Normal operating limits for threshold rules (optional).
    low_limit: Mapped[float | None] = mapped_column(Float, default=None)
    high_limit: Mapped[float | None] = mapped_column(Float, default=None)
    # Display names per language over the stable id (name/slug); empty falls back to ``name``.
    name_ko: Mapped[str] = mapped_column(String(200), default="", server_default="")
    name_en: Mapped[str] = mapped_column(String(200), default="", server_default="")


class DatasetRow(Base):
    """An immutable, versioned selection of readings, records or images."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("org_id", "name", "version"),)
    id: Mapped[str] = _id("ds")
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(20), default="readings")
    # What the dataset selects (assets, signals, time range, labels, blob manifest...).
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IngestRunRow(Base):
    __tablename__ = "ingest_runs"
    id: Mapped[str] = _id("ing")
    org_id: Mapped[str] = _org_fk()
    source: Mapped[str] = mapped_column(String(500))
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    points_written: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rejects_path: Mapped[str | None] = mapped_column(String(500), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class JobRow(Base):
    """A unit of work on shared compute; leased by a worker, retried if the lease expires."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_priority", "state", "priority", "created_at"),)
    id: Mapped[str] = _id("job")
    org_id: Mapped[str] = _org_fk()
    kind: Mapped[str] = mapped_column(String(40))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    resource_class: Mapped[str] = mapped_column(String(20), default="cpu")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    submitted_by: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class JobLogRow(Base):
    __tablename__ = "job_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = _org_fk()
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(10), default="info")
    message: Mapped[str] = mapped_column(Text)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("org_id", "name", "version"),)
    id: Mapped[str] = _id("mv")
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    family: Mapped[str] = mapped_column(String(40))
    estimator: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dataset_id: Mapped[str | None] = mapped_column(String(40), default=None)
    dataset_version: Mapped[int | None] = mapped_column(Integer, default=None)
    code_version: Mapped[str] = mapped_column(String(100), default="")
    stage: Mapped[str] = mapped_column(String(20), default="candidate")
    # Content hash of the bundle archive in the blob store.
    bundle_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelShareRow(Base):
    """Permission for another organisation to use a model version (never its data)."""

    __tablename__ = "model_shares"
    __table_args__ = (UniqueConstraint("model_version_id", "grantee_org_id"),)
    id: Mapped[str] = _id("share")
    org_id: Mapped[str] = _org_fk()
    model_version_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    grantee_org_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentRow(Base):
    __tablename__ = "deployments"
    id: Mapped[str] = _id("dep")
    org_id: Mapped[str] = _org_fk()
    model_version_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    asset_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(20), default="hub")
    edge_device_id: Mapped[str | None] = mapped_column(String(40), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_org_time", "org_id", "ts"),)
    id: Mapped[str] = _id("alert")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), index=True)
    ts: Mapped[datetime] = mapped_column()
    severity: Mapped[str] = mapped_column(String(20), default="warning")
    # 'model' (anomaly score over threshold) or 'rule' (limit, rate of change).
    kind: Mapped[str] = mapped_column(String(20), default="model")
    source: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(500))
    score: Mapped[float | None] = mapped_column(Float, default=None)
    threshold: Mapped[float | None] = mapped_column(Float, default=None)
    # Top contributing signals and how far off, e.g. [{"signal": "vibration_rms", "z": 6.2}].
    explanation: Mapped[list[Any]] = mapped_column(default=list)
    # Alerts with the same key within the de-duplication window are merged (count += 1).
    dedup_key: Mapped[str] = mapped_column(String(300), default="", index=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(40), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(40), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class EdgeDeviceRow(Base):
    __tablename__ = "edge_devices"
    id: Mapped[str] = _id("edge")
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(255))
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    deployed_bundle_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- production performance (OEE) --------------------------------------------------------------
class ProductionConfigRow(Base):
    """How a machine's states and part counts are read, and its ideal cycle time (one per asset)."""

    __tablename__ = "production_configs"
    __table_args__ = (UniqueConstraint("asset_id"),)
    id: Mapped[str] = _id("prod")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"))
    # 'tag' (a state code signal), 'rules' (derived from signals) or 'none' (counts only).
    state_source: Mapped[str] = mapped_column(String(10), default="none")
    state_signal: Mapped[str | None] = mapped_column(String(200), default=None)
    # {"1": "running", ...} overriding the default coding; rules: [{"state": ..., "when": [...]}].
    state_codes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state_rules: Mapped[list[Any]] = mapped_column(default=list)
    good_signal: Mapped[str | None] = mapped_column(String(200), default=None)
    scrap_signal: Mapped[str | None] = mapped_column(String(200), default=None)
    # 'increment' (parts since the last reading) or 'cumulative' (a PLC counter; resets handled).
    count_mode: Mapped[str] = mapped_column(String(12), default="increment")
    ideal_cycle_s: Mapped[float] = mapped_column(Float, default=60.0)
    micro_stop_s: Mapped[float] = mapped_column(Float, default=120.0)


class ShiftCalendarRow(Base):
    __tablename__ = "shift_calendars"
    __table_args__ = (UniqueConstraint("site_id"),)
    id: Mapped[str] = _id("cal")
    org_id: Mapped[str] = _org_fk()
    site_id: Mapped[str] = mapped_column(String(40), ForeignKey("sites.id", ondelete="CASCADE"))
    # [{"name": "A", "start": "06:00", "end": "14:00", "days": [0, 1, 2, 3, 4]}, ...]
    shifts: Mapped[list[Any]] = mapped_column(default=list)


class PlannedDowntimeRow(Base):
    __tablename__ = "planned_downtime"
    id: Mapped[str] = _id("pdt")
    org_id: Mapped[str] = _org_fk()
    site_id: Mapped[str] = mapped_column(String(40), ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()
    reason: Mapped[str] = mapped_column(String(200), default="")


class DowntimeReasonRow(Base):
    """An operator's reason for a stop, entered on the shop floor (tablet page)."""

    __tablename__ = "downtime_reasons"
    __table_args__ = (Index("ix_downtime_reasons_asset_start", "asset_id", "start"),)
    id: Mapped[str] = _id("dtr")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"))
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()
    reason: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    entered_by: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProductionCountRow(Base):
    """Good and scrap parts reported through the API or a file (tags go to the time series)."""

    __tablename__ = "production_counts"
    __table_args__ = (Index("ix_production_counts_asset_ts", "asset_id", "ts"),)
    id: Mapped[str] = _id("cnt")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column()
    product: Mapped[str] = mapped_column(String(200), default="")
    good: Mapped[float] = mapped_column(Float, default=0.0)
    scrap: Mapped[float] = mapped_column(Float, default=0.0)
    # The product's ideal cycle time; None falls back to the machine's.
    ideal_cycle_s: Mapped[float | None] = mapped_column(Float, default=None)


class ComplexConsentRow(Base):
    """A company's recorded, revocable consent to count in the industrial complex's aggregates."""

    __tablename__ = "complex_consents"
    id: Mapped[str] = _id("consent")
    org_id: Mapped[str] = _org_fk()
    complex_name: Mapped[str] = mapped_column(String(200), default="")
    # Whether the company may be named in the complex view (otherwise it is only counted).
    named: Mapped[bool] = mapped_column(Boolean, default=False)
    given_by: Mapped[str | None] = mapped_column(String(40), default=None)
    given_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(40), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class FileMappingRow(Base):
    """The last file mapping used for a machine, offered for its next file."""

    __tablename__ = "file_mappings"
    __table_args__ = (UniqueConstraint("asset_id"),)
    id: Mapped[str] = _id("fmap")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"))
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(40), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventRow(Base):
    """Something people marked on a machine's timeline (maintenance, a fault seen, a note)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_asset_time", "asset_id", "start"),
        # counts by kind over a time window (the fleet page's inspections in the last 24 h)
        Index("ix_events_org_kind_start", "org_id", "kind", "start"),
    )
    id: Mapped[str] = _id("evt")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"))
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime | None] = mapped_column(default=None)
    kind: Mapped[str] = mapped_column(String(20), default="maintenance")
    title: Mapped[str] = mapped_column(String(500))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertNoteRow(Base):
    __tablename__ = "alert_notes"
    id: Mapped[str] = _id("note")
    org_id: Mapped[str] = _org_fk()
    alert_id: Mapped[str] = mapped_column(String(40), ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    author: Mapped[str | None] = mapped_column(String(40), default=None)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertRuleRow(Base):
    """A user-defined limit or rate-of-change rule on one signal of one machine."""

    __tablename__ = "alert_rules"
    id: Mapped[str] = _id("rule")
    org_id: Mapped[str] = _org_fk()
    asset_id: Mapped[str] = mapped_column(String(40), ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    signal: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="limit")  # limit | rate
    low: Mapped[float | None] = mapped_column(Float, default=None)
    high: Mapped[float | None] = mapped_column(Float, default=None)
    max_per_s: Mapped[float | None] = mapped_column(Float, default=None)
    severity: Mapped[str] = mapped_column(String(20), default="warning")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationChannelRow(Base):
    """Where new alerts are sent: a webhook URL or e-mail addresses (with the SMTP settings)."""

    __tablename__ = "notification_channels"
    id: Mapped[str] = _id("chan")
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # webhook | email
    target: Mapped[str] = mapped_column(String(1000))
    min_severity: Mapped[str] = mapped_column(String(20), default="warning")
    # E-mail: {"host", "port", "sender", "username", "password", "starttls"}; webhook: {"headers"}.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lang: Mapped[str] = mapped_column(String(10), default="ko")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Tables whose rows belong to one organisation; the scoped data-access layer refuses others.
TENANT_TABLES: tuple[type[Base], ...] = (
    UserRow,
    ApiKeyRow,
    SiteRow,
    AssetRow,
    SignalRow,
    DatasetRow,
    IngestRunRow,
    JobRow,
    JobLogRow,
    ModelVersionRow,
    ModelShareRow,
    DeploymentRow,
    AlertRow,
    EdgeDeviceRow,
    ProductionConfigRow,
    ShiftCalendarRow,
    PlannedDowntimeRow,
    DowntimeReasonRow,
    ProductionCountRow,
    ComplexConsentRow,
    FileMappingRow,
    EventRow,
    AlertNoteRow,
    AlertRuleRow,
    NotificationChannelRow,
)


# ---------------------------------------------------------------------- data-center metering
# Platform data (the operator sets quotas; the job queue writes usage), read through
# ``store/metering.py`` rather than ``OrgScope``: a tenant sees its own figures only via that module.


class ComputeQuotaRow(Base):
    """Compute hours a company may use per billing month (Asia/Seoul); NULL = unlimited."""

    __tablename__ = "compute_quotas"
    org_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    cpu_hours_per_month: Mapped[float | None] = mapped_column(Float, default=None)
    gpu_hours_per_month: Mapped[float | None] = mapped_column(Float, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobUsageRow(Base):
    """One attempt of one job on shared compute: how long it waited, ran and how it ended."""

    __tablename__ = "job_usage"
    __table_args__ = (Index("ix_job_usage_org_finished", "org_id", "finished_at"),)
    id: Mapped[str] = _id("use")
    org_id: Mapped[str] = _org_fk()
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    resource_class: Mapped[str] = mapped_column(String(20), default="cpu")
    worker: Mapped[str] = mapped_column(String(100), default="")
    outcome: Mapped[str] = mapped_column(String(20))
    queued_at: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column(index=True)
    run_seconds: Mapped[float] = mapped_column(Float)
    # Only the first attempt waited in the queue from submission; retries are not charged waits.
    wait_seconds: Mapped[float | None] = mapped_column(Float, default=None)


# -- process optimisation (issue 17) -------------------------------------------------------------
# A cell's setpoints, limits and where to write them; its batch records; recommendations and
# the audit trail of every dry run, write and rollback (who, what, when, what the machine read back).


class ProcessCellRow(Base):
    __tablename__ = "process_cells"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = _id("cell")
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    asset_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("assets.id", ondelete="SET NULL"), default=None
    )
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)  # ml.process.limits.ProcessLimits
    target: Mapped[dict[str, Any]] = mapped_column(default=dict)  # serve.setpoints.SetpointTarget
    context_names: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessBatchRow(Base):
    """One batch (or one part: n_parts = 1) with its settings, context and outcome."""

    __tablename__ = "process_batches"
    __table_args__ = (UniqueConstraint("cell_id", "batch_key"),)
    id: Mapped[str] = _id("pbat")
    org_id: Mapped[str] = _org_fk()
    cell_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("process_cells.id", ondelete="CASCADE"), index=True
    )
    batch_key: Mapped[str] = mapped_column(String(200))  # the plant's batch/part id (idempotent)
    lot: Mapped[str] = mapped_column(String(200), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    defects: Mapped[dict[str, Any]] = mapped_column(default=dict)  # defect type -> count
    n_parts: Mapped[int] = mapped_column(Integer, default=0)
    n_passed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessRecommendationRow(Base):
    __tablename__ = "process_recommendations"
    id: Mapped[str] = _id("prec")
    org_id: Mapped[str] = _org_fk()
    cell_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("process_cells.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    current: Mapped[dict[str, Any]] = mapped_column(default=dict)
    predicted: Mapped[dict[str, Any]] = mapped_column(default=dict)  # effect, intervals, evidence
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(100), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)


class ProcessAuditRow(Base):
    """Append-only: every dry run, write, rejection and rollback of setpoints."""

    __tablename__ = "process_audit"
    __table_args__ = (Index("ix_process_audit_cell_at", "cell_id", "at"),)
    id: Mapped[str] = _id("paud")
    org_id: Mapped[str] = _org_fk()
    cell_id: Mapped[str] = mapped_column(String(40), ForeignKey("process_cells.id", ondelete="CASCADE"))
    recommendation_id: Mapped[str | None] = mapped_column(String(40), default=None)
    action: Mapped[str] = mapped_column(String(20))  # dry_run | write | rollback | reject
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested: Mapped[dict[str, Any]] = mapped_column(default=dict)
    read_back: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(String(2000), default="")


TENANT_TABLES += (ProcessCellRow, ProcessBatchRow, ProcessRecommendationRow, ProcessAuditRow)


class LoginThrottleRow(Base):
    """Failed sign-ins per e-mail or client address, shared by every API process (api/login_guard).

    Not tenant data: the key is a sha256 of ``e:<email>`` or ``a:<address>`` (attempted e-mails
    are not kept in the clear); times are Unix seconds, the one clock all processes share.
    """

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[float] = mapped_column(Float, default=0.0)
    until_at: Mapped[float] = mapped_column(Float, default=0.0, index=True)


# ---------------------------------------------------------------------- federated learning
# A collaboration is shared by its members (lead included): read through
# ``axhub.federated.collab``, which shows it only to them. A membership is the member's own row
# (tenant data: its signal mapping and site policy), changed only through the member's OrgScope.


class FedCollaborationRow(Base):
    __tablename__ = "fed_collaborations"
    id: Mapped[str] = _id("fc")
    lead_org_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(40))  # rul_mlp | diagnosis_mlp | mspc
    # The shared signal schema: [{"name": ..., "unit": ...}] and the target, if any.
    schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Sharing beyond the members needs every member's permission: org ids that agreed.
    share_consents: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FedMemberRow(Base):
    __tablename__ = "fed_members"
    __table_args__ = (UniqueConstraint("collaboration_id", "org_id"),)
    id: Mapped[str] = _id("fm")
    org_id: Mapped[str] = _org_fk()
    collaboration_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("fed_collaborations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="invited")  # invited | active | left
    signal_map: Mapped[dict[str, Any]] = mapped_column(default=dict)  # schema name -> own signal
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    epsilon_spent: Mapped[float] = mapped_column(Float, default=0.0)
    invited_at: Mapped[datetime] = mapped_column(default=utcnow)
    joined_at: Mapped[datetime | None] = mapped_column(default=None)
    left_at: Mapped[datetime | None] = mapped_column(default=None)


class FedRoundRow(Base):
    """One round of one run: what every member reported and what it cost (no member data)."""

    __tablename__ = "fed_rounds"
    __table_args__ = (UniqueConstraint("collaboration_id", "run_id", "round"),)
    id: Mapped[str] = _id("fr")
    collaboration_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("fed_collaborations.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[str] = mapped_column(String(40))
    round: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


TENANT_TABLES = (*TENANT_TABLES, FedMemberRow)


# ---------------------------------------------------------------------- edge fleet (issue 15)
# The device itself is ``EdgeDeviceRow`` (its ``token_hash`` is the sha256 of the device's own
# credential); these tables add enrolment, fleet state, sync idempotency and staged rollouts.


class EdgeEnrolTokenRow(Base):
    """A one-time enrolment token (only its sha256 is kept); used once, then dead."""

    __tablename__ = "edge_enrol_tokens"
    id: Mapped[str] = _id("etok")
    org_id: Mapped[str] = _org_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    device_name: Mapped[str] = mapped_column(String(200))
    group_name: Mapped[str] = mapped_column(String(100), default="default")
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    device_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_by: Mapped[str | None] = mapped_column(String(60), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EdgeDeviceStateRow(Base):
    """What the fleet page shows of a device, and what the hub wants it to run."""

    __tablename__ = "edge_device_state"
    device_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("edge_devices.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = _org_fk()
    group_name: Mapped[str] = mapped_column(String(100), default="default", index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(60), default=None)
    agent_version: Mapped[str] = mapped_column(String(40), default="")
    # The agent's last heartbeat body: buffer depth, counters, CPU/RSS, sources, bundle, errors.
    status: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_version: Mapped[int] = mapped_column(Integer, default=0)
    target_bundle_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    target_rollout_id: Mapped[str | None] = mapped_column(String(40), default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)


class EdgeSyncBatchRow(Base):
    """A batch a device delivered (its id is remembered so a resend is stored once)."""

    __tablename__ = "edge_sync_batches"
    __table_args__ = (UniqueConstraint("device_id", "batch_id"),)
    id: Mapped[str] = _id("esb")
    org_id: Mapped[str] = _org_fk()
    device_id: Mapped[str] = mapped_column(String(40), ForeignKey("edge_devices.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class EdgeRolloutRow(Base):
    """A signed bundle going to a device group: the canary first, the rest once it runs healthy."""

    __tablename__ = "edge_rollouts"
    id: Mapped[str] = _id("roll")
    org_id: Mapped[str] = _org_fk()
    group_name: Mapped[str] = mapped_column(String(100))
    model_version_id: Mapped[str | None] = mapped_column(String(40), default=None)
    name: Mapped[str] = mapped_column(String(200), default="")
    # The signed archive in the blob store (what devices download and check).
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    canary_device_id: Mapped[str | None] = mapped_column(String(40), default=None)
    stage: Mapped[str] = mapped_column(String(20), default="canary")  # canary | fleet | failed
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(60), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


TENANT_TABLES = (*TENANT_TABLES, EdgeEnrolTokenRow, EdgeDeviceStateRow, EdgeSyncBatchRow, EdgeRolloutRow)

"""The agent's files under its home directory, and the configuration the hub can push.

``identity.json``  device id, credential, hub URL and the hub's Ed25519 public key, pinned at
                   enrolment (mode 600);
``config.json``    what the hub pushed last (connectors mapping, assets to score, quota, ...);
``buffer.db``      the store-and-forward buffer (``buffer.py``);
``alerts.log``     local alerts, one JSON line each (``alerts.py``);
``bundles/``       verified bundles and the ``current``/``previous`` links (``bundles.py``);
``status.json``    the agent's last status (what ``axhub edge status`` shows on the device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from axhub.core.json_files import write_json_atomic

IDENTITY_FILE = "identity.json"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str
    org: str = ""
    name: str
    hub_url: str
    credential: str
    hub_public_key: str  # PEM


class AgentConfig(BaseModel):
    """What the hub pushes (``PUT /edge/devices/{id}/config``) or an operator writes by hand."""

    model_config = ConfigDict(extra="forbid")
    version: int = 0
    # A mapping file's content (``axhub.ingest.tag_mapping``): mqtt / opcua / modbus sections.
    connectors: dict[str, Any] = Field(default_factory=dict)
    # Assets the deployed bundle scores (asset id as the connectors name it).
    score_assets: list[str] = Field(default_factory=list)
    # A model trained on resampled data is scored on the same buckets (0: raw rows).
    bucket_s: float = Field(default=0.0, ge=0)
    quota_mb: float = Field(default=1024.0, gt=0)
    sync_interval_s: float = Field(default=2.0, gt=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    batch_rows: int = Field(default=50_000, ge=100, le=500_000)
    webhook_url: str | None = None
    # Health check of a new bundle on live data: at least this many rows, at most this share
    # flagged anomalous (a model alarming on everything is broken, not vigilant).
    health_rows: int = Field(default=20, ge=1)
    health_max_alarm_share: float = Field(default=0.5, gt=0, le=1)
    # Visual inspection: images dropped in this folder (relative to the agent's home unless
    # absolute) are scored with the deployed vision bundle, as results of this machine.
    watch_folder: str | None = None
    watch_asset: str = ""
    # A file must be unchanged this long before it is read (a camera may still be writing it).
    watch_settle_s: float = Field(default=1.0, ge=0)
    watch_interval_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _watched_folder_names_its_machine(self) -> AgentConfig:
        if self.watch_folder and not self.watch_asset:
            raise ValueError("watch_folder needs watch_asset: the machine its inspection results belong to")
        if self.watch_asset:
            # refused here, on the hub's config page, not later as batches the hub refuses
            from axhub.core.reading_rules import asset_id_problem

            problem = asset_id_problem(self.watch_asset)
            if problem is not None:
                raise ValueError(f"watch_asset: {problem.en}")
        return self


def load_identity(home: Path) -> Identity:
    path = home / IDENTITY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"this device is not enrolled ({IDENTITY_FILE} missing in the agent home)")
    return Identity.model_validate_json(path.read_text())


def save_identity(home: Path, identity: Identity) -> None:
    home.mkdir(parents=True, exist_ok=True)
    write_json_atomic(home / IDENTITY_FILE, identity.model_dump(), private=True)


def load_config(home: Path) -> AgentConfig:
    path = home / CONFIG_FILE
    return AgentConfig.model_validate_json(path.read_text()) if path.is_file() else AgentConfig()


def save_config(home: Path, config: AgentConfig) -> None:
    write_json_atomic(home / CONFIG_FILE, config.model_dump())

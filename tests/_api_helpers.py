"""Test helpers for the API suites: a hub with two companies, users of every role and keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from axhub.api import bootstrap
from axhub.api.main import create_app
from axhub.core.settings import Settings
from axhub.store.db import Database

PASSWORD = "correct-horse-battery"


@dataclass
class Hub:
    app: FastAPI
    settings: Settings
    db: Database
    keys: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None) -> TestClient:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return TestClient(
            self.app, base_url="https://testserver", headers=headers, raise_server_exceptions=False
        )


def make_hub(home: Path, database_url: str, *, executor: Any = "none", **app_kwargs: Any) -> Hub:
    settings = Settings(home=home, database_url=database_url)
    app = create_app(settings, executor=executor, **app_kwargs)
    db: Database = app.state.axhub.db
    hub = Hub(app=app, settings=settings, db=db)
    hub.users, hub.keys = create_accounts(db)
    return hub


def create_accounts(db: Database) -> tuple[dict[str, str], dict[str, str]]:
    """Users of every role in companies 'acme' and 'beta', an operator, and a key for each."""
    users: dict[str, str] = {}
    keys: dict[str, str] = {}
    for who, org, role in [
        ("a_admin", "acme", "admin"),
        ("a_engineer", "acme", "engineer"),
        ("a_viewer", "acme", "viewer"),
        ("b_admin", "beta", "admin"),
    ]:
        user_id = bootstrap.create_user(db, org, f"{who}@{org}.example", PASSWORD, role)
        users[who] = user_id
        scopes = {
            "admin": ["read", "write", "ingest", "admin"],
            "engineer": ["read", "write", "ingest"],
            "viewer": ["read"],
        }[role]
        keys[who] = bootstrap.create_key(db, user_id, f"{who} key", scopes)
    users["operator"] = bootstrap.create_operator(db, "ops@platform.example", PASSWORD)
    keys["operator"] = bootstrap.create_key(db, users["operator"], "ops", ["read", "write", "admin"])
    keys["a_ingest"] = bootstrap.create_key(db, users["a_engineer"], "gateway", ["ingest"])
    return users, keys


def seed_org(client: TestClient, tag: str = "") -> dict[str, str]:
    """A site, asset, signal, dataset and probe job in the client's organisation; returns ids."""
    ids: dict[str, str] = {}
    r = client.post("/api/v1/sites", json={"name": f"Plant 1{tag}"})
    assert r.status_code == 201, r.text
    ids["site"] = r.json()["id"]
    r = client.post("/api/v1/assets", json={"site_id": ids["site"], "name": f"CNC 01{tag}", "kind": "cnc"})
    assert r.status_code == 201, r.text
    ids["asset"] = r.json()["id"]
    r = client.post("/api/v1/signals", json={"asset_id": ids["asset"], "name": "spindle_temp", "unit": "C"})
    assert r.status_code == 201, r.text
    ids["signal"] = r.json()["id"]
    r = client.post(
        "/api/v1/datasets",
        json={"name": "demo", "spec": {"source": "example", "estimator": "anomaly/mspc"}},
    )
    assert r.status_code == 201, r.text
    ids["dataset"] = r.json()["id"]
    r = client.post("/api/v1/jobs", json={"kind": "probe", "seconds": 0})
    assert r.status_code == 201, r.text
    ids["job"] = r.json()["id"]
    return ids

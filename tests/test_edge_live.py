"""The edge agent against a real hub: hub under uvicorn, agent as its own process, the
simulator's live MQTT endpoint (Mosquitto), SIGKILL where it hurts.

Done-when of issue 15: the hub stopped while the agent keeps scoring and buffering, then
everything arriving exactly once (series equal, alerts equal); SIGKILL mid-sync and
mid-bundle-swap; tampered bundles refused; a revoked device cannot sync; canary first.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import func, select

from _edge import anomaly_bundle, korean_frames, values_of
from _live import Live, live_server, start_server
from axhub.edge.agent import enrol_device
from axhub.edge.alerts import read_alert_log
from axhub.edge.bundles import BundleSlots
from axhub.registry.bundle import BundleError
from axhub.registry.store import ModelRegistry
from axhub.store.blobs import BlobStore
from axhub.store.models import AlertRow, EdgeSyncBatchRow
from axhub.store.platform import org_by_slug
from axhub.store.scoped import OrgScope

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]
SRC = Path(__file__).resolve().parents[1] / "src"
ASSET = "press-01"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class AgentProc:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        log = (self.home / "agent.out").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "axhub.edge.agent", "--home", str(self.home)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.home / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def output(self) -> str:
        return (self.home / "agent.out").read_text(errors="replace")[-3000:]


def org_id(live: Live) -> str:
    with live.db.session() as s:
        return org_by_slug(s, "acme").id


def register_bundle(live: Live, archive: Path, name: str) -> str:
    with live.db.session() as s:
        scope = OrgScope(s, org_by_slug(s, "acme").id)
        return ModelRegistry(scope, BlobStore(live.home / "data" / "blobs")).register(archive, name=name).id


def enrol(live: Live, home: Path, name: str, group: str = "line-1") -> str:
    with live.client("a_admin") as c:
        r = c.post("/api/v1/edge/tokens", json={"name": name, "group": group})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
    identity = enrol_device(home, live.url, token, name)
    # the token is one-time
    again = httpx.post(f"{live.url}/device/v1/enrol", json={"token": token, "name": "x"})
    assert again.status_code == 401 and "already used" in again.json()["error"]["message"]
    return identity.device_id


def push_config(live: Live, device_id: str, prefix: str, **extra: Any) -> None:
    config = {
        "connectors": {
            "mqtt": {
                "port": 1883,
                "client_id": f"edge-{uuid.uuid4().hex[:8]}",
                "topics": [{"topic": f"{prefix}/{{asset}}/batch"}],
            }
        },
        "score_assets": [ASSET],
        "sync_interval_s": 0.2,
        "heartbeat_interval_s": 0.5,
        "batch_rows": 200,
        "health_rows": 20,
        **extra,
    }
    with live.client("a_engineer") as c:
        r = c.put(f"/api/v1/edge/devices/{device_id}/config", json={"config": config})
        assert r.status_code == 200, r.text


def device(live: Live, device_id: str) -> dict[str, Any]:
    with live.client("a_viewer") as c:
        return next(d for d in c.get("/api/v1/edge/devices").json() if d["id"] == device_id)


def rollout(live: Live, version_id: str, group: str = "line-1") -> dict[str, Any]:
    with live.client("a_engineer") as c:
        r = c.post("/api/v1/edge/rollouts", json={"group": group, "model_version_id": version_id})
        assert r.status_code == 201, r.text
        return dict(r.json())


def rollout_state(live: Live, rollout_id: str) -> dict[str, Any]:
    with live.client("a_viewer") as c:
        return next(r for r in c.get("/api/v1/edge/rollouts").json() if r["id"] == rollout_id)


def on_trial(agent: AgentProc, started: dict[str, Any]) -> None:
    """Wait until the agent has the rollout's bundle swapped in and waits for live rows."""
    slots = agent.home / "bundles"
    wait_for(
        "bundle on trial",
        lambda: (
            (slots / "swap.json").is_file() and os.readlink(slots / "current") == started["bundle_sha256"]
        ),
        60,
        every=0.02,
    )


def play(frame: pd.DataFrame, prefix: str, speed: float = 4.0) -> threading.Thread:
    """Serve rows of a plant frame on MQTT through the simulator (its own stamps)."""
    from axhub.sim.live import serve_plant_live

    def run() -> None:
        asyncio.run(
            serve_plant_live(
                {ASSET: frame},
                mqtt_port=1883,
                mqtt_prefix=prefix,
                opcua_port=None,
                modbus_port=None,
                speed=speed,
                realtime_stamps=False,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def hub_readings(live: Live) -> set[tuple[str, str, int, float]]:
    from axhub.store.timeseries import TimeSeriesStore

    frame = TimeSeriesStore(live.home / "data" / "timeseries").query(
        org_id(live), ASSET, None, "2026-03-01", "2026-03-04"
    )
    ts = frame["ts"].dt.as_unit("us").astype("int64").to_numpy() if len(frame) else []
    return {(ASSET, s, int(t), float(v)) for s, t, v in zip(frame["signal"], ts, frame["value"], strict=True)}


def hub_alert_ids(live: Live) -> set[str]:
    with live.db.session() as s:
        return {a.id for a in OrgScope(s, org_id(live)).list(AlertRow) if a.id.startswith("ealert_")}


def synced_reading_rows(live: Live) -> int:
    with live.db.session() as s:
        return int(
            s.scalar(
                select(func.coalesce(func.sum(EdgeSyncBatchRow.rows), 0)).where(
                    EdgeSyncBatchRow.kind == "readings"
                )
            )
        )


@pytest.fixture()
def hub(tmp_path: Path) -> Iterator[Live]:
    with live_server(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub' / 'meta.db'}") as live:
        yield live


@pytest.fixture()
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for agent in started:
        agent.stop()


def _restart_hub(live: Live) -> None:
    port = int(live.url.rsplit(":", 1)[1])
    db_url = f"sqlite:///{live.home / 'meta.db'}"
    live.proc = start_server(live.home, db_url, port, {"AXHUB_SERVE_SECURE_COOKIES": "0"})


def test_hub_outage_and_sigkill_mid_sync_lose_and_duplicate_nothing(
    hub: Live, agents: list[AgentProc], tmp_path: Path
) -> None:
    frame = korean_frames(rows=400)  # the pressure fault starts at row 200
    version = register_bundle(hub, anomaly_bundle(tmp_path), "press-anomaly")
    agent = AgentProc(tmp_path / "agent")
    agents.append(agent)
    device_id = enrol(hub, agent.home, "프레스 1 게이트웨이")
    prefix = f"edge-test-{uuid.uuid4().hex[:8]}"
    push_config(hub, device_id, prefix)
    agent.start()
    wait_for("MQTT connected", lambda: any(s.get("connected") for s in agent.status().get("sources", [])), 30)
    time.sleep(0.5)  # the subscription's SUBACK

    started = rollout(hub, version)
    on_trial(agent, started)
    play(frame.iloc[:120], prefix).join(60)
    wait_for("bundle active", lambda: rollout_state(hub, started["id"])["stage"] == "fleet", 60)
    assert device(hub, device_id)["bundle_sha256"] == started["bundle_sha256"]

    # --- the hub goes away; the agent keeps scoring, alerting and buffering
    hub.proc.send_signal(signal.SIGTERM)
    hub.proc.wait(20)
    play(frame.iloc[120:], prefix).join(60)
    offline = wait_for(
        "buffered readings", lambda: (s := agent.status()) and s["buffer"]["total"] >= 1000 and s, 30
    )
    assert offline["last_error"] and "unreachable" in offline["last_error"]
    local_alerts = wait_for("a local alert", lambda: read_alert_log(agent.home / "alerts.log"), 30)
    assert all(a["asset"] == ASSET for a in local_alerts)

    # --- the hub returns; the agent is SIGKILLed as soon as the first batch has landed
    _restart_hub(hub)
    wait_for("first batch at the hub", lambda: synced_reading_rows(hub) > 0, 60, every=0.005)
    agent.kill()
    killed_at = synced_reading_rows(hub)
    agent.start()
    wait_for("buffer drained", lambda: (s := agent.status()) and s["buffer"]["total"] == 0, 90)
    wait_for("all readings at the hub", lambda: synced_reading_rows(hub) >= 1600, 30)

    expected = values_of(frame, ASSET)
    assert hub_readings(hub) == expected  # the series the machine produced, nothing altered
    assert synced_reading_rows(hub) == len(expected) == 1600  # every batch counted once
    assert killed_at < 1600 or killed_at == 1600  # (killed mid-sync when below)
    assert hub_alert_ids(hub) == {a["id"] for a in read_alert_log(agent.home / "alerts.log")}
    assert agent.status()["counters"].get("dropped_readings", 0) == 0


def test_sigkill_mid_bundle_swap_keeps_the_old_bundle(
    hub: Live, agents: list[AgentProc], tmp_path: Path
) -> None:
    frame = korean_frames(rows=600).iloc[:200]  # normal data only
    first = register_bundle(hub, anomaly_bundle(tmp_path / "a", seed=0), "press-anomaly")
    second = register_bundle(hub, anomaly_bundle(tmp_path / "b", seed=1), "press-anomaly")
    agent = AgentProc(tmp_path / "agent")
    agents.append(agent)
    device_id = enrol(hub, agent.home, "press-gw")
    prefix = f"edge-test-{uuid.uuid4().hex[:8]}"
    push_config(hub, device_id, prefix)
    agent.start()
    wait_for("MQTT connected", lambda: any(s.get("connected") for s in agent.status().get("sources", [])), 30)
    time.sleep(0.5)
    one = rollout(hub, first)
    on_trial(agent, one)
    play(frame.iloc[:60], prefix).join(60)
    wait_for("first bundle active", lambda: rollout_state(hub, one["id"])["stage"] == "fleet", 60)
    assert device(hub, device_id)["bundle_sha256"] == one["bundle_sha256"]

    # The second bundle needs 1,000 live rows to pass its health check: kill the agent inside it.
    push_config(hub, device_id, prefix, health_rows=1000)
    time.sleep(1.5)
    two = rollout(hub, second)
    slots = agent.home / "bundles"
    feeder = play(frame.iloc[60:], prefix, speed=1.0)
    wait_for(
        "swap in progress",
        lambda: (slots / "swap.json").is_file() and os.readlink(slots / "current") == two["bundle_sha256"],
        60,
        every=0.01,
    )
    agent.kill()
    agent.start()
    wait_for(
        "rolled back to the first bundle",
        lambda: os.readlink(slots / "current") == one["bundle_sha256"] and not (slots / "swap.json").exists(),
        30,
    )
    state = wait_for(
        "rollout marked failed", lambda: (r := rollout_state(hub, two["id"]))["stage"] == "failed" and r, 30
    )
    assert "stopped during the health check" in state["note"]
    feeder.join(60)
    # the old bundle keeps scoring live data after the restart
    wait_for("scoring with the old bundle", lambda: agent.status().get("scoring", {}).get("rows", 0) > 0, 30)
    assert device(hub, device_id)["bundle_sha256"] == one["bundle_sha256"]


def test_tampered_unsigned_bundles_refused_and_revoked_device_cannot_sync(
    hub: Live, agents: list[AgentProc], tmp_path: Path
) -> None:
    archive = anomaly_bundle(tmp_path)
    # unsigned (and signed-by-someone-else) bundles never get past the agent's check
    key = httpx.get(f"{hub.url}/device/v1/hub-key").json()["public_key"].encode()
    slots = BundleSlots(tmp_path / "dev", key)
    data = archive.read_bytes()
    import hashlib

    with pytest.raises(BundleError, match="not signed by the hub"):
        slots.install(data, hashlib.sha256(data).hexdigest())
    assert not any(p.name != ".staging" for p in (tmp_path / "dev" / "bundles").iterdir())

    version = register_bundle(hub, archive, "press-anomaly")
    agent = AgentProc(tmp_path / "agent")
    agents.append(agent)
    device_id = enrol(hub, agent.home, "press-gw")
    push_config(hub, device_id, f"edge-test-{uuid.uuid4().hex[:8]}")
    # the signed archive is altered on the hub's disk (or on the way): one byte of the model
    started = rollout(hub, version)
    blob = hub.home / "data" / "blobs"
    path = BlobStore(blob).path(started["bundle_sha256"])
    tampered = tmp_path / "t.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "model.onnx":
                body = body[:-1] + bytes([body[-1] ^ 1])
            dst.writestr(info, body)
    path.chmod(0o644)
    path.write_bytes(tampered.read_bytes())
    agent.start()
    state = wait_for(
        "rollout refused", lambda: (r := rollout_state(hub, started["id"]))["stage"] == "failed" and r, 60
    )
    assert "incomplete or altered" in state["note"]
    assert device(hub, device_id)["bundle_sha256"] is None

    # revoked: the device's own credential stops working at once; its data stays buffered
    with hub.client("a_admin") as c:
        assert c.post(f"/api/v1/edge/devices/{device_id}/revoke").json()["revoked"] is True
    credential = json.loads((agent.home / "identity.json").read_text())["credential"]
    r = httpx.post(
        f"{hub.url}/device/v1/sync",
        content=b"x",
        headers={"Authorization": f"Device {credential}", "X-Batch-Id": "b1", "X-Batch-Kind": "readings"},
    )
    assert r.status_code == 403 and "revoked" in r.json()["error"]["message"]
    wait_for("agent sees the revocation", lambda: agent.status().get("revoked") is True, 30)


def test_staged_rollout_goes_to_the_canary_first(hub: Live, tmp_path: Path) -> None:
    version = register_bundle(hub, anomaly_bundle(tmp_path), "press-anomaly")
    creds = []
    for name in ("canary", "second"):
        with hub.client("a_admin") as c:
            token = c.post("/api/v1/edge/tokens", json={"name": name, "group": "line-2"}).json()["token"]
        r = httpx.post(
            f"{hub.url}/device/v1/enrol", json={"token": token, "name": name, "agent_version": "t"}
        )
        creds.append(r.json()["credential"])

    def beat(i: int, **body: Any) -> dict[str, Any]:
        r = httpx.post(
            f"{hub.url}/device/v1/heartbeat", json=body, headers={"Authorization": f"Device {creds[i]}"}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    started = rollout(hub, version, group="line-2")
    assert beat(0)["bundle"]["sha256"] == started["bundle_sha256"]
    assert "bundle" not in beat(1)  # not before the canary runs it
    beat(
        0,
        bundle={"sha256": started["bundle_sha256"]},
        bundle_reports=[
            {"sha256": started["bundle_sha256"], "rollout_id": started["id"], "outcome": "active"}
        ],
    )
    assert rollout_state(hub, started["id"])["stage"] == "fleet"
    assert beat(1)["bundle"]["sha256"] == started["bundle_sha256"]
    # another company can neither see nor roll out to this group
    with hub.client("b_admin") as c:
        assert c.get("/api/v1/edge/devices").json() == []
        r = c.post("/api/v1/edge/rollouts", json={"group": "line-2", "model_version_id": version})
        assert r.status_code == 404

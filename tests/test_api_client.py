"""The Python SDK against the real app (in-process transport): keys, sessions with CSRF,
readings written and read back, uploads, jobs with live events, models, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from _api_helpers import PASSWORD, Hub, make_hub
from axhub.client import AxHubApiError, AxHubClient, load_credentials, save_credentials


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", executor="local", workers=1)


def _sdk(hub: Hub, key: str | None = None) -> AxHubClient:
    test_client = hub.client()
    test_client.__enter__()  # runs the app's lifespan (the job executor)
    return AxHubClient("https://testserver", api_key=key, transport=test_client._transport)


def test_sdk_end_to_end(hub: Hub, tmp_path: Path) -> None:
    sdk = _sdk(hub, hub.keys["a_engineer"])
    site = sdk.post("/sites", {"name": "Plant"})
    asset = sdk.post("/assets", {"site_id": site["id"], "name": "Pump 1", "kind": "pump"})
    now = datetime.now(UTC).replace(microsecond=0)
    readings = [
        {"time": (now - timedelta(seconds=60 - i)).isoformat(), "signal": "pressure", "value": float(i)}
        for i in range(60)
    ]
    gateway = AxHubClient("https://testserver", api_key=hub.keys["a_ingest"], transport=sdk.http._transport)
    assert gateway.post(f"/assets/{asset['id']}/readings", {"readings": readings})["written"] == 60
    with pytest.raises(AxHubApiError) as denied:
        gateway.get("/sites")
    assert denied.value.status == 403 and denied.value.code == "forbidden"
    series = sdk.readings(asset["id"])["series"]
    assert [s["signal"] for s in series] == ["pressure"]  # registered by the write
    assert series[0]["values"] == [float(i) for i in range(60)]
    bucketed = sdk.readings(asset["id"], interval="30s", agg="max")["series"][0]
    assert max(v for v in bucketed["values"] if v is not None) == 59.0

    csv = tmp_path / "normal.csv"
    csv.write_text("a,b\n" + "".join(f"{i % 7},{(i * 3) % 5}\n" for i in range(200)))
    up = sdk.upload(csv, dataset_name="normal")
    assert up["rows_read"] == 200 and up["dataset"]["version"] == 1
    job = sdk.submit_job({"kind": "train", "estimator": "anomaly/mspc", "dataset_id": up["dataset"]["id"]})
    events = list(sdk.job_events(job["id"], timeout=120))
    assert events[-1] == ("end", {"state": "succeeded"})
    assert any(e == "log" and "training" in d["message"] for e, d in events)
    done = sdk.job(job["id"])
    version = done["result"]["model_version_id"]
    assert sdk.promote(version)["stage"] == "production"
    assert [m["id"] for m in sdk.models(stage="production")] == [version]
    bundle = sdk.download_bundle(version, tmp_path)
    assert bundle.stat().st_size > 0
    with pytest.raises(AxHubApiError) as missing:
        sdk.job("job_does_not_exist")
    assert missing.value.status == 404 and missing.value.code == "not_found"


def test_sdk_password_login_uses_csrf(hub: Hub) -> None:
    sdk = _sdk(hub)
    me = sdk.login("a_admin@acme.example", PASSWORD)
    assert me["role"] == "admin" and me["csrf_token"]
    key = sdk.create_key("laptop", ["read", "write"])  # an unsafe method over the cookie session
    assert key["key"].startswith("axk_")
    assert any(k["id"] == key["id"] for k in sdk.list_keys())


def test_credentials_file_is_private(tmp_path: Path) -> None:
    path = save_credentials("http://hub:8000", "axk_abcdefgh_secret", home=tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_credentials(tmp_path) == ("http://hub:8000", "axk_abcdefgh_secret")


def test_sdk_password_login_over_plain_http_to_127_0_0_1(tmp_path: Path) -> None:
    """A hub served like `axhub serve` (Secure session cookies) on http://127.0.0.1: the SDK signs
    in with a password and its next calls (GET and a CSRF-checked POST) are accepted."""
    import socket
    import threading
    import time

    import uvicorn

    from axhub.api import bootstrap
    from axhub.api.main import create_app
    from axhub.core.settings import Settings

    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'meta.db'}")
    app = create_app(settings, executor="none", secure_cookies=True)
    bootstrap.create_user(app.state.axhub.db, "acme", "kim@acme.example", PASSWORD, "admin")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        with AxHubClient(f"http://127.0.0.1:{port}") as sdk:
            me = sdk.login("kim@acme.example", PASSWORD)
            assert sdk.me()["user"]["email"] == me["user"]["email"] == "kim@acme.example"
            key = sdk.create_key("script", ["read"])  # a POST: session cookie and CSRF header
            assert key["key"].startswith("axk_")
    finally:
        server.should_exit = True
        thread.join(timeout=10)

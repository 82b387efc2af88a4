"""Issue 10 leftovers: SMTP passwords encrypted at rest (key outside the database) against a real
SMTP server that checks them, and rate-of-change alert rules over the API."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from _api_helpers import Hub, make_hub
from axhub.store.models import NotificationChannelRow
from axhub.store.platform import org_by_slug
from axhub.store.scoped import OrgScope

PASSWORD = "m@il-S3cret!77"  # smtplib sends AUTH in ASCII only


@pytest.fixture()
def smtp() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """An SMTP server that accepts only user 'alerts' with PASSWORD; records every login tried."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    tried: list[tuple[str, str]] = []

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        tried.append((user, password))
        return AuthResult(success=user == "alerts" and password == PASSWORD)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Sink(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        yield port, tried
    finally:
        controller.stop()


def _channel(c: Any, port: int, password: str | None = PASSWORD) -> dict[str, Any]:
    smtp: dict[str, Any] = {"host": "127.0.0.1", "port": port, "username": "alerts"}
    if password is not None:
        smtp["password"] = password
    body = {
        "name": "정비팀 메일",
        "kind": "email",
        "target": "maint@acme.example",
        "lang": "ko",
        "smtp": smtp,
    }
    r = c.post("/api/v1/notifications/channels", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _restart(hub: Hub, home: Path, **settings: Any) -> Hub:
    """Another server process on the same database (same accounts and keys)."""
    from axhub.api.main import create_app
    from axhub.core.settings import Settings

    config = Settings(home=home, database_url=hub.settings.database_url, **settings)
    app = create_app(config, executor="none")
    return Hub(app=app, settings=config, db=app.state.axhub.db, keys=hub.keys, users=hub.users)


def _database_bytes(home: Path) -> bytes:
    with sqlite3.connect(home / "meta.db") as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return b"".join(p.read_bytes() for p in home.glob("meta.db*"))


def test_smtp_passwords_are_sealed_with_a_key_outside_the_database(
    tmp_path: Path, smtp: tuple[int, list[tuple[str, str]]]
) -> None:
    port, tried = smtp
    hub = make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}")
    with hub.client("a_admin") as c:
        out = _channel(c, port)
        assert out["settings"]["password_set"] is True
        assert not {"password", "password_sealed"} & set(out["settings"])
        assert c.post(f"/api/v1/notifications/channels/{out['id']}/test").json() == {
            "ok": True,
            "error": None,
        }
        assert tried[-1] == ("alerts", PASSWORD)  # opened again for the server, exactly
        # a change without a password keeps the sealed one (forms never get it back to resend)
        r = c.patch(
            f"/api/v1/notifications/channels/{out['id']}",
            json={"smtp": {"host": "127.0.0.1", "port": port, "username": "alerts"}},
        )
        assert r.status_code == 200 and r.json()["settings"]["password_set"] is True
        assert c.post(f"/api/v1/notifications/channels/{out['id']}/test").json()["ok"] is True
    stored = _database_bytes(tmp_path)
    assert PASSWORD.encode() not in stored and b"fernet:" in stored
    key = tmp_path / "secrets.key"
    assert key.is_file() and key.stat().st_mode & 0o777 == 0o600 and key.read_bytes().strip() not in stored
    # The database without the key is useless: a hub with another key cannot send, and says why.
    other = _restart(hub, tmp_path / "other", secrets_key=Fernet.generate_key().decode())
    with other.client("a_admin") as c:
        failed = c.post(f"/api/v1/notifications/channels/{out['id']}/test").json()
    assert failed["ok"] is False and "cannot be decrypted" in failed["error"]


def test_clear_text_passwords_of_older_versions_are_sealed_at_start(
    tmp_path: Path, smtp: tuple[int, list[tuple[str, str]]]
) -> None:
    port, tried = smtp
    hub = make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}")
    with hub.db.session() as s:  # what an older version stored
        scope = OrgScope(s, org_by_slug(s, "acme").id)
        old = scope.add(
            NotificationChannelRow(
                name="old",
                kind="email",
                target="maint@acme.example",
                settings={"host": "127.0.0.1", "port": port, "username": "alerts", "password": PASSWORD},
            )
        )
        old_id = old.id
    assert PASSWORD.encode() in _database_bytes(tmp_path)
    restarted = _restart(hub, tmp_path)
    assert PASSWORD.encode() not in _database_bytes(tmp_path)
    with restarted.client("a_admin") as c:
        assert c.post(f"/api/v1/notifications/channels/{old_id}/test").json()["ok"] is True
    assert tried[-1] == ("alerts", PASSWORD)


# ---------------------------------------------------------------------- rate-of-change rules
@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    home = tmp_path_factory.mktemp("rate-rules")
    return make_hub(home, f"sqlite:///{home / 'meta.db'}")


def test_rate_rules_are_checked_and_raise_explained_alerts_on_an_upload(hub: Hub, tmp_path: Path) -> None:
    with hub.client("a_admin") as c:
        site = c.post("/api/v1/sites", json={"name": "창원 2공장"}).json()
        asset = c.post(
            "/api/v1/assets", json={"site_id": site["id"], "name": "펌프 2", "slug": "pump-02"}
        ).json()["id"]
        base = {"asset_id": asset, "signal": "압력", "kind": "rate"}
        for bad in ({}, {"max_per_s": 0}, {"max_per_s": -1.0}):
            assert c.post("/api/v1/rules", json={**base, **bad}).status_code == 422, bad
        rule = c.post("/api/v1/rules", json={**base, "max_per_s": 0.01, "severity": "critical"})
        assert rule.status_code == 201, rule.text
        assert rule.json()["kind"] == "rate" and rule.json()["max_per_s"] == 0.01
        # one reading a minute; at 13:30 the pressure jumps by 2.4 bar: 0.04 bar/s, 4x the limit
        rows = "".join(f"2026-03-05 13:{m:02d}:00,{4.0 + (2.4 if m >= 30 else 0):.1f}\n" for m in range(60))
        path = tmp_path / "펌프2.csv"
        path.write_bytes(("시간,압력\n" + rows).encode("cp949"))
        r = c.post(
            "/api/v1/uploads/preview?lang=ko",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            data={"asset": asset},
        )
        assert r.status_code == 201, r.text
        done = c.post(f"/api/v1/uploads/{r.json()['sha256']}/ingest", json={"asset": asset}).json()
        assert len(done["alerts"]) == 1, done  # one step, one alert (slow drift would raise none)
        detail = c.get(
            f"/api/v1/alerts/{done['alerts'][0]}/explain", headers={"Accept-Language": "ko"}
        ).json()
        alert = detail["alert"]
        assert alert["kind"] == "rule" and alert["severity"] == "critical"
        (why,) = alert["explanation"]
        assert why["signal"] == "압력" and why["limit_per_s"] == 0.01
        assert why["rate_per_s"] == pytest.approx(2.4 / 60, rel=1e-6) and why["times_limit"] == pytest.approx(
            4.0
        )
        # disabled, the rule raises nothing for the next file of the same shape
        assert (
            c.patch(f"/api/v1/rules/{rule.json()['id']}", json={"enabled": False}).json()["enabled"] is False
        )
        later = "".join(f"2026-03-06 13:{m:02d}:00,{4.0 + (2.4 if m >= 30 else 0):.1f}\n" for m in range(60))
        path.write_bytes(("시간,압력\n" + later).encode("cp949"))
        r = c.post(
            "/api/v1/uploads/preview?lang=ko",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            data={"asset": asset},
        )
        again = c.post(f"/api/v1/uploads/{r.json()['sha256']}/ingest", json={"asset": asset}).json()
        assert again["alerts"] == []
    with hub.client("b_admin") as other:
        assert other.post("/api/v1/rules", json={**base, "max_per_s": 1.0}).status_code == 404

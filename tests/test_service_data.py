"""Odd data and partial failures (issue 12): pages never 500 on odd stored data, a failed upload
never leaves readings that nothing lists, a deleted machine takes its readings with it, and a
LIKE wildcard cannot stand in for an upload's sha256."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from _api_helpers import PASSWORD, Hub, make_hub, seed_org
from axhub.core.readings import make_batch
from axhub.store.models import AlertRow, IngestRunRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", secure_cookies=False)


def _org_of(hub: Hub, who: str) -> str:
    with hub.client(who) as c:
        return str(c.get("/api/v1/org").json()["id"])


def test_asset_page_survives_readings_and_alerts_at_the_ends_of_the_calendar(hub: Hub) -> None:
    org = _org_of(hub, "a_engineer")
    with hub.client("a_engineer") as c:
        ids = seed_org(c)
        slug = c.get(f"/api/v1/assets/{ids['asset']}").json()["slug"]
    store = TimeSeriesStore(hub.settings.timeseries_root)
    edges = [datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
    stamps = [int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000) for t in edges]
    store.write(org, make_batch(slug, "spindle_temp", stamps, [1.0, 2.0]))
    with hub.db.session() as s:
        OrgScope(s, org).add(AlertRow(asset_id=ids["asset"], ts=edges[0], title="from the far future"))
    with hub.client() as browser:
        r = browser.post(
            "/api/v1/auth/login", json={"email": "a_engineer@acme.example", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        for path in (f"/assets/{slug}", "/", "/alerts"):
            page = browser.get(path)
            assert page.status_code == 200, f"{path}: {page.status_code} {page.text[:300]}"


def test_a_failed_upload_leaves_its_record_not_orphan_readings(hub: Hub, monkeypatch: Any) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c)
        slug = c.get(f"/api/v1/assets/{ids['asset']}").json()["slug"]
        calls = {"n": 0}
        real_write = TimeSeriesStore.write

        def counted(self: TimeSeriesStore, org: str, batch: Any) -> Any:
            calls["n"] += 1
            return real_write(self, org, batch)

        def dies(*_: Any, **__: Any) -> Any:
            raise OSError("server killed")  # readings are stored, then the request dies

        monkeypatch.setattr(TimeSeriesStore, "write", counted)
        monkeypatch.setattr(OrgScope, "register_signals", dies)
        rows = "".join(f"2024-01-01T00:{m:02d}:00Z,{m}\n" for m in range(60))
        r = c.post(
            "/api/v1/uploads",
            files={"file": ("line.csv", f"time,spindle_temp\n{rows}".encode(), "text/csv")},
            data={"asset": slug},
        )
        assert r.status_code >= 400
        assert calls["n"] >= 1
    with hub.db.session() as s:
        runs = list(s.query(IngestRunRow).filter(IngestRunRow.source.like("upload:%:line.csv")))
    assert len(runs) == 1 and runs[0].finished_at is None, "the partial upload must stay on record"


def test_deleting_a_machine_deletes_its_readings(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c)
        reading = {"time": "2024-03-01T00:00:00Z", "signal": "spindle_temp", "value": 42.0}
        assert (
            c.post(f"/api/v1/assets/{ids['asset']}/readings", json={"readings": [reading]}).status_code == 201
        )
        window = {"start": "2024-02-29T00:00:00Z", "end": "2024-03-02T00:00:00Z"}
        assert c.delete(f"/api/v1/assets/{ids['asset']}").status_code == 200
        again = c.post("/api/v1/assets", json={"site_id": ids["site"], "name": "CNC 01", "kind": "cnc"})
        assert again.status_code == 201, again.text
        r = c.get(
            f"/api/v1/assets/{again.json()['id']}/readings", params={**window, "signals": "spindle_temp"}
        )
        assert r.status_code == 200, r.text
        assert all(s["values"] == [] for s in r.json()["series"]), (
            "old readings came back under the new machine"
        )


def test_a_like_wildcard_is_not_an_upload(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        assert c.post("/api/v1/uploads", files={"file": ("t.csv", b"a,b\n1,2\n")}).status_code == 201
        for fake in ("%", "_" * 64, "%" + "0" * 63):
            r = c.post(
                "/api/v1/datasets", json={"name": "steal", "spec": {"source": "upload", "blob_sha256": fake}}
            )
            assert r.status_code in (404, 422), (fake, r.status_code, r.text)


def test_the_operator_password_never_comes_from_the_command_line(tmp_path: Path, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app as cli_app

    monkeypatch.setenv("AXHUB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AXHUB_OPERATOR_PASSWORD", raising=False)
    flag = CliRunner().invoke(
        cli_app, ["serve", "--operator-email", "o@x.example", "--operator-password", "pw"]
    )
    assert flag.exit_code != 0 and "No such option" in flag.output
    no_tty = CliRunner().invoke(cli_app, ["serve", "--operator-email", "o@x.example"])
    assert no_tty.exit_code == 2 and "AXHUB_OPERATOR_PASSWORD" in no_tty.output

"""The API's resources on SQLite and on real PostgreSQL: CRUD, paging, uploads and limits,
accounts and the operator's view, alerts (list, acknowledge, live stream)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pandas as pd
import pytest
from PIL import Image

from _api_helpers import PASSWORD, Hub, make_hub, seed_org
from axhub.core.timeutil import utcnow
from axhub.store.models import AlertRow
from axhub.store.platform import org_by_slug
from axhub.store.scoped import OrgScope
from conftest import _postgres_database


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub per backend for the module (accounts are slow to hash); tests use their own names."""
    home = tmp_path_factory.mktemp("api")
    if request.param == "sqlite":
        yield make_hub(home, f"sqlite:///{home / 'meta.db'}", max_upload_bytes=64 * 1024)
        return
    gen = _postgres_database()
    url = next(gen)
    hub = make_hub(home, url, max_upload_bytes=64 * 1024)
    yield hub
    hub.db.dispose()
    next(gen, None)


def test_plant_crud_and_paging(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-crud")
        for i in range(4):
            r = c.post("/api/v1/assets", json={"site_id": ids["site"], "name": f"Pump {i}", "kind": "pump"})
            assert r.status_code == 201
        site = {"site_id": ids["site"]}
        page = c.get("/api/v1/assets", params={"limit": 2, "offset": 1, **site}).json()
        assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1 and len(page["items"]) == 2
        assert [a["slug"] for a in c.get("/api/v1/assets", params=site).json()["items"]] == [
            "cnc-01-crud",
            "pump-0",
            "pump-1",
            "pump-2",
            "pump-3",
        ]
        dup = c.post("/api/v1/assets", json={"site_id": ids["site"], "name": "CNC 01-crud"})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
        r = c.patch(f"/api/v1/signals/{ids['signal']}", json={"high_limit": 90.0})
        assert r.json()["high_limit"] == 90.0 and r.json()["unit"] == "C"
        assert c.get("/api/v1/signals", params={"asset_id": ids["asset"]}).json()["total"] == 1
        bad_tz = c.post("/api/v1/sites", json={"name": "Mars", "timezone": "Mars/Olympus"})
        assert bad_tz.status_code == 422 and "time zone" in bad_tz.json()["error"]["message"]
        assert c.delete(f"/api/v1/assets/{ids['asset']}").json() == {"id": ids["asset"], "deleted": True}
        assert c.get(f"/api/v1/signals/{ids['signal']}").status_code == 404  # cascaded


def test_table_upload_reports_rejected_rows_and_makes_a_dataset(hub: Hub) -> None:
    csv = b"time,temp,load\n2024-01-01T00:00:00Z,20.5,1\n2024-01-01T00:00:01Z,oops,2\n" + b"".join(
        f"2024-01-01T00:00:{i:02d}Z,{20 + i},3\n".encode() for i in range(2, 12)
    )
    with hub.client("a_ingest") as c:
        r = c.post(
            "/api/v1/uploads", files={"file": ("line1.csv", csv, "text/csv")}, data={"dataset_name": "line1"}
        )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rows_read"] == 12 and body["rows_rejected"] == 1
    assert body["rejects"] == [
        {"file": "line1.csv", "row": 3, "field": "temp", "problem": "not a number: 'oops'"}
    ]
    assert body["dataset"]["name"] == "line1" and body["dataset"]["spec"]["source"] == "upload"
    buf = io.BytesIO()
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(buf)
    with hub.client("a_engineer") as c:
        r = c.post(
            "/api/v1/uploads",
            files={"file": ("x.parquet", buf.getvalue(), "application/octet-stream")},
            data={"dataset_name": "line1"},
        )
        assert r.json()["dataset"]["version"] == 2
        r = c.post(
            "/api/v1/datasets",
            json={"name": "copy", "spec": {"source": "upload", "blob_sha256": body["sha256"]}},
        )
        assert r.status_code == 201
        broken = c.post("/api/v1/uploads", files={"file": ("bad.parquet", b"not parquet", "application/x")})
        assert broken.status_code == 422
        assert broken.json()["error"]["details"][0]["file"] == "bad.parquet"
        unknown = c.post("/api/v1/uploads", files={"file": ("notes.docx", b"hello", "application/x")})
        assert unknown.status_code == 415


def test_image_upload_and_size_limit(hub: Hub) -> None:
    png = io.BytesIO()
    Image.new("L", (8, 8), 128).save(png, format="PNG")
    with hub.client("a_engineer") as c:
        r = c.post("/api/v1/uploads", files={"file": ("part.png", png.getvalue(), "image/png")})
        assert r.status_code == 201 and r.json()["kind"] == "image"
        fake = c.post("/api/v1/uploads", files={"file": ("part.png", b"\x89PNG garbage", "image/png")})
        assert fake.status_code == 422 and "not a readable image" in fake.json()["error"]["message"]
        big = c.post("/api/v1/uploads", files={"file": ("big.csv", b"a\n" + b"1\n" * 100_000, "text/csv")})
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "payload_too_large"
        big_json = c.post(
            "/api/v1/sites",
            content=b"{" + b" " * (6 * 1024 * 1024) + b"}",
            headers={"content-type": "application/json"},
        )
        assert big_json.status_code == 413


def test_users_keys_and_roles(hub: Hub) -> None:
    with hub.client("a_admin") as c:
        r = c.post(
            "/api/v1/users", json={"email": "Kim@Acme.example", "password": PASSWORD, "role": "engineer"}
        )
        assert r.status_code == 201 and r.json()["email"] == "kim@acme.example"
        uid = r.json()["id"]
        assert (
            c.post("/api/v1/users", json={"email": "kim@acme.example", "password": PASSWORD}).status_code
            == 409
        )
        assert c.post("/api/v1/users", json={"email": "x@y.example", "password": "short"}).status_code == 422
        assert c.patch(f"/api/v1/users/{uid}", json={"role": "viewer"}).json()["role"] == "viewer"
        me = c.get("/api/v1/auth/me").json()
        assert c.patch(f"/api/v1/users/{me['user']['id']}", json={"role": "viewer"}).status_code == 409
    with hub.client() as c:
        login = c.post("/api/v1/auth/login", json={"email": "kim@acme.example", "password": PASSWORD})
        assert login.status_code == 200 and login.json()["role"] == "viewer"
    with hub.client("a_admin") as c:
        assert c.patch(f"/api/v1/users/{uid}", json={"is_active": False}).status_code == 200
    with hub.client() as c:
        assert (
            c.post("/api/v1/auth/login", json={"email": "kim@acme.example", "password": PASSWORD}).status_code
            == 401
        )
    with hub.client("a_engineer") as c:
        assert c.get("/api/v1/users").status_code == 403  # administrators only
        assert [k["name"] for k in c.get("/api/v1/keys").json()["items"]] == ["a_engineer key", "gateway"]


def test_operator_registers_companies_and_sets_quotas(hub: Hub) -> None:
    with hub.client("operator") as ops:
        r = ops.post(
            "/api/v1/platform/orgs",
            json={
                "name": "Gamma Tools",
                "slug": "gamma",
                "admin_email": "boss@gamma.example",
                "admin_password": PASSWORD,
                "compute_class": "gpu",
            },
        )
        assert r.status_code == 201, r.text
        org = r.json()
        assert (
            ops.patch(f"/api/v1/platform/orgs/{org['id']}/quota", json={"max_concurrent_jobs": 4}).json()[
                "max_concurrent_jobs"
            ]
            == 4
        )
        assert {o["slug"] for o in ops.get("/api/v1/platform/orgs").json()} >= {"acme", "beta", "gamma"}
        usage = {u["slug"]: u for u in ops.get("/api/v1/platform/usage").json()}
        assert usage["acme"]["users"] >= 3 and usage["gamma"]["users"] == 1
        assert ops.patch("/api/v1/platform/orgs/org_missing/quota", json={}).status_code == 404
    with hub.client() as c:
        me = c.post("/api/v1/auth/login", json={"email": "boss@gamma.example", "password": PASSWORD}).json()
        assert me["org"]["slug"] == "gamma" and me["role"] == "admin" and me["org"]["compute_class"] == "gpu"


def test_alerts_list_acknowledge_and_stream(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-alerts")
    with hub.db.session() as s:
        scope = OrgScope(s, org_by_slug(s, "acme").id)
        for sev in ("warning", "critical"):
            scope.add(AlertRow(asset_id=ids["asset"], ts=utcnow(), severity=sev, title=f"{sev} on CNC 01"))
    with hub.client("a_viewer") as c:
        page = c.get("/api/v1/alerts", params={"severity": "critical", "asset_id": ids["asset"]}).json()
        assert page["total"] == 1 and page["items"][0]["title"] == "critical on CNC 01"
        with c.stream(
            "GET",
            "/api/v1/alerts/stream",
            params={"since": "2000-01-01T00:00:00Z", "timeout": 0.3, "poll": 0.1},
        ) as stream:
            data = [line for line in stream.iter_lines() if line.startswith("event: alert")]
        assert len(data) == 2
        alert_id = page["items"][0]["id"]
        assert c.post(f"/api/v1/alerts/{alert_id}/ack").status_code == 403  # viewers read only
    with hub.client("a_engineer") as c:
        acked = c.post(f"/api/v1/alerts/{alert_id}/ack").json()
        assert acked["acknowledged_by"] == hub.users["a_engineer"] and acked["acknowledged_at"]
        open_alerts = c.get("/api/v1/alerts", params={"acknowledged": False, "asset_id": ids["asset"]}).json()
        assert open_alerts["total"] == 1


def test_deployments(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-dep")
        r = c.post("/api/v1/deployments", json={"model_version_id": "mv_missing", "asset_id": ids["asset"]})
        assert r.status_code == 404
        assert c.get("/api/v1/deployments").json()["total"] == 0


def test_readings_without_a_time_series_store_or_with_one(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-readings")
        r = c.get(f"/api/v1/assets/{ids['asset']}/readings")
        assert r.status_code == 200, r.text
        assert [s["signal"] for s in r.json()["series"]] == ["spindle_temp"]
        bad = c.get(f"/api/v1/assets/{ids['asset']}/readings", params={"interval": "5 parsecs"})
        assert bad.status_code == 422


def test_upload_onto_an_asset_stores_good_readings_once_and_lists_bad_rows(hub: Hub) -> None:
    csv = b"when;temp;load\n" + b"".join(
        f"2024-01-01 09:00:{i:02d};{'hot' if i == 3 else 20 + i};{i}\n".encode() for i in range(10)
    )
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-upload")
        slug = c.get(f"/api/v1/assets/{ids['asset']}").json()["slug"]
        form = {"asset": slug, "time_column": "when", "timezone": "Asia/Seoul", "signals": "temp"}
        r = c.post("/api/v1/uploads", files={"file": ("cnc.csv", csv, "text/csv")}, data=form)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["rows_read"] == 10 and body["rows_rejected"] == 1
        assert body["points_written"] == 9  # only the chosen column; the bad cell is not stored
        assert body["rejects"][0]["file"] == "cnc.csv" and body["rejects"][0]["row"] == 5
        assert body["rejects"][0]["field"] == "temp" and "hot" in body["rejects"][0]["problem"]
        again = c.post("/api/v1/uploads", files={"file": ("cnc.csv", csv, "text/csv")}, data=form)
        assert again.json()["points_written"] == 0  # idempotent: nothing stored twice
        series = c.get(
            f"/api/v1/assets/{ids['asset']}/readings",
            params={"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T01:00:00Z", "signals": "temp"},
        ).json()["series"]
        temp = next(s for s in series if s["signal"] == "temp")
        assert len(temp["values"]) == 9
        assert temp["times"][0].startswith("2024-01-01T00:00:00")  # 09:00 Seoul time is 00:00 UTC
    with hub.client("b_admin") as c:  # another company cannot write onto acme's machine
        r = c.post("/api/v1/uploads", files={"file": ("cnc.csv", csv, "text/csv")}, data=form)
        assert r.status_code == 404

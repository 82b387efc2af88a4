"""Tenant isolation, walked over EVERY route of the app (new routes are covered automatically).

For each route under /api/v1, with the ids of company A filled into the path, query and body:
* with no credentials it answers 401;
* with company B's administrator it answers 404 wherever an A id is involved (not 403: B must
  not even learn that the id exists), lists show none of A's rows, and A's data is unchanged;
* with A's viewer, every write answers 403; with A's ingest-only gateway key, every route that is
  neither a read of nothing nor ingestion answers 403.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from _api_helpers import Hub, make_hub, seed_org
from axhub.api.main import iter_routes
from axhub.registry.store import ModelRegistry
from axhub.store.accounts_repo import share_code_of
from axhub.store.blobs import BlobStore
from axhub.store.models import AlertRow, ModelVersionRow
from axhub.store.platform import org_by_slug
from axhub.store.scoped import OrgScope

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Routes anyone may call: the health probe and signing in itself.
PUBLIC = {"get_health", "login"}
# Writes a viewer may make: signing out of their own session.
VIEWER_MAY = {"logout", "change_password"}
# Routes a gateway's ingest-only key may use.
INGEST_MAY = {
    "write_readings",
    "create_upload",
    "preview_upload",
    "repreview_upload",
    "ingest_upload",
    "logout",
    "record_process_batches",
    "upload_process_batches",
}
# Operator-only routes answer 403 to every company user, whatever the ids (they are not tenant data).
OPERATOR_ONLY_PREFIX = "/api/v1/platform/"
# Only a signed-in approver may approve a setpoint write: every key gets 403, whatever the ids.
SESSION_ONLY = {"approve_setpoints", "reject_setpoints", "rollback_setpoints"}
# Routes that take a file (multipart) rather than JSON.
FILE_ROUTES = {"create_upload", "preview_upload", "upload_process_batches"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    home = tmp_path_factory.mktemp("iso")
    hub = make_hub(home, f"sqlite:///{home / 'meta.db'}")
    return hub


@pytest.fixture(scope="module")
def a_ids(hub: Hub) -> dict[str, str]:
    """Every kind of record in company A, and the names that must never reach company B."""
    from axhub.ml.base import Estimator

    with hub.client("a_admin") as c:
        ids = seed_org(c)
        up = c.post(
            "/api/v1/uploads",
            files={"file": ("acme-secret.csv", b"a,b\n1,2\n3,4\n", "text/csv")},
            data={"dataset_name": "acme-table"},
        )
        assert up.status_code == 201, up.text
        ids["upload_sha"] = up.json()["sha256"]
        cls = Estimator.lookup("anomaly", "mspc")
        example = cls.example_data(0)
        model = cls(**cls.example_params()).fit(example.train)
        bundle = model.save(hub.settings.home / "bundle", make_zip=True)
        with hub.db.session() as s:
            org = org_by_slug(s, "acme")
            scope = OrgScope(s, org.id)
            mv = ModelRegistry(scope, BlobStore(hub.settings.blob_root)).register(bundle, name="acme-model")
            ids["version"] = mv.id
            alert = scope.add(AlertRow(asset_id=ids["asset"], ts=mv.created_at, title="acme spindle hot"))
            ids["alert"] = alert.id
            ids["org"] = org.id
        with hub.db.session() as s:
            platform_code = share_code_of(s, org_by_slug(s, "platform"))
        r = c.post(f"/api/v1/models/{ids['version']}/shares", json={"share_code": platform_code})
        assert r.status_code == 201, r.text
        ids["share"] = r.json()["id"]
        r = c.post("/api/v1/deployments", json={"model_version_id": ids["version"], "asset_id": ids["asset"]})
        assert r.status_code == 201, r.text
        ids["deployment"] = r.json()["id"]
        r = c.post(
            f"/api/v1/sites/{ids['site']}/planned-downtime",
            json={
                "start": "2026-03-02T08:00:00+09:00",
                "end": "2026-03-02T10:00:00+09:00",
                "reason": "acme PM",
            },
        )
        assert r.status_code == 201, r.text
        ids["planned_downtime"] = r.json()["id"]
        keys = c.get("/api/v1/keys").json()["items"]
        ids["key"] = next(k["id"] for k in keys if k["name"] == "a_viewer key")
        event = c.post(
            f"/api/v1/assets/{ids['asset']}/events",
            json={"start": "2024-01-01T00:00:00Z", "title": "acme-secret maintenance"},
        )
        assert event.status_code == 201, event.text
        ids["event"] = event.json()["id"]
        rule = c.post("/api/v1/rules", json={"asset_id": ids["asset"], "signal": "spindle_temp", "high": 90})
        assert rule.status_code == 201, rule.text
        ids["rule"] = rule.json()["id"]
        channel = c.post(
            "/api/v1/notifications/channels",
            json={"name": "acme-secret hook", "kind": "webhook", "target": "http://127.0.0.1:9/acme-secret"},
        )
        assert channel.status_code == 201, channel.text
        ids["channel"] = channel.json()["id"]
        edge_token = c.post("/api/v1/edge/tokens", json={"name": "acme-secret gateway", "group": "line-1"})
        assert edge_token.status_code == 201, edge_token.text
        with hub.db.session() as s:
            from axhub.fleet.service import enrol

            ids["edge_device"] = enrol(s, edge_token.json()["token"], None, "test")["device_id"]
    ids["user"] = hub.users["a_viewer"]
    # A process cell and a recommendation awaiting approval (no machine needed to store them).
    from axhub.store.models import ProcessCellRow, ProcessRecommendationRow

    with hub.db.session() as s:
        scope = OrgScope(s, ids["org"])
        cell = scope.add(ProcessCellRow(name="acme-secret cell", limits={}, target={}))
        rec = scope.add(
            ProcessRecommendationRow(cell_id=cell.id, settings={"feed": 0.1}, current={"feed": 0.1})
        )
        ids["process_cell"], ids["process_rec"] = cell.id, rec.id
    # A federated collaboration company A leads.
    from axhub.federated import collab

    with hub.db.session() as s:
        row = collab.create(s, ids["org"], "acme-secret collaboration", "rul_mlp", {"signals": ["s1"]})
        ids["collaboration"] = row.id
    return ids


PATH_IDS = {
    "site_id": "site",
    "asset_id": "asset",
    "signal_id": "signal",
    "dataset_id": "dataset",
    "job_id": "job",
    "version_id": "version",
    "deployment_id": "deployment",
    "alert_id": "alert",
    "user_id": "user",
    "key_id": "key",
    "share_id": "share",
    "org_id": "org",
    "planned_downtime_id": "planned_downtime",
    "sha256": "upload_sha",
    "event_id": "event",
    "rule_id": "rule",
    "channel_id": "channel",
    "cell_id": "process_cell",
    "rec_id": "process_rec",
    "collaboration_id": "collaboration",
    "device_id": "edge_device",
}


def _bodies(ids: dict[str, str]) -> dict[str, Any]:
    """A valid request body per operation, pointing at company A's records where it can."""
    return {
        "login": {"email": "a_admin@acme.example", "password": "wrong-password"},
        "create_org": {"name": "X", "admin_email": "x@x.example", "admin_password": "0123456789ab"},
        "update_org_quota": {"max_concurrent_jobs": 9},
        "set_org_compute_quota": {"cpu_hours_per_month": 10},
        "create_user": {"email": "new@b.example", "password": "0123456789ab"},
        "update_user": {"role": "admin"},
        "end_user_sessions": None,
        "change_password": {"current_password": "wrong-password", "new_password": "a fresh long passphrase"},
        "create_key": {"name": "k", "scopes": ["read"]},
        "create_site": {"name": "Other site"},
        "update_site": {"name": "renamed"},
        "create_asset": {"site_id": ids["site"], "name": "intruder"},
        "update_asset": {"name": "renamed"},
        "create_signal": {"asset_id": ids["asset"], "name": "intruder"},
        "update_signal": {"unit": "K"},
        "write_readings": {"readings": [{"time": "2024-01-01T00:00:00Z", "signal": "x", "value": 1.0}]},
        "create_dataset": {"name": "steal", "spec": {"source": "upload", "blob_sha256": ids["upload_sha"]}},
        "submit_job": {"kind": "train", "estimator": "anomaly/mspc", "dataset_id": ids["dataset"]},
        "set_model_stage": {"stage": "production"},
        "share_model": {"share_code": "sh_not-a-company"},
        "choose_operating_point": {"target_false_alarm": 0.05},
        "create_deployment": {"model_version_id": ids["version"], "asset_id": ids["asset"]},
        "update_deployment": {"active": False},
        "set_production_config": {"state_source": "tag", "state_signal": "spindle_temp"},
        "set_shifts": {"shifts": [{"name": "A", "start": "06:00", "end": "14:00"}]},
        "create_planned_downtime": {"start": "2026-03-03T08:00:00+09:00", "end": "2026-03-03T09:00:00+09:00"},
        "post_counts": {"counts": [{"ts": "2026-03-03T08:00:00+09:00", "good": 5}]},
        "create_downtime_reason": {
            "start": "2026-03-03T08:00:00+09:00",
            "end": "2026-03-03T08:10:00+09:00",
            "reason": "breakdown",
        },
        "give_complex_consent": {"named": False},
        "withdraw_complex_consent": None,
        "repreview_upload": {"asset": ids["asset"]},
        "ingest_upload": {"asset": ids["asset"]},
        "put_file_mapping": {"mapping": {"ignore": ["x"]}},
        "create_window_dataset": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
        "train_on_period": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
        "backtest_asset": {"model_version_id": ids["version"]},
        "deploy_model": {"asset_id": ids["asset"]},
        "create_event": {"start": "2024-01-01T00:00:00Z", "title": "intruder"},
        "resolve_alert": {"note": "intruder"},
        "add_alert_note": {"text": "intruder"},
        "create_rule": {"asset_id": ids["asset"], "signal": "spindle_temp", "high": 1.0},
        "create_channel": {"name": "b hook", "kind": "webhook", "target": "http://127.0.0.1:9/b"},
        "test_channel": None,
        "update_event": {"title": "renamed"},
        "update_rule": {"high": 1.0},
        "update_channel": {"target": "http://127.0.0.1:9/b"},
        "create_process_cell": {
            "name": "b cell",
            "limits": {"bounds": {"feed": [0.0, 1.0]}},
            "target": {"protocol": "modbus", "port": 9, "registers": {"feed": 0}},
        },
        "record_process_batches": {
            "batches": [{"batch_key": "x", "settings": {"feed": 0.5}, "n_parts": 1, "n_passed": 1}]
        },
        "propose_setpoints": {},
        "dry_run_setpoints": None,
        "approve_setpoints": None,
        "reject_setpoints": {"reason": "intruder"},
        "rollback_setpoints": None,
        "upload_process_batches": None,
        "create_collaboration": {"name": "b collaboration", "signals": ["s1"]},
        "invite_to_collaboration": {"org_id": ids["org"]},
        "accept_collaboration": {"asset": ids["asset"], "signals": {"s1": "spindle_temp"}},
        "set_site_policy": {"min_local_samples": 1},
        "leave_collaboration": None,
        "consent_to_share_joint_model": None,
        "start_federated_run": {"rounds": 2},
        "create_edge_token": {"name": "intruder"},
        "revoke_edge_device": None,
        "set_edge_device_config": {"config": {"score_assets": ["intruder"]}},
        "start_edge_rollout": {"group": "line-1", "model_version_id": ids["version"]},
    }


def _routes(hub: Hub) -> list[tuple[str, str, str]]:
    out = []
    for route in iter_routes(hub.app):
        if route.path.startswith("/api/v1"):
            for method in sorted(route.methods):
                out.append((route.operation_id, method, route.path))
    # Cross-check against the OpenAPI document, so no mounted operation escapes the walk.
    documented = {
        (op["operationId"], m.upper(), p)
        for p, item in hub.app.openapi()["paths"].items()
        for m, op in item.items()
    }
    assert documented <= set(out), documented - set(out)
    assert len(out) > 40
    return out


def _call(hub: Hub, who: str | None, op: str, method: str, path: str, ids: dict[str, str]) -> Any:
    url = re.sub(r"\{(\w+)\}", lambda m: ids[PATH_IDS[m.group(1)]], path)
    params = {
        "ids": ids["version"],
        "asset_id": ids["asset"],
        "since": "2000-01-01T00:00:00Z",
        "timeout": 0,
        "poll": 0.05,
    }
    with hub.client(who) as client:
        if op in FILE_ROUTES:
            return client.post(url, files={"file": ("x.csv", b"a\n1\n", "text/csv")}, params=params)
        body = _bodies(ids).get(op)
        return client.request(method, url, params=params, json=body if method in UNSAFE else None)


def _secrets(ids: dict[str, str]) -> list[str]:
    values = [v for k, v in ids.items() if k != "org"]
    return [
        *values,
        "CNC 01",
        "acme spindle hot",
        "acme PM",
        "acme-secret",
        "acme-model",
        "acme-table",
        "@acme.example",
    ]


def test_every_route_is_covered(hub: Hub, a_ids: dict[str, str]) -> None:
    bodies = _bodies(a_ids)
    for op, method, path in _routes(hub):
        if method in UNSAFE and op not in {
            "logout",
            "cancel_job",
            "revoke_key",
            "create_upload",
            "preview_upload",
        }:
            has_body = not path.endswith(("}", "/ack")) or op.startswith("update") or op in bodies
            if op.startswith(("delete", "unshare")) or op in {"acknowledge_alert"}:
                continue
            assert op in bodies or not has_body, f"add a sample body for {op} ({method} {path})"
        for name in re.findall(r"\{(\w+)\}", path):
            assert name in PATH_IDS, f"add company A's id for path parameter {name} ({path})"


def test_without_credentials_every_route_answers_401(hub: Hub, a_ids: dict[str, str]) -> None:
    for op, method, path in _routes(hub):
        if op in PUBLIC:
            continue
        r = _call(hub, None, op, method, path, a_ids)
        assert r.status_code == 401, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json()["error"]["code"] == "unauthorized"


def test_another_company_sees_nothing_of_a(hub: Hub, a_ids: dict[str, str]) -> None:
    secrets = _secrets(a_ids)
    for op, method, path in _routes(hub):
        if op in PUBLIC:
            continue
        r = _call(hub, "b_admin", op, method, path, a_ids)
        where = f"{method} {path} ({op}): {r.status_code} {r.text[:300]}"
        if path.startswith(OPERATOR_ONLY_PREFIX) or op in SESSION_ONLY:
            assert r.status_code == 403, where
            continue
        references_a = "{" in path or op in {
            "create_asset",
            "create_signal",
            "create_dataset",
            "submit_job",
            "create_deployment",
            "compare_models",
            "create_rule",
        }
        if references_a:
            assert r.status_code == 404, where
            assert r.json()["error"]["code"] == "not_found", where
        else:
            assert r.status_code < 500, where
        text = r.text
        requested = {a_ids[PATH_IDS[name]] for name in re.findall(r"\{(\w+)\}", path)}
        requested |= {a_ids["version"], a_ids["asset"], a_ids["site"], a_ids["dataset"]}
        for secret in secrets:
            if secret in requested and r.status_code == 404:
                continue  # the 404 message may echo the id B itself sent
            assert secret not in text, f"{where} leaks {secret!r}"


def test_company_a_data_is_unchanged_after_the_walk(hub: Hub, a_ids: dict[str, str]) -> None:
    test_another_company_sees_nothing_of_a(hub, a_ids)
    with hub.client("a_admin") as c:
        assert c.get(f"/api/v1/sites/{a_ids['site']}").json()["name"] == "Plant 1"
        assert c.get(f"/api/v1/assets/{a_ids['asset']}").json()["name"] == "CNC 01"
        assert c.get(f"/api/v1/signals/{a_ids['signal']}").json()["unit"] == "C"
        assert c.get(f"/api/v1/models/{a_ids['version']}").json()["stage"] == "candidate"
        assert c.get(f"/api/v1/jobs/{a_ids['job']}").json()["cancel_requested"] is False
        assert c.get(f"/api/v1/deployments/{a_ids['deployment']}").json()["active"] is True
        assert c.get(f"/api/v1/users/{a_ids['user']}").json()["role"] == "viewer"
        assert c.get(f"/api/v1/keys/{a_ids['key']}").status_code in (404, 405)  # keys have no GET by id
        keys = {k["id"]: k for k in c.get("/api/v1/keys").json()["items"]}
        assert keys[a_ids["key"]]["revoked_at"] is None
        assert [s["id"] for s in c.get(f"/api/v1/models/{a_ids['version']}/shares").json()] == [
            a_ids["share"]
        ]
        assert c.get("/api/v1/org").json()["max_concurrent_jobs"] == 2
    with hub.db.session() as s:
        assert s.get(ModelVersionRow, a_ids["version"]) is not None


def test_viewer_cannot_write_anything(hub: Hub, a_ids: dict[str, str]) -> None:
    for op, method, path in _routes(hub):
        if method not in UNSAFE or op in PUBLIC | VIEWER_MAY:
            continue
        r = _call(hub, "a_viewer", op, method, path, a_ids)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json()["error"]["code"] == "forbidden"


def test_ingest_only_key_can_only_ingest(hub: Hub, a_ids: dict[str, str]) -> None:
    for op, method, path in _routes(hub):
        if op in PUBLIC | INGEST_MAY:
            continue
        r = _call(hub, "a_ingest", op, method, path, a_ids)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text}"
    r = _call(hub, "a_ingest", "create_upload", "POST", "/api/v1/uploads", a_ids)
    assert r.status_code == 201, r.text


def test_shared_model_is_visible_only_to_the_grantee(hub: Hub, a_ids: dict[str, str]) -> None:
    with hub.client("operator") as ops:  # the platform org was granted the model above
        shared = ops.get("/api/v1/models/shared").json()
        assert [m["id"] for m in shared] == [a_ids["version"]]
        assert shared[0]["shared"] is True and shared[0]["created_by"] is None
        assert ops.get(f"/api/v1/models/{a_ids['version']}/bundle").status_code == 200
        # ...but the grant is for the model, not the rest of company A
        assert ops.get(f"/api/v1/datasets/{a_ids['dataset']}").status_code == 404
        assert (
            ops.post(f"/api/v1/models/{a_ids['version']}/stage", json={"stage": "archived"}).status_code
            == 404
        )
    with hub.client("b_admin") as b:
        assert b.get("/api/v1/models/shared").json() == []
        assert b.get(f"/api/v1/models/{a_ids['version']}/bundle").status_code == 404


def test_cookie_session_needs_csrf_header_for_writes(hub: Hub, a_ids: dict[str, str]) -> None:
    with hub.client() as c:
        r = c.post(
            "/api/v1/auth/login",
            json={"email": "a_engineer@acme.example", "password": "correct-horse-battery"},
        )
        assert r.status_code == 200, r.text
        cookie_header = r.headers.get_list("set-cookie")
        session_cookie = next(h for h in cookie_header if h.startswith("axhub_session="))
        assert (
            "HttpOnly" in session_cookie
            and "Secure" in session_cookie
            and "SameSite=strict" in session_cookie
        )
        csrf = r.json()["csrf_token"]
        assert c.get("/api/v1/sites").status_code == 200  # reads need no token
        r = c.post("/api/v1/sites", json={"name": "via cookie"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        r = c.post("/api/v1/sites", json={"name": "via cookie"}, headers={"X-CSRF-Token": "forged"})
        assert r.status_code == 403
        r = c.post("/api/v1/sites", json={"name": "via cookie"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        c.cookies.set("axhub_session", "tampered" + c.cookies.get("axhub_session", ""))
        assert c.get("/api/v1/sites").status_code == 401
    with hub.client() as c:
        r = c.post(
            "/api/v1/auth/login", json={"email": "a_engineer@acme.example", "password": "nope-nope-nope"}
        )
        assert r.status_code == 401 and "set-cookie" not in r.headers


def test_revoked_and_forged_keys_are_refused(hub: Hub, a_ids: dict[str, str]) -> None:
    with hub.client("a_engineer") as c:
        created = c.post("/api/v1/keys", json={"name": "temp", "scopes": ["read"]}).json()
        key = created["key"]
        assert created["prefix"] in key and created["role"] == "engineer"
        # an engineer cannot mint an admin key
        assert (
            c.post("/api/v1/keys", json={"name": "x", "scopes": ["read"], "role": "admin"}).status_code == 403
        )
    with hub.client() as c:
        c.headers["Authorization"] = f"Bearer {key}"
        assert c.get("/api/v1/sites").status_code == 200
        c.headers["Authorization"] = f"Bearer {key[:-2]}xx"
        assert c.get("/api/v1/sites").status_code == 401
    with hub.client("a_engineer") as c:
        assert c.delete(f"/api/v1/keys/{created['id']}").status_code == 200
    hub.app.state.axhub.key_cache.clear()  # revocation is immediate after the short cache
    with hub.client() as c:
        c.headers["Authorization"] = f"Bearer {key}"
        assert c.get("/api/v1/sites").status_code == 401
    with hub.db.session() as s:
        from sqlalchemy import select

        from axhub.store.models import ApiKeyRow

        stored = s.scalars(select(ApiKeyRow.key_hash)).all()
    assert all(key not in h and len(h) == 64 for h in stored)  # only hashes are kept


def test_error_bodies_share_one_format(hub: Hub) -> None:
    with hub.client("a_admin") as c:
        for r in (
            c.get("/api/v1/does-not-exist"),
            c.get("/api/v1/assets", params={"limit": 0}),
            c.post("/api/v1/sites", content=b"{not json", headers={"content-type": "application/json"}),
            c.put("/api/v1/sites"),
        ):
            body = r.json()
            assert set(body) == {"error"}, json.dumps(body)
            assert set(body["error"]) == {"code", "message", "hint", "details"}


def _unused(p: Path) -> None:  # keep Path imported for type checkers of helpers
    del p

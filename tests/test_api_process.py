"""The process routes over HTTP: records by JSON and by file (Korean CP949), a recommendation,
and who may approve: no key (not even an admin's), no engineer; an approver signed in may."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _api_helpers import PASSWORD, Hub, make_hub
from axhub.api import bootstrap
from axhub.sim import process as sp
from axhub.sim.process_cell import ProcessCell

NAMES = list(sp.BOUNDS)


@pytest.fixture(scope="module")
def cell() -> Iterator[ProcessCell]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    c = ProcessCell(seed=6)
    asyncio.run_coroutine_threadsafe(c.start(), loop).result(30)
    c.loop = loop  # type: ignore[attr-defined]
    yield c
    asyncio.run_coroutine_threadsafe(c.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    home = tmp_path_factory.mktemp("api-process")
    hub = make_hub(home, f"sqlite:///{home / 'meta.db'}")
    user = bootstrap.create_user(hub.db, "acme", "boss@acme.example", PASSWORD, "approver")
    hub.users["a_approver"] = user
    hub.keys["a_approver"] = bootstrap.create_key(hub.db, user, "approver key", ["read", "write"])
    return hub


def _setpoints(cell: ProcessCell) -> dict[str, Any]:
    return asyncio.run_coroutine_threadsafe(cell.setpoints(), cell.loop).result(30)  # type: ignore[attr-defined]


def test_records_recommendation_and_approval_rights(hub: Hub, cell: ProcessCell, tmp_path: Path) -> None:
    limits = {"bounds": sp.BOUNDS, "max_step": sp.MAX_STEP, "forbidden": sp.FORBIDDEN, "trust_radius": 0.3}
    target = {"protocol": "opcua", "endpoint": cell.endpoint, "nodes": {n: cell.node_id(n) for n in NAMES}}
    with hub.client("a_engineer") as c:
        r = c.post("/api/v1/process/cells", json={"name": "CNC-07", "limits": limits, "target": target})
        assert r.status_code == 201, r.text
        cell_id = r.json()["id"]
        batches = [
            {"batch_key": f"J{i}", "settings": {**sp.BASELINE, "spindle_speed_rpm": 6700.0 + 150 * i},
             "n_parts": 40, "n_passed": 20 + 2 * i, "lot": "LOT-A"}
            for i in range(4)
        ]  # fmt: skip
        r = c.post(f"/api/v1/process/cells/{cell_id}/batches", json={"batches": batches})
        assert r.json() == {"added": 4}
        csv = (
            "배치,로트,feed_per_tooth_mm,spindle_speed_rpm,clamp_pressure_bar,부품수,합격수\n"
            "F1,LOT-A,0.1,7400,3.9,40,33\n"
        )
        r = c.post(
            f"/api/v1/process/cells/{cell_id}/batches/file",
            files={"file": ("기록.csv", csv.encode("cp949"), "text/csv")},
        )
        assert r.json() == {"added": 1}, r.text
        bad = csv.replace("7400", "빠름")
        r = c.post(
            f"/api/v1/process/cells/{cell_id}/batches/file",
            files={"file": ("기록.csv", bad.encode("cp949"), "text/csv")},
            headers={"Accept-Language": "ko"},
        )
        assert r.status_code == 422 and "2행" in r.text and "/tmp" not in r.text
        r = c.post(f"/api/v1/process/cells/{cell_id}/recommendations", json={"lot": "LOT-A"})
        assert r.status_code == 201, r.text
        rec = r.json()
        assert set(rec["settings"]) == set(NAMES) and rec["status"] == "proposed"
        assert c.post(f"/api/v1/process/recommendations/{rec['id']}/dry-run").json()["violations"] == []
        before = _setpoints(cell)
        # Keys never approve (not even an admin's); an engineer's session cannot either.
        assert c.post(f"/api/v1/process/recommendations/{rec['id']}/approve").status_code == 403
    for who in ("a_admin", "a_approver"):
        with hub.client(who) as c:
            assert c.post(f"/api/v1/process/recommendations/{rec['id']}/approve").status_code == 403
    with hub.client() as c:
        me = c.post(
            "/api/v1/auth/login", json={"email": "a_engineer@acme.example", "password": PASSWORD}
        ).json()
        csrf = {"X-CSRF-Token": me["csrf_token"]}
        r = c.post(f"/api/v1/process/recommendations/{rec['id']}/approve", headers=csrf)
        assert r.status_code == 403
        assert c.post(f"/api/v1/process/recommendations/{rec['id']}/dry-run", headers=csrf).status_code == 200
    assert _setpoints(cell) == before
    with hub.client() as c:
        me = c.post("/api/v1/auth/login", json={"email": "boss@acme.example", "password": PASSWORD}).json()
        headers = {"X-CSRF-Token": me["csrf_token"]}
        r = c.post(f"/api/v1/process/recommendations/{rec['id']}/approve", headers=headers)
        assert r.status_code == 200 and r.json()["ok"], r.text
        now = _setpoints(cell)
        assert all(abs(now[n] - rec["settings"][n]) < 1e-6 * max(1, abs(now[n])) for n in NAMES)
        audit = c.get(f"/api/v1/process/cells/{cell_id}/audit").json()
        assert [a["action"] for a in audit] == ["write", "dry_run", "dry_run"] and audit[0][
            "actor"
        ] == hub.users["a_approver"]
    with hub.client("b_admin") as c:  # another company sees nothing
        assert c.get(f"/api/v1/process/cells/{cell_id}/audit").status_code == 404

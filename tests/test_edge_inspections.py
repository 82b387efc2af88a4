"""Inspection results (a vision bundle's verdicts at the edge) reach the hub exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from _api_helpers import make_hub
from axhub.edge.buffer import RESULTS_KIND, Buffer
from axhub.fleet import service
from axhub.store.models import EventRow
from axhub.store.platform import org_by_slug
from axhub.store.scoped import OrgScope


def test_inspection_results_are_stored_once_even_when_a_batch_is_resent(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}", secure_cookies=False)
    with hub.db.session() as s:
        scope = OrgScope(s, org_by_slug(s, "acme").id)
        token, _row = service.issue_token(scope, "검사기-1", created_by=None)
    with hub.db.session() as s:
        credential = service.enrol(s, token, None, "test")["credential"]

    buffer = Buffer(tmp_path / "agent" / "buffer.db")
    results = [
        {
            "id": "einsp_1",
            "ts": "2026-03-02T09:00:00+09:00",
            "asset": "press-1",
            "file": "부품_001.png",
            "score": 0.91,
            "threshold": 0.5,
            "defect": True,
            "bundle": "vision",
        },
        {
            "id": "einsp_2",
            "ts": "2026-03-02T09:00:01+09:00",
            "asset": "press-1",
            "file": "부품_002.png",
            "score": 0.12,
            "threshold": 0.5,
            "defect": False,
            "bundle": "vision",
        },
    ]
    for r in results:
        buffer.add_event(RESULTS_KIND, r)
    batch = buffer.next_batch()
    assert batch is not None and batch.kind == RESULTS_KIND and batch.rows == 2

    headers = {
        "Authorization": f"Device {credential}",
        "X-Batch-Id": batch.batch_id,
        "X-Batch-Kind": batch.kind,
        "Content-Type": batch.media_type,
    }
    with hub.client() as c:
        first = c.post("/device/v1/sync", content=batch.payload, headers=headers)
        again = c.post("/device/v1/sync", content=batch.payload, headers=headers)  # lost ack: resent
    assert first.status_code == 200, first.text
    assert first.json() == {"batch_id": batch.batch_id, "duplicate": False, "rows": 2}
    assert again.status_code == 200 and again.json()["duplicate"] is True
    buffer.ack(batch)
    assert buffer.next_batch() is None

    with hub.db.session() as s:
        stored = s.scalars(select(EventRow).where(EventRow.kind == "inspection").order_by(EventRow.id)).all()
        assert [e.id for e in stored] == ["einsp_1", "einsp_2"]
        assert stored[0].title == "defect: 부품_001.png" and stored[1].title == "ok: 부품_002.png"
        assert '"score": 0.91' in stored[0].note
    buffer.close()


def test_an_inspection_result_without_a_machine_is_refused_whole(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}", secure_cookies=False)
    with hub.db.session() as s:
        scope = OrgScope(s, org_by_slug(s, "acme").id)
        token, _row = service.issue_token(scope, "cam", created_by=None)
    with hub.db.session() as s:
        credential = service.enrol(s, token, None, "test")["credential"]
    buffer = Buffer(tmp_path / "agent" / "buffer.db")
    buffer.add_event(RESULTS_KIND, {"id": "einsp_9", "ts": "2026-03-02T09:00:00+09:00", "asset": ""})
    batch = buffer.next_batch()
    assert batch is not None
    with hub.client() as c:
        answer = c.post(
            "/device/v1/sync",
            content=batch.payload,
            headers={
                "Authorization": f"Device {credential}",
                "X-Batch-Id": batch.batch_id,
                "X-Batch-Kind": batch.kind,
            },
        )
    assert answer.status_code == 422
    assert "asset" in answer.text and "Traceback" not in answer.text
    with hub.db.session() as s:
        assert s.scalars(select(EventRow).where(EventRow.kind == "inspection")).all() == []
    buffer.close()


def test_a_watched_folder_without_a_valid_machine_id_is_refused_when_configured(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}", secure_cookies=False)
    with hub.db.session() as s:
        token, _row = service.issue_token(OrgScope(s, org_by_slug(s, "acme").id), "cam", created_by=None)
    with hub.db.session() as s:
        device_id = service.enrol(s, token, None, "test")["device_id"]
    with hub.client("a_engineer") as c:
        url = f"/api/v1/edge/devices/{device_id}/config"
        missing = c.put(url, json={"config": {"watch_folder": "camera"}})
        korean = c.put(url, json={"config": {"watch_folder": "camera", "watch_asset": "프레스-1"}})
        good = c.put(url, json={"config": {"watch_folder": "camera", "watch_asset": "press-1"}})
    assert missing.status_code == 422 and "watch_asset" in missing.text, missing.text
    assert korean.status_code == 422 and "not an asset id" in korean.text, korean.text
    assert "Traceback" not in missing.text + korean.text
    assert good.status_code == 200, good.text


def test_the_fleet_counts_each_devices_inspections_of_the_last_24_hours(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}", secure_cookies=False)
    credentials = {}
    for slug, name in [("acme", "검사기-1"), ("acme", "검사기-2"), ("beta", "검사기-b")]:
        with hub.db.session() as s:
            token, _row = service.issue_token(OrgScope(s, org_by_slug(s, slug).id), name, created_by=None)
        with hub.db.session() as s:
            credentials[name] = service.enrol(s, token, None, "test")["credential"]

    now = datetime.now(UTC)

    def result(i: int, defect: bool | None, age: timedelta) -> dict[str, Any]:
        return {
            "id": f"einsp_{i}",
            "ts": (now - age).isoformat(),
            "asset": "press-1",
            "file": f"부품_{i:03d}.png",
            "defect": defect,
            "bundle": "vision",
        }

    recent, old = timedelta(hours=1), timedelta(hours=25)
    sent = {
        # 4 recent (2 defects, 1 unreadable), 1 defect from yesterday: outside the window
        "검사기-1": [
            result(1, True, recent),
            result(2, False, recent),
            result(3, True, recent),
            result(4, None, recent),
            result(5, True, old),
        ],
        "검사기-2": [],
        # another company's device: counted for it, never for acme's
        "검사기-b": [result(6, True, recent), result(7, True, recent)],
    }
    with hub.client() as c:
        for name, results in sent.items():
            if not results:
                continue
            buffer = Buffer(tmp_path / name / "buffer.db")
            for r in results:
                buffer.add_event(RESULTS_KIND, r)
            batch = buffer.next_batch()
            assert batch is not None
            headers = {
                "Authorization": f"Device {credentials[name]}",
                "X-Batch-Id": batch.batch_id,
                "X-Batch-Kind": batch.kind,
                "Content-Type": batch.media_type,
            }
            for _ in range(2):  # a resent batch counts once
                assert c.post("/device/v1/sync", content=batch.payload, headers=headers).status_code == 200
            buffer.close()

    def counts(who: str) -> dict[str, tuple[int, int]]:
        with hub.client(who) as c:
            devices = c.get("/api/v1/edge/devices").json()
        return {d["name"]: (d["inspected_24h"], d["flagged_24h"], d["unreadable_24h"]) for d in devices}

    # the unreadable image got no verdict: counted apart, never as an inspected "ok" part
    assert counts("a_viewer") == {"검사기-1": (3, 2, 1), "검사기-2": (0, 0, 0)}
    assert counts("b_admin") == {"검사기-b": (2, 2, 0)}
    with hub.db.session() as s:
        titles = {e.id: e.title for e in s.scalars(select(EventRow).where(EventRow.kind == "inspection"))}
    assert titles["einsp_4"] == "unreadable: 부품_004.png"
    assert titles["einsp_2"] == "ok: 부품_002.png"
    assert titles["einsp_1"] == "defect: 부품_001.png"

"""A factory's own files through the API: preview (Korean), ingest onto a machine, the saved
mapping offered again, train on a normal period, backtest beside marked events, deploy, and a
new day with a fault raising an alert that explains itself in engineering units."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from _api_helpers import Hub, make_hub
from _korean_files import readings, write_cp949_csv, write_xlsx

SEOUL = ZoneInfo("Asia/Seoul")
DAY1 = datetime(2026, 3, 2, 0, 0)
FAULT_MINUTE = 600  # 10:00 local on the faulty days


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    home = tmp_path_factory.mktemp("owndata")
    yield make_hub(home, f"sqlite:///{home / 'meta.db'}", executor="local")


def _wait(c: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in {"succeeded", "failed", "cancelled"}:
            assert job["state"] == "succeeded", job
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def _upload(c: TestClient, path: Path, asset: str | None = None, lang: str = "ko") -> dict[str, Any]:
    data = {"asset": asset} if asset else {}
    r = c.post(
        f"/api/v1/uploads/preview?lang={lang}",
        files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
        data=data,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_files_to_an_explained_alert(hub: Hub, tmp_path: Path) -> None:
    with hub.client("a_engineer") as c:
        site = c.post("/api/v1/sites", json={"name": "창원 1공장"}).json()
        assert site["timezone"] == "Asia/Seoul"  # the company's zone
        asset = c.post("/api/v1/assets", json={"site_id": site["id"], "name": "프레스 1", "slug": "press-01"})
        assert asset.status_code == 201, asset.text
        asset_id = asset.json()["id"]

        # Day 1 (normal) as CP949 CSV with Korean headers, decimal commas and 오전/오후.
        day1 = write_cp949_csv(tmp_path / "1일차.csv", readings(DAY1, 24 * 60, seed=1))
        preview = _upload(c, day1, asset_id)
        assert preview["settings"]["encoding"] == "cp949" and preview["settings"]["decimal"] == ","
        assert preview["settings"]["timezone"] == "Asia/Seoul" and preview["mapping_source"] == "detected"
        assert {c["name"]: c["role"] for c in preview["columns"]} == {
            "일시": "time",
            "진동": "signal",
            "온도": "signal",
            "비고": "ignore",
        }
        assert preview["rows"][0]["time"] == "2026-03-02T00:00:00+09:00"
        assert preview["counts"]["rows_read"] == 1440 and preview["counts"]["points"] == 2880
        assert preview["refused"] is None
        # Edit a setting and preview again: a wrong encoding is refused as a whole, in Korean.
        mapping = dict(preview["mapping"], encoding="utf-8")
        again = c.post(
            f"/api/v1/uploads/{preview['sha256']}/preview?lang=ko",
            json={"asset": asset_id, "mapping": mapping},
        ).json()
        assert again["refused"]["message"].startswith("파일 전체를 받을 수 없어")
        assert "1일차.csv" in again["refused"]["message"] and "/tmp" not in again["refused"]["message"]
        done = c.post(f"/api/v1/uploads/{preview['sha256']}/ingest", json={"asset": asset_id}).json()
        assert done["points_written"] == 2880 and done["signals"] == ["온도", "진동"]

        # The same refusal on ingest is a 422 in the user's language.
        bad = c.post(
            f"/api/v1/uploads/{preview['sha256']}/ingest",
            json={"asset": asset_id, "mapping": mapping},
            headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"},
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "file_refused"
        assert (
            bad.json()["error"]["message"].startswith("파일 전체를")
            and bad.json()["error"]["details"][0]["file"] == "1일차.csv"
        )

        # Day 2 as .xlsx, with a fault at 10:00: the machine's saved mapping is offered.
        day2 = write_xlsx(
            tmp_path / "2일차.xlsx",
            readings(DAY1 + timedelta(days=1), 24 * 60, fault_at=FAULT_MINUTE, seed=2),
        )
        preview2 = _upload(c, day2, asset_id)
        assert preview2["mapping_source"] == "saved" and preview2["settings"]["kind"] == "xlsx"
        assert c.get(f"/api/v1/assets/{asset_id}/file-mapping").json()["mapping"]["ignore"] == ["비고"]
        c.post(f"/api/v1/uploads/{preview2['sha256']}/ingest", json={"asset": asset_id})

        # A maintenance log entry, then train on day 1 and backtest both days.
        fault_local = DAY1 + timedelta(days=1, minutes=FAULT_MINUTE)
        event = c.post(
            f"/api/v1/assets/{asset_id}/events",
            json={
                "start": (fault_local + timedelta(minutes=40)).replace(tzinfo=SEOUL).isoformat(),
                "kind": "maintenance",
                "title": "베어링 교체",
            },
        )
        assert event.status_code == 201, event.text
        train = c.post(
            f"/api/v1/assets/{asset_id}/train",
            json={
                "start": DAY1.replace(tzinfo=SEOUL).isoformat(),
                "end": (DAY1 + timedelta(days=1)).replace(tzinfo=SEOUL).isoformat(),
                "interval": "60s",
            },
        )
        assert train.status_code == 201, train.text
        version_id = _wait(c, train.json()["job"]["id"])["result"]["model_version_id"]
        model = c.get(f"/api/v1/models/{version_id}").json()
        assert model["params"]["interval"] == "60s" and model["params"]["normal_states"]

        bt = c.post(f"/api/v1/assets/{asset_id}/backtests", json={"model_version_id": version_id})
        assert bt.status_code == 201, bt.text
        result = _wait(c, bt.json()["id"])["result"]
        assert result["threshold"] > 0 and len(result["scores"]) > 100, str(
            {k: v for k, v in result.items() if k != "scores"}
        )
        fired = [
            a
            for a in result["alerts"]
            if datetime.fromisoformat(a["start"]).astimezone(SEOUL).date() == fault_local.date()
        ]
        assert fired, result["alerts"]
        assert abs(
            datetime.fromisoformat(fired[0]["start"]).astimezone(SEOUL).replace(tzinfo=None) - fault_local
        ) <= timedelta(minutes=10)
        assert fired[0]["explanation"][0]["signal"] == "진동"
        assert [e["title"] for e in result["events"]] == ["베어링 교체"]
        # Day 1 (the training period) raises next to nothing: at most one stray alert.
        assert len(result["alerts"]) - len(fired) <= 1

        # Deploy in one call, then a new day with a fault arrives as a file.
        dep = c.post(f"/api/v1/models/{version_id}/deploy", json={"asset_id": asset_id})
        assert dep.status_code == 201, dep.text
        day3 = write_cp949_csv(
            tmp_path / "3일차.csv", readings(DAY1 + timedelta(days=2), 24 * 60, fault_at=FAULT_MINUTE, seed=3)
        )
        preview3 = _upload(c, day3, asset_id)
        new = c.post(f"/api/v1/uploads/{preview3['sha256']}/ingest", json={"asset": asset_id}).json()
        assert new["alerts"], new
        fault3 = DAY1 + timedelta(days=2, minutes=FAULT_MINUTE)
        stored = [c.get(f"/api/v1/alerts/{a}").json() for a in new["alerts"]]

        def local(alert: dict[str, Any]) -> datetime:
            return datetime.fromisoformat(alert["ts"]).astimezone(SEOUL).replace(tzinfo=None)

        alert = min(stored, key=lambda a: abs(local(a) - fault3))
        assert abs(local(alert) - fault3) <= timedelta(minutes=10)  # the time of the readings
        assert len(stored) <= 3, [
            (a["ts"], a["severity"], a["count"], a["score"], a["threshold"]) for a in stored
        ]
        top = alert["explanation"][0]
        assert top["signal"] == "진동" and top["value"] > 3.5
        assert top["normal_mean"] == pytest.approx(1.8, abs=0.1) and top["normal_std"] == pytest.approx(
            0.1, abs=0.05
        )
        assert all(abs(e["z"]) >= 1.0 for e in alert["explanation"])
        assert alert["severity"] in {"warning", "critical"}
        # Scoring the same file again stores no second alert.
        again3 = c.post(f"/api/v1/uploads/{preview3['sha256']}/ingest", json={"asset": asset_id}).json()
        assert again3["alerts"] == [] and again3["points_written"] == 0


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_rules_notifications_and_handling_an_alert(hub: Hub, tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails: list[Any] = []

    class Sink(Message):
        def handle_message(self, message: Any) -> None:
            mails.append(message)

    with socket.socket() as probe:  # a free port (others run tests on this machine too)
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    web = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with hub.client("a_admin") as c:
            site = c.post("/api/v1/sites", json={"name": "창원 2공장"}).json()
            asset_id = c.post(
                "/api/v1/assets", json={"site_id": site["id"], "name": "펌프 1", "slug": "pump-01"}
            ).json()["id"]
            rule = c.post(
                "/api/v1/rules",
                json={
                    "asset_id": asset_id,
                    "signal": "압력",
                    "kind": "limit",
                    "high": 5.0,
                    "severity": "critical",
                },
            )
            assert rule.status_code == 201, rule.text
            bad_rule = c.post("/api/v1/rules", json={"asset_id": asset_id, "signal": "압력", "kind": "limit"})
            assert bad_rule.status_code == 422
            hook = c.post(
                "/api/v1/notifications/channels",
                json={
                    "name": "정비팀 웹훅",
                    "kind": "webhook",
                    "target": f"http://127.0.0.1:{web.server_port}/hook",
                    "lang": "ko",
                },
            )
            assert hook.status_code == 201, hook.text
            mail = c.post(
                "/api/v1/notifications/channels",
                json={
                    "name": "e-mail",
                    "kind": "email",
                    "target": "maint@acme.example",
                    "lang": "en",
                    "min_severity": "critical",
                    "smtp": {
                        "host": "127.0.0.1",
                        "port": smtp_port,
                        "password": "s3cret",
                    },
                },
            ).json()
            assert "password" not in mail["settings"]
            assert c.post(f"/api/v1/notifications/channels/{mail['id']}/test").json() == {
                "ok": True,
                "error": None,
            }
            assert len(mails) == 1 and mails[0]["Subject"] == "[AX Hub] test notification"

            csv = "시간,압력\n" + "".join(
                f'2026-03-05 오후 1:{m:02d}:00,"{4.0 + (2.5 if m == 30 else 0):.1f}"\n'.replace(".", ",")
                for m in range(60)
            )
            path = tmp_path / "펌프.csv"
            path.write_bytes(csv.encode("cp949"))
            preview = _upload(c, path, asset_id)
            done = c.post(f"/api/v1/uploads/{preview['sha256']}/ingest", json={"asset": asset_id}).json()
            assert len(done["alerts"]) == 1, done
            alert_id = done["alerts"][0]
            detail = c.get(f"/api/v1/alerts/{alert_id}/explain", headers={"Accept-Language": "ko"}).json()
            assert detail["alert"]["severity"] == "critical" and detail["alert"]["kind"] == "rule"
            assert datetime.fromisoformat(detail["alert"]["ts"]).astimezone(SEOUL).replace(
                tzinfo=None
            ) == datetime(2026, 3, 5, 13, 30)
            assert (
                detail["title"] == "펌프 1: 압력 한계 규칙 위반"
                and detail["asset"]["timezone"] == "Asia/Seoul"
            )
            assert [s["signal"] for s in detail["signals"]] == ["압력"] and detail["signals"][0][
                "value"
            ] == 6.5
            # Both channels heard of it: the webhook in Korean, the e-mail (critical only) in English.
            assert _Webhook.received[-1]["id"] == alert_id and "설비: 펌프 1" in _Webhook.received[-1]["text"]
            assert "13:30:00 (Asia/Seoul)" in _Webhook.received[-1]["text"]
            subject = str(make_header(decode_header(mails[-1]["Subject"])))
            assert subject == "[AX Hub] Rule broken on 펌프 1 (critical)"

            ack = c.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "압력 밸브 점검 중"})
            assert ack.status_code == 200 and ack.json()["acknowledged_by"] == hub.users["a_admin"]
            c.post(f"/api/v1/alerts/{alert_id}/notes", json={"text": "밸브 교체 완료"})
            solved = c.post(f"/api/v1/alerts/{alert_id}/resolve").json()
            assert solved["resolved_at"] and solved["resolved_by"] == hub.users["a_admin"]
            notes = c.get(f"/api/v1/alerts/{alert_id}/notes").json()
            assert [n["text"] for n in notes] == ["압력 밸브 점검 중", "밸브 교체 완료"]
        with hub.client("b_admin") as c:  # another company sees none of it
            assert c.get(f"/api/v1/alerts/{alert_id}/explain").status_code == 404
            assert c.get("/api/v1/rules").json() == []
            assert c.post(f"/api/v1/alerts/{alert_id}/notes", json={"text": "x"}).status_code == 404
    finally:
        web.shutdown()
        smtp.stop()


def test_refused_data_per_source(hub: Hub, tmp_path: Path) -> None:
    from axhub.ingest.connectors.base import Rejected
    from axhub.serve.refused import deadletter_store
    from axhub.store.platform import org_by_slug

    with hub.db.session() as s:
        org_id = org_by_slug(s, "acme").id
    deadletter_store(hub.settings).add(
        org_id,
        [
            Rejected(
                source="mqtt:line-2",
                origin="plant/line2/프레스",
                reason="no time in payload",
                payload=b'{"v": 1}',
            )
        ],
    )
    with hub.client("a_engineer") as c:
        site = c.post("/api/v1/sites", json={"name": "창원 3공장"}).json()
        asset_id = c.post(
            "/api/v1/assets", json={"site_id": site["id"], "name": "절단기", "slug": "cutter-01"}
        ).json()["id"]
        path = tmp_path / "절단기.csv"
        rows = "".join(f'2026-03-05 오전 9:{m:02d}:00,"{"높음" if m == 1 else "1,5"}"\n' for m in range(10))
        path.write_bytes(("시간,전류\n" + rows).encode("cp949"))
        preview = _upload(c, path, asset_id)
        c.post(f"/api/v1/uploads/{preview['sha256']}/ingest", json={"asset": asset_id})
        sources = {(s["source"], s["kind"]): s["refused"] for s in c.get("/api/v1/refused").json()}
        assert sources[("mqtt:line-2", "connector")] == 1 and sources[("절단기.csv", "file")] == 1
        letters = c.get("/api/v1/deadletters", params={"source": "mqtt:line-2"}).json()
        assert letters["total"] == 1 and letters["items"][0]["reason"] == "no time in payload"
        assert letters["items"][0]["payload"] == '{"v": 1}'
        rejects = c.get("/api/v1/file-rejects", params={"source": "절단기.csv", "lang": "ko"}).json()
        assert rejects[0]["problems"][0]["problem"] == "숫자가 아닙니다: '높음'"
        assert rejects[0]["problems"][0]["row"] == 3 and rejects[0]["problems"][0]["field"] == "전류"
    with hub.client("b_admin") as c:
        assert c.get("/api/v1/refused").json() == [] and c.get("/api/v1/deadletters").json()["total"] == 0

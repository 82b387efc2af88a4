"""Collaborations through the HTTP API and the dashboard page (Korean and English)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from sqlalchemy import select

from _api_helpers import PASSWORD, make_hub
from axhub.core.readings import make_batch
from axhub.store.models import FedRoundRow, OrganizationRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

API = "/api/v1/federated"


def _org_id(db: object, slug: str) -> str:
    with db.session() as s:  # type: ignore[attr-defined]
        return str(s.scalars(select(OrganizationRow.id).where(OrganizationRow.slug == slug)).one())


def test_collaboration_through_api_and_page(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "home", f"sqlite:///{tmp_path / 'hub.db'}")
    acme, beta = _org_id(hub.db, "acme"), _org_id(hub.db, "beta")
    with hub.db.session() as s:
        scope = OrgScope(s, beta)
        scope.ensure_asset(scope.ensure_site("본사"), "압축기 1", slug="comp-1")
    ts = np.arange(10, dtype=np.int64) * 1_000_000 + 1_764_000_000_000_000
    for sig in ("압력", "수명"):
        TimeSeriesStore(hub.settings.timeseries_root).write(
            beta, make_batch("comp-1", sig, ts, np.arange(10.0))
        )

    lead, member, viewer = hub.client("a_admin"), hub.client("b_admin"), hub.client("a_viewer")
    body = {"name": "압축기 수명", "family": "rul_mlp", "signals": ["압력"], "target": "수명"}
    assert viewer.post(API, json=body).status_code == 403
    created = lead.post(API, json=body)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    # Not invited yet: the collaboration does not exist for beta.
    assert member.get(f"{API}/{cid}").status_code == 404
    assert lead.post(f"{API}/{cid}/invite", json={"org_id": beta}).status_code == 204
    assert [c["id"] for c in member.get(API).json()] == [cid]
    bad = member.post(
        f"{API}/{cid}/accept", json={"asset": "comp-1", "signals": {"압력": "압력"}, "policy": {}}
    )
    assert bad.status_code in (400, 422) and "수명" in bad.text and "Traceback" not in bad.text
    policy = {"min_local_samples": 5, "dp": {"clip_norm": 1, "noise_multiplier": 1, "epsilon_budget": 4}}
    ok = member.post(
        f"{API}/{cid}/accept",
        json={"asset": "comp-1", "signals": {"압력": "압력", "수명": "수명"}, "policy": policy},
    )
    assert ok.status_code == 204, ok.text
    view = lead.get(f"{API}/{cid}").json()
    by_org = {m["org_id"]: m for m in view["members"]}
    assert by_org[beta]["status"] == "active" and by_org[beta]["policy"]["dp"]["epsilon_budget"] == 4
    assert by_org[acme]["status"] == "invited"
    # A round as the hub records it, so the page has something to show.
    with hub.db.session() as s:
        record = {
            "round": 1,
            "seconds": 1.5,
            "bytes_up": 100,
            "bytes_down": 200,
            "members": {beta: {"status": 0}},
            "evaluation": {beta: {"joint_rmse": 3.25, "local_rmse": 4.5}},
            "contribution": {beta: 0.125},
        }
        s.add(FedRoundRow(collaboration_id=cid, run_id="run_1", round=1, record=record))

    page = hub.client()
    signed = page.post("/api/v1/auth/login", json={"email": "b_admin@beta.example", "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    ko = page.get(f"/federated?c={cid}", headers={"Accept-Language": "ko-KR"})
    assert ko.status_code == 200
    text = re.sub(r"<[^>]+>", " ", ko.text.split("<main", 1)[1])
    assert "기업 간 공동 학습" in text and "3.250" in text and "4.500" in text and "0.1250" in text
    assert "Learning together" not in ko.text and "taking part" not in text
    en = page.get(f"/federated?c={cid}", headers={"Accept-Language": "en-US"})
    assert "Learning together" in en.text and "기업 간 공동 학습" not in en.text
    # Another company's collaboration id shows nothing of it.
    assert hub.client("a_viewer").get(f"{API}/fc_missing").status_code == 404

    assert member.post(f"{API}/{cid}/leave").status_code == 204
    assert {m["status"] for m in lead.get(f"{API}/{cid}").json()["members"] if m["org_id"] == beta} == {
        "left"
    }

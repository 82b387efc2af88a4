"""What the dashboard's collaboration forms call: invite by share code, start a run as a job
(lead's admin only, two members taking part, one at a time), and the joint model's download
(members only; others only once every member consented), as ONNX + JSON that scores."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from _api_helpers import PASSWORD, make_hub
from axhub.api import bootstrap
from axhub.federated.hub import joint_model_path, task_for
from axhub.federated.learner import build_net, get_params
from axhub.jobs.federated_run import runs_root
from axhub.store.models import FedCollaborationRow, FedRoundRow, JobRow, OrganizationRow
from axhub.store.scoped import OrgScope

API = "/api/v1/federated"


def _org(db: object, slug: str) -> OrganizationRow:
    with db.session() as s:  # type: ignore[attr-defined]
        org = s.scalars(select(OrganizationRow).where(OrganizationRow.slug == slug)).one()
        s.expunge(org)
        return org


@pytest.mark.torch  # the run trains a torch model
def test_share_code_invite_run_job_and_joint_model_download(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "home", f"sqlite:///{tmp_path / 'hub.db'}")
    beta = _org(hub.db, "beta")
    with hub.db.session() as s:
        scope = OrgScope(s, beta.id)
        scope.ensure_asset(scope.ensure_site("본사"), "압축기 1", slug="comp-1")
    lead, member = hub.client("a_admin"), hub.client("b_admin")
    code = member.get("/api/v1/org").json()["share_code"]
    assert code

    body = {"name": "압축기 수명", "family": "rul_mlp", "signals": ["압력"], "target": "수명"}
    cid = lead.post(API, json=body).json()["id"]
    unknown = lead.post(f"{API}/{cid}/invite", json={"share_code": "sh_nobody"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    empty = lead.post(f"{API}/{cid}/invite", json={"share_code": "  "})
    assert empty.status_code == 422 and "share_code" in empty.text
    assert lead.post(f"{API}/{cid}/invite", json={"share_code": f" {code} "}).status_code == 204
    again = lead.post(f"{API}/{cid}/invite", json={"share_code": code})
    assert again.status_code == 409

    # A bad policy names its field (the page shows that field's label).
    bad = member.post(
        f"{API}/{cid}/accept",
        json={
            "asset": "comp-1",
            "signals": {"압력": "압력", "수명": "수명"},
            "policy": {"min_local_samples": 0},
        },
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"] == [{"field": "min_local_samples"}]
    accepted = member.post(
        f"{API}/{cid}/accept",
        json={"asset": "comp-1", "signals": {"압력": "압력", "수명": "수명"}, "policy": {}},
    )
    assert accepted.status_code == 204

    # Only one member taking part (the lead has not accepted): refused before any job exists.
    one = lead.post(f"{API}/{cid}/runs", json={"rounds": 2})
    assert one.status_code == 409
    with hub.db.session() as s:
        OrgScope(s, _org(hub.db, "acme").id).ensure_asset(
            OrgScope(s, _org(hub.db, "acme").id).ensure_site("본사"), "압축기 A", slug="comp-a"
        )
    assert (
        lead.post(
            f"{API}/{cid}/accept",
            json={"asset": "comp-a", "signals": {"압력": "p", "수명": "life"}, "policy": {}},
        ).status_code
        == 204
    )
    assert member.post(f"{API}/{cid}/runs", json={"rounds": 2}).status_code == 403  # not the lead
    assert hub.client("a_viewer").post(f"{API}/{cid}/runs", json={"rounds": 2}).status_code == 403
    assert lead.post(f"{API}/{cid}/runs", json={"rounds": 0}).status_code == 422
    # The generic jobs route does not bypass those checks.
    direct = lead.post("/api/v1/jobs", json={"kind": "federated_run", "collaboration_id": cid})
    assert direct.status_code == 403
    started = lead.post(f"{API}/{cid}/runs", json={"rounds": 2})
    assert started.status_code == 201, started.text
    job = started.json()
    assert job["kind"] == "federated_run" and job["spec"]["rounds"] == 2
    assert lead.post(f"{API}/{cid}/runs", json={"rounds": 2}).status_code == 409  # one at a time
    with hub.db.session() as s:
        assert s.get(JobRow, job["id"]).org_id == _org(hub.db, "acme").id

    # No run recorded yet: nothing to download.
    assert member.get(f"{API}/{cid}/model").status_code == 404
    # A finished run as the hub leaves it: rounds recorded, joint parameters in its folder.
    with hub.db.session() as s:
        row = s.get(FedCollaborationRow, cid)
        net = build_net(task_for(row))
        s.add(FedRoundRow(collaboration_id=cid, run_id="run-x", round=1, record={"round": 1}))
    path = joint_model_path(runs_root(hub.settings), "run-x")
    path.parent.mkdir(parents=True)
    np.savez(path, *get_params(net))

    got = member.get(f"{API}/{cid}/model")
    assert got.status_code == 200, got.text
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        meta = json.loads(archive.read("model.json"))
        graph = archive.read("model.onnx")
    assert meta["inputs"] == ["압력"] and meta["run_id"] == "run-x"
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).normal(size=(3, 1)).astype(np.float32)
    scored = ort.InferenceSession(graph).run(None, {"features": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(scored, net(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)

    # A third company sees no model until every member (lead and beta) consented.
    user = bootstrap.create_user(hub.db, "gamma", "g@gamma.example", PASSWORD, "viewer")
    hub.keys["g_viewer"] = bootstrap.create_key(hub.db, user, "g", ["read"])
    outsider = hub.client("g_viewer")
    assert outsider.get(f"{API}/{cid}/model").status_code == 404
    assert member.post(f"{API}/{cid}/share-consent").status_code == 204
    assert outsider.get(f"{API}/{cid}/model").status_code == 404
    assert lead.post(f"{API}/{cid}/share-consent").status_code == 204
    assert outsider.get(f"{API}/{cid}/model").status_code == 200
    assert outsider.get(f"{API}/{cid}").status_code == 404  # the model, not the collaboration

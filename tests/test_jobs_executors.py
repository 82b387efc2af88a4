"""Jobs end to end: train → registry → evaluate → export through the API on the local pool,
cancellation, progress over SSE, and the same specs on a local Ray instance."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _api_helpers import Hub, make_hub
from axhub.core.settings import Settings
from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import ProbeSpec, TrainSpec
from axhub.store.db import Database
from axhub.store.models import DatasetRow, JobRow, ModelVersionRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope


def _wait_job(c: TestClient, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", executor="local", workers=2)


def test_train_evaluate_export_on_the_local_pool(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ds = c.post(
            "/api/v1/datasets",
            json={"name": "pump-normal", "spec": {"source": "example", "estimator": "anomaly/mspc"}},
        ).json()
        job = c.post(
            "/api/v1/jobs",
            json={
                "kind": "train",
                "estimator": "anomaly/mspc",
                "dataset_id": ds["id"],
                "params": {"window": 3, "smooth": 3},
                "model_name": "pump-mspc",
            },
        )
        assert job.status_code == 201, job.text
        done = _wait_job(c, job.json()["id"])
        assert done["state"] == "succeeded", done
        assert done["progress"] == 1.0 and done["started_at"] and done["finished_at"]
        mv_id = done["result"]["model_version_id"]
        mv = c.get(f"/api/v1/models/{mv_id}").json()
        assert mv["name"] == "pump-mspc" and mv["version"] == 1 and mv["stage"] == "candidate"
        assert mv["dataset_id"] == ds["id"] and mv["dataset_version"] == 1
        assert mv["code_version"].startswith("0.1.0") and mv["params"]["window"] == 3
        assert set(mv["metrics"]) >= {"f1", "precision", "recall"}
        logs = [entry["message"] for entry in c.get(f"/api/v1/jobs/{done['id']}/logs").json()["items"]]
        assert any("training anomaly/mspc" in m for m in logs) and logs[-1].startswith("succeeded")

        # the same dataset again -> version 2; compare and promote
        second = _wait_job(
            c,
            c.post(
                "/api/v1/jobs",
                json={
                    "kind": "train",
                    "estimator": "anomaly/mspc",
                    "dataset_id": ds["id"],
                    "model_name": "pump-mspc",
                    "params": {"window": 5},
                },
            ).json()["id"],
        )
        mv2 = second["result"]["model_version_id"]
        cmp = c.get("/api/v1/models/compare", params=[("ids", mv_id), ("ids", mv2)]).json()
        assert [v["version"] for v in cmp["versions"]] == [1, 2] and "f1" in cmp["metrics"]
        assert (
            c.post(f"/api/v1/models/{mv_id}/stage", json={"stage": "production"}).json()["stage"]
            == "production"
        )
        assert c.post(f"/api/v1/models/{mv2}/stage", json={"stage": "production"}).status_code == 200
        assert c.get(f"/api/v1/models/{mv_id}").json()["stage"] == "archived"  # replaced
        assert c.get("/api/v1/models", params={"stage": "production"}).json()["total"] == 1

        ev = _wait_job(
            c,
            c.post(
                "/api/v1/jobs", json={"kind": "evaluate", "model_version_id": mv2, "dataset_id": ds["id"]}
            ).json()["id"],
        )
        assert ev["state"] == "succeeded" and ev["result"]["rows"] == 300 and "f1" in ev["result"]["metrics"]
        ex = _wait_job(
            c, c.post("/api/v1/jobs", json={"kind": "export", "model_version_id": mv2}).json()["id"]
        )
        assert ex["state"] == "succeeded" and ex["result"]["bytes"] > 100

        bundle = c.get(f"/api/v1/models/{mv2}/bundle")
        assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
        assert manifest["family"] == "anomaly" and manifest["params"]["window"] == 5


def test_bad_spec_is_refused_at_submit_and_bad_data_fails_without_retry(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        r = c.post("/api/v1/jobs", json={"kind": "train", "estimator": "anomaly/nope", "dataset_id": "ds_x"})
        assert r.status_code == 422 and "no estimator" in r.json()["error"]["message"]
        r = c.post(
            "/api/v1/jobs",
            json={"kind": "train", "estimator": "anomaly/mspc", "dataset_id": "ds_x", "bogus": 1},
        )
        assert r.status_code == 422
        ds = c.post(
            "/api/v1/datasets", json={"name": "d", "spec": {"source": "example", "estimator": "anomaly/mspc"}}
        ).json()
        job = _wait_job(
            c,
            c.post(
                "/api/v1/jobs",
                json={
                    "kind": "train",
                    "estimator": "anomaly/mspc",
                    "dataset_id": ds["id"],
                    "params": {"no_such_param": 1},
                },
            ).json()["id"],
        )
        assert job["state"] == "failed" and job["attempts"] == 1 and "no_such_param" in job["error"]


def test_cancel_a_running_job_and_stream_its_events(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        job = c.post("/api/v1/jobs", json={"kind": "probe", "seconds": 30, "steps": 300}).json()
        deadline = time.monotonic() + 30
        while c.get(f"/api/v1/jobs/{job['id']}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert c.post(f"/api/v1/jobs/{job['id']}/cancel").json()["cancel_requested"] is True
        with c.stream(
            "GET", f"/api/v1/jobs/{job['id']}/events", params={"poll": 0.1, "timeout": 30}
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = [line for line in stream.iter_lines() if line.startswith("event:")]
        assert "event: job" in events and "event: log" in events and events[-1] == "event: end"
        final = c.get(f"/api/v1/jobs/{job['id']}").json()
        assert final["state"] == "cancelled" and final["progress"] < 1.0
        assert c.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 409


def test_same_specs_run_on_a_local_ray_instance(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'axhub[ray]')")
    from axhub.jobs.executors.ray_executor import RayExecutor

    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'meta.db'}")
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    queue = JobQueue(db, lease_seconds=10)
    with db.session() as s:
        org = create_org(s, "Acme")
        scope = OrgScope(s, org.id)
        ds = scope.add(DatasetRow(name="d", spec={"source": "example", "estimator": "anomaly/mspc"}))
        train_id = queue.submit(scope, TrainSpec(estimator="anomaly/mspc", dataset_id=ds.id)).id
        probe_id = queue.submit(scope, ProbeSpec(seconds=0.2, steps=2)).id
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    try:
        with RayExecutor(queue, settings, max_in_flight=1, poll_interval=0.1) as executor:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with db.session() as s:
                    states = {j.id: j.state for j in s.query(JobRow).all()}
                if all(v in ("succeeded", "failed") for v in states.values()):
                    break
                time.sleep(0.2)
    finally:
        ray.shutdown()
    assert executor.outcomes.get("succeeded") == 2
    with db.session() as s:
        train = s.get(JobRow, train_id)
        assert train is not None and train.state == "succeeded", train.error
        mv = s.get(ModelVersionRow, train.result["model_version_id"])
        assert mv is not None and mv.dataset_id == ds.id and mv.bundle_sha256
        probe = s.get(JobRow, probe_id)
        assert probe is not None and probe.state == "succeeded"

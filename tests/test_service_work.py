"""Bounded work per request (issue 12): days per readings write, estimator parameter ranges,
cancel reaching a running fit, and one company never holding every job worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _api_helpers import Hub, make_hub, seed_org


def _wait(c: TestClient, job_id: str, until: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {until}: {job}")


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", executor="local", workers=2)


def test_expensive_requests_are_refused_with_the_reason(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ids = seed_org(c)
        start = datetime(2024, 1, 1, tzinfo=UTC)
        spread = [
            {"time": (start + timedelta(days=i)).isoformat(), "signal": "spindle_temp", "value": 1.0}
            for i in range(2000)
        ]
        began = time.perf_counter()
        r = c.post(f"/api/v1/assets/{ids['asset']}/readings", json={"readings": spread})
        assert r.status_code == 422 and "2000 different days" in r.json()["error"]["message"], r.text
        assert time.perf_counter() - began < 5
        month = spread[:31]
        assert c.post(f"/api/v1/assets/{ids['asset']}/readings", json={"readings": month}).status_code == 201
        for params in ({"n_estimators": 3000}, {"epochs": 10**6}, {"window": float("1e300")}):
            r = c.post(
                "/api/v1/jobs",
                json={
                    "kind": "train",
                    "estimator": "anomaly/iforest",
                    "dataset_id": ids["dataset"],
                    "params": params,
                },
            )
            assert r.status_code == 422, (params, r.text)
            assert next(iter(params)) in r.json()["error"]["message"]


def test_cancel_reaches_a_running_fit(hub: Hub) -> None:
    with hub.client("a_engineer") as c:
        ds = c.post(
            "/api/v1/datasets",
            json={"name": "if", "spec": {"source": "example", "estimator": "anomaly/iforest"}},
        ).json()
        spec = {"kind": "train", "estimator": "anomaly/iforest", "dataset_id": ds["id"]}
        job = c.post("/api/v1/jobs", json={**spec, "params": {"n_estimators": 1000, "calibration_folds": 20}})
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 60
        while c.get(f"/api/v1/jobs/{job_id}").json()["progress"] < 0.1:  # inside estimator.fit
            assert time.monotonic() < deadline
            time.sleep(0.05)
        asked = time.monotonic()
        assert c.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
        done = _wait(c, job_id, {"cancelled", "succeeded", "failed"})
        took = time.monotonic() - asked
        assert done["state"] == "cancelled", done
        assert done["progress"] < 0.7, "the fit ran to its end before the cancel was seen"
        assert took < 10, f"cancel took {took:.1f} s to reach the fit"


def test_one_company_cannot_hold_every_worker(hub: Hub) -> None:
    b = hub.client("b_admin")  # not entered: one app lifespan, so one pool of two workers
    with hub.client("a_engineer") as a:
        long_jobs = [
            a.post("/api/v1/jobs", json={"kind": "probe", "seconds": 6}).json()["id"] for _ in range(2)
        ]
        _wait(a, long_jobs[0], {"running"})
        time.sleep(0.5)  # both workers are free to take acme's second job if nothing stops them
        submitted = time.monotonic()
        quick = b.post("/api/v1/jobs", json={"kind": "probe", "seconds": 0}).json()["id"]
        done = _wait(b, quick, {"succeeded"})
        waited = time.monotonic() - submitted
        assert done["state"] == "succeeded"
        assert waited < 2.0, f"another company's 0-second job waited {waited:.1f} s behind acme's long jobs"
        states = {a.get(f"/api/v1/jobs/{j}").json()["state"] for j in long_jobs}
        assert states == {"running", "queued"}, states  # acme keeps one worker, not both
        for job_id in long_jobs:
            a.post(f"/api/v1/jobs/{job_id}/cancel")

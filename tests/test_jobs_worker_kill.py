"""A worker process SIGKILLed in the middle of a job: the lease expires, another worker picks the
job up, and it completes exactly once (on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from axhub.core.settings import Settings
from axhub.jobs.executors.local import LocalExecutor
from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import ProbeSpec
from axhub.store.db import Database
from axhub.store.models import JobLogRow, JobRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope

LEASE_S = 1.5


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_job_is_retried_and_completed_once(database: Database, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database.url)
    settings.ensure_dirs()
    queue = JobQueue(database, lease_seconds=LEASE_S)
    with database.session() as s:
        org = create_org(s, "Acme")
        job_id = queue.submit(OrgScope(s, org.id), ProbeSpec(seconds=2.0, steps=8)).id

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "axhub.jobs.worker",
            "--home",
            str(settings.home),
            "--database-url",
            database.url,
            "--lease-seconds",
            str(LEASE_S),
            "--poll-interval",
            "0.1",
            "--name",
            "doomed",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:

        def progressed() -> bool:
            with database.session() as s:
                job = s.get(JobRow, job_id)
                return job is not None and job.state == "running" and job.progress > 0

        _wait(progressed, 60, "the worker to start the job")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
    finally:
        if worker.poll() is None:
            worker.kill()
    with database.session() as s:
        job = s.get(JobRow, job_id)
        assert job is not None and job.state == "running" and job.attempts == 1
        assert job.lease_owner is not None and job.lease_owner.startswith("doomed")

    with LocalExecutor(queue, settings, workers=2, poll_interval=0.05, name="rescuer") as rescuer:

        def done() -> bool:
            with database.session() as s:
                row = s.get(JobRow, job_id)
                return row is not None and row.state == "succeeded"

        _wait(done, 30, "the job to be completed by the second worker")
        recovered_after = time.monotonic() - killed_at
    assert rescuer.outcomes["succeeded"] == 1
    with database.session() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        assert job.attempts == 2 and job.result["attempt"] == 2
        assert job.lease_owner is not None and job.lease_owner.startswith("rescuer")
        logs = s.scalars(select(JobLogRow.message).where(JobLogRow.job_id == job_id)).all()
    assert sum(m.startswith("succeeded") for m in logs) == 1  # completed exactly once
    assert sum(m.startswith("started on") for m in logs) == 2
    # re-leased once the lease lapsed: not before, and not much after
    assert recovered_after >= LEASE_S * 0.5

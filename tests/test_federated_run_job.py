"""The ``federated_run`` job on a real worker: its progress counts the rounds the hub finished,
and cancelling it mid-run kills the server and every member process and records nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from _federated import MAPPING, SCHEMA, _company
from axhub.core.settings import Settings
from axhub.federated import collab
from axhub.jobs.executors.local import LocalExecutor
from axhub.jobs.federated_run import runs_root
from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import FederatedRunSpec
from axhub.store.db import Database
from axhub.store.models import FedRoundRow, JobLogRow, JobRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

pytestmark = [pytest.mark.slow, pytest.mark.torch]  # members train a torch model


@pytest.fixture
def db(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    # The member processes open the same hub (its database and store) from AXHUB_HOME.
    monkeypatch.setenv("AXHUB_HOME", str(settings.home))
    database = Database.from_settings(settings)
    database.migrate()
    yield database
    database.dispose()


def _wait(db: Database, job_id: str, done: object, timeout: float = 120) -> JobRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            if done(job):  # type: ignore[operator]
                s.expunge(job)
                return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s")


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def test_progress_counts_rounds_and_cancel_kills_every_process(db: Database, settings: Settings) -> None:
    store = TimeSeriesStore(settings.timeseries_root)
    lead, supplier = (_company(db, store, n, i) for i, n in enumerate(["대기업", "협력사"]))
    with db.session() as s:
        cid = collab.create(s, lead, "프레스 수명", "rul_mlp", SCHEMA).id
        collab.invite(s, lead, cid, supplier)
        for org in (lead, supplier):
            collab.accept(OrgScope(s, org), cid, MAPPING, {"min_local_samples": 50})
    queue = JobQueue(db)
    with db.session() as s:
        job_id = queue.submit(OrgScope(s, lead), FederatedRunSpec(collaboration_id=cid, rounds=60)).id

    with LocalExecutor(queue, settings, workers=1):
        # Round 1 done: the job's progress moved past the start-up share.
        _wait(db, job_id, lambda j: float(j.progress) > 0.05)
        folder = runs_root(settings) / f"run-{job_id}-1"
        pids = [int(line.split()[0]) for line in _child_pids(folder)]
        with db.session() as s:
            queue.cancel(OrgScope(s, lead), job_id)
        job = _wait(db, job_id, lambda j: j.state in ("cancelled", "failed", "succeeded"))
    assert job.state == "cancelled"
    with db.session() as s:
        assert not s.scalars(select(FedRoundRow).where(FedRoundRow.collaboration_id == cid)).all()
        logs = [r.message for r in s.scalars(select(JobLogRow).where(JobLogRow.job_id == job_id))]
    assert any(re.match(r"round [1-9]\d*/60 done", m) for m in logs), logs
    assert len(pids) == 3 and not any(_alive(p) for p in pids)


def _child_pids(folder: Path) -> list[str]:
    """The server's and members' process ids, from /proc: their command lines name the run folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(folder).encode() in part for part in cmdline) and b"axhub.federated.process" in cmdline:
            found.append(proc.name)
    return found

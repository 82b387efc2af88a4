"""Scale-out on real engines, each tier as separate processes sharing PostgreSQL (and, for
ingest, the broker and the Parquet root), as on several machines of a data center:

* a Ray cluster of a head and two worker nodes (``ray start``): jobs spread over the nodes, and
  a node SIGKILLed mid-job leaves its job to finish on the other one;
* two ingest workers on one MQTT 5 shared subscription, one SIGKILLed mid-stream: every
  reading stored once, none lost;
* the API under several uvicorn worker processes on PostgreSQL, one worker SIGKILLed under load.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from _ray_cluster import free_port
from axhub.bench._broker import MosquittoBroker, mosquitto_binary
from axhub.core.settings import Settings
from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import ProbeSpec
from axhub.store.db import Database
from axhub.store.models import JobLogRow, JobRow, OrganizationRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore
from conftest import _postgres_database
from test_worker_reliability import Publisher, Worker, stored

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    assert cond(), f"timed out after {timeout:.0f} s waiting for {what}"


@pytest.fixture
def pg_db() -> Iterator[Database]:
    """A fresh, migrated PostgreSQL database of its own (the tiers below share it)."""
    gen = _postgres_database()
    url = next(gen)
    db = Database(url)
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()
        next(gen, None)


# ---------------------------------------------------------------------------------- Ray
def _job_nodes(db: Database, job_id: str) -> list[str]:
    with db.session() as s:
        logs = s.scalars(select(JobLogRow.message).where(JobLogRow.job_id == job_id).order_by(JobLogRow.id))
        return [m.rsplit(" ", 1)[1] for m in logs if m.startswith("running on Ray node ")]


def _state(db: Database, job_id: str) -> JobRow:
    with db.session() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        return row


def test_ray_cluster_spreads_jobs_and_survives_a_dead_node(
    pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    from _ray_cluster import RayCluster
    from axhub.jobs.executors.ray_executor import RayExecutor

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the throw-away cluster runs without tokens
    with pg_db.session() as s:
        org = create_org(s, "Acme", f"acme-{uuid.uuid4().hex[:6]}")
        org.max_concurrent_jobs = 4
        org_id = org.id
    settings = Settings(home=tmp_path / "hub", database_url=pg_db.url)
    queue = JobQueue(pg_db, lease_seconds=4)
    cluster = RayCluster(workers=2)
    try:
        cluster.start()
        with RayExecutor(queue, settings, max_in_flight=2, poll_interval=0.1):
            # 1. four 1.5 s jobs on two one-CPU nodes: both nodes work
            with pg_db.session() as s:
                jobs = [
                    queue.submit(OrgScope(s, org_id), ProbeSpec(seconds=1.5, steps=3)).id for _ in range(4)
                ]
            wait_for(lambda: all(_state(pg_db, j).state == "succeeded" for j in jobs), 120, "the four jobs")
            names = cluster.node_names()
            used = {names[n] for j in jobs for n in _job_nodes(pg_db, j)}
            assert used == {"node_0", "node_1"}, used

            # 2. a node dies mid-job: the job finishes on the other node, once
            with pg_db.session() as s:
                long_job = queue.submit(OrgScope(s, org_id), ProbeSpec(seconds=6, steps=30)).id
            wait_for(lambda: len(_job_nodes(pg_db, long_job)) == 1, 60, "the long job to start")
            wait_for(lambda: _state(pg_db, long_job).progress > 0.1, 30, "progress")
            victim = names[_job_nodes(pg_db, long_job)[0]]
            cluster.nodes[victim].kill()
            wait_for(lambda: _state(pg_db, long_job).state in ("succeeded", "failed"), 120, "the retried job")
            done = _state(pg_db, long_job)
            assert done.state == "succeeded" and done.result["attempt"] >= 2, (done.state, done.error)
            ran_on = [names.get(n, "?") for n in _job_nodes(pg_db, long_job)]
            assert ran_on[0] == victim and ran_on[-1] not in (victim, "head"), ran_on
    finally:
        cluster.close()


# ---------------------------------------------------------------------------------- ingest
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not found; install it with 'apt-get install mosquitto'")
    with MosquittoBroker(tmp_path / "broker") as b:
        yield b


class SharedWorker(Worker):
    """An ``axhub run ingest`` process of a shared group: its own client id and home (logs,
    dead letters), the shared PostgreSQL metadata and the shared Parquet root."""

    def __init__(self, config: Path, home: Path, client_id: str, database_url: str, data_root: Path) -> None:
        super().__init__(config, home)
        self.client_id, self.database_url, self.data_root = client_id, database_url, data_root

    def start(self) -> None:
        env = {
            **os.environ,
            "AXHUB_HOME": str(self.home),
            "AXHUB_DATABASE_URL": self.database_url,
            "AXHUB_DATA_ROOT": str(self.data_root),
            "OMP_NUM_THREADS": "1",
        }
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "axhub.cli.main",
                    "run",
                    "ingest",
                    "--config",
                    str(self.config),
                    "--client-id",
                    self.client_id,
                    "--flush-ms",
                    "50",
                    "--stats-every",
                    "0.5",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def written(self) -> int:
        """Readings this worker stored, summed over its runs (each run's final or last count)."""
        total = 0
        text = self.log.read_text() if self.log.exists() else ""
        for run in text.split("ingesting")[1:]:
            final = re.findall(r"mqtt: written ([\d,]+)", run)
            counts = final or re.findall(r"written ([\d,]+) readings", run) or ["0"]
            total += int(counts[-1].replace(",", ""))
        return total


@pytest.mark.mqtt
def test_two_ingest_workers_share_a_subscription_and_one_is_sigkilled(
    broker: MosquittoBroker, pg_db: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    prefix = f"so{uuid.uuid4().hex[:6]}"
    with pg_db.session() as s:  # the company exists before the workers start (one shared row)
        create_org(s, "Acme", "acme")
    config = tmp_path / "mapping.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "org": "acme",
                "mqtt": {
                    "port": broker.port,
                    "version": "5",
                    "shared_group": "ingest",
                    "receive_maximum": 20,
                    "reconnect_min_s": 0.5,
                    "reconnect_max_s": 1,
                    "topics": [{"topic": f"{prefix}/{{asset}}/batch"}],
                },
            }
        )
    )
    data_root = tmp_path / "shared-data"
    workers = [
        SharedWorker(config, tmp_path / f"w{i}", f"ingest-{i}-{prefix}", pg_db.url, data_root) for i in (1, 2)
    ]
    for w in workers:
        request.addfinalizer(w.close)
        w.start()

    def connected(w: Worker) -> int:
        return w.log.read_text().count("MQTT connected") if w.log.exists() else 0

    wait_for(lambda: all(connected(w) == 1 for w in workers), 60, "both workers to subscribe")
    with pg_db.session() as s:
        acme = s.scalars(select(OrganizationRow.id).where(OrganizationRow.slug == "acme")).one()
    store = TimeSeriesStore(data_root / "timeseries")
    publisher = Publisher(broker.port, prefix, messages=200, per_message=50, pace_s=0.01)
    publisher.start()
    publisher.allow(70)
    wait_for(lambda: publisher.published >= 60 and store.count(acme) > 20 * 50, 60, "the stream to flow")
    first, _second = workers
    first.kill()  # SIGKILL mid-stream: what it held unacknowledged is redelivered
    before = store.count(acme)
    publisher.allow(140)
    wait_for(lambda: store.count(acme) > before + 20 * 50, 60, "the other worker to carry on alone")
    first.start()  # the process supervisor brings it back; its session kept its share
    wait_for(lambda: connected(first) == 2, 60, "the killed worker to rejoin")
    publisher.allow(200)
    publisher.join(60)
    publisher.finish()
    expected = publisher.sent
    wait_for(lambda: store.count(acme) >= len(expected), 60, "every reading to be stored")
    time.sleep(0.5)  # a late redelivery would show now
    for w in workers:
        assert w.stop() == 0
    got = stored(store, acme)  # asserts nothing is stored twice
    assert got.keys() == expected.keys() and len(got) == 200 * 50
    shares = [w.written() for w in workers]
    assert all(n > 0 for n in shares), shares  # both workers did part of the work


# ---------------------------------------------------------------------------------- API
def _children(pid: int) -> list[int]:
    """uvicorn's worker processes (children running multiprocessing's spawn_main)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "spawn_main" in cmd:
            found.append(int(proc.name))
    return sorted(found)


def _cpu_ticks(pid: int) -> int:
    """CPU time a process has used (clock ticks); -1 once it is gone (uvicorn may also replace a
    worker that stops answering its health checks on a loaded machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def test_api_under_several_uvicorn_workers_on_postgres(
    pg_db: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from axhub.api import bootstrap

    user = bootstrap.create_user(pg_db, "acme", "admin@acme.example", "correct-horse-9", "admin")
    key = bootstrap.create_key(pg_db, user, "load", ["read", "write"])
    port = free_port()
    env = {**os.environ, "AXHUB_HOME": str(tmp_path / "hub"), "AXHUB_DATABASE_URL": pg_db.url}
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "axhub.cli.main",
            "serve",
            "--port",
            str(port),
            "--workers",
            "3",
            "--job-workers",
            "0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def shutdown() -> None:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)

    request.addfinalizer(shutdown)
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {key}"}

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(lambda: healthy() and len(_children(server.pid)) == 3, 90, "three API workers")
    workers = _children(server.pid)
    ticks = {p: _cpu_ticks(p) for p in workers}
    created: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as c:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = c.post("/sites", json={"name": f"site {n}-{i}"})
                except httpx.HTTPError as exc:  # the connection went down with the killed worker
                    errors.append(type(exc).__name__)
                    continue
                if r.status_code == 201:
                    created.append(r.json()["id"])
                else:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(created) >= 40, 60, "the first creates")
    os.kill(workers[0], signal.SIGKILL)  # one API process dies under load
    wait_for(lambda: len(created) >= 120, 90, "creates to carry on")
    wait_for(lambda: len(_children(server.pid)) == 3, 60, "uvicorn to replace the dead worker")
    stop.set()
    for t in threads:
        t.join(15)
    assert workers[0] not in _children(server.pid)
    assert all(e in ("RemoteProtocolError", "ReadError", "ConnectError") for e in errors), errors[:5]
    assert len(errors) <= 6, errors  # only the killed worker's in-flight requests
    busy = [p for p in workers[1:] if _cpu_ticks(p) > ticks[p]]
    assert busy, "the surviving workers served requests"
    ids: list[str] = []
    with httpx.Client(base_url=base, headers=headers, timeout=10) as c:
        while True:
            page = c.get("/sites", params={"limit": 500, "offset": len(ids)}).json()
            ids += [site["id"] for site in page["items"]]
            if len(page["items"]) < 500:
                break
    assert set(created) <= set(ids), "every acknowledged create is stored"
    assert len(ids) == len(set(ids))

"""The ingest worker end to end: real Mosquitto, real time-series store, real process kills.

A publisher streams readings over MQTT (QoS 1) while the test SIGKILLs the worker
(``axhub run ingest``) and restarts the broker mid-stream; afterwards the stored series
must equal exactly what was sent: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pyarrow as pa
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from axhub.bench._broker import MosquittoBroker, mosquitto_binary
from axhub.core.readings import make_batch
from axhub.core.settings import Settings
from axhub.ingest.connectors.base import Delivery, Source
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.worker import IngestWorker, validate_batch
from axhub.store.db import Database
from axhub.store.platform import org_by_slug
from axhub.store.timeseries import TimeSeriesStore

T0_MS = 1_735_689_600_000  # 2025-01-01 UTC
ASSETS = ["press-1", "press-2"]


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# ------------------------------------------------------------------ in-process behaviour
class ListSource(Source):
    kind = "test"

    def __init__(self, deliveries: list[Delivery]) -> None:
        self.deliveries = deliveries
        self.closed = False

    def connect(self) -> None:
        pass

    def poll(self, timeout: float) -> list[Delivery]:
        out, self.deliveries = self.deliveries, []
        if not out:
            time.sleep(min(timeout, 0.01))
        return out

    def close(self) -> None:
        self.closed = True


class FlakySink:
    """Fails the first ``failures`` writes, like a store on a disk that is briefly full."""

    def __init__(self, store: TimeSeriesStore, failures: int) -> None:
        self.store = store
        self.failures = failures

    def write(self, org: str, batch: pa.Table):  # type: ignore[no-untyped-def]
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk full")
        return self.store.write(org, batch)


def test_validation_sends_bad_rows_to_dead_letters_and_acks_after_write(tmp_path: Path) -> None:
    ts = np.array([T0_MS, T0_MS + 1, T0_MS + 2, 5, T0_MS + 4]) * 1000
    batch = make_batch(["m-1", "m-1", "bad/name", "m-1", "m-1"], "temp", ts, [1.0, np.nan, 2.0, 3.0, 4.0])
    good, bad = validate_batch(batch)
    assert good["value"].to_pylist() == [1.0, 4.0]
    assert sorted(r.reason.split(" ")[0] for r in bad) == ["asset", "ts", "value"]
    acked: list[int] = []
    store = TimeSeriesStore(tmp_path / "ts")
    source = ListSource([Delivery(batch, ack=lambda: acked.append(1))])
    deadletters = DeadLetterStore(tmp_path / "dl")
    worker = IngestWorker(
        source, FlakySink(store, failures=2), "acme", deadletters, flush_interval_s=0.0, retry_min_s=0.01
    )
    stop = threading.Event()
    worker.run(stop, until=lambda s: s.flushes >= 1)
    assert acked == [1] and worker.stats.write_failures == 2
    assert store.count("acme") == 2
    assert deadletters.count("acme") == 3  # written once, although the store write was retried
    assert source.closed


# ------------------------------------------------------------------------ end to end
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not found; install it with 'apt-get install mosquitto'")
    with MosquittoBroker(tmp_path / "broker") as b:
        yield b


class Worker:
    """``axhub run ingest`` as a child process, with its own AXHUB_HOME."""

    def __init__(self, config: Path, home: Path) -> None:
        self.config, self.home = config, home
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "worker.log"

    def start(self) -> None:
        env = {**os.environ, "AXHUB_HOME": str(self.home), "OMP_NUM_THREADS": "1"}
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
                    "--flush-ms",
                    "50",
                    "--stats-every",
                    "0",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def close(self) -> None:
        """Never leave a worker behind, whatever the test's outcome."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def org_id(self, slug: str) -> str:
        """The store is keyed by organisation id; the worker created ``slug`` in its database."""
        db = Database(Settings(home=self.home).database_url)
        try:
            with db.session() as session:
                org = org_by_slug(session, slug)
                assert org is not None, f"the worker did not create organisation {slug}"
                return org.id
        finally:
            db.dispose()


class Publisher(threading.Thread):
    """A gateway: publishes batches of readings at a steady pace, QoS 1, riding out outages."""

    def __init__(self, port: int, prefix: str, messages: int, per_message: int, pace_s: float) -> None:
        super().__init__(daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex[:6]}", clean_session=False
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.prefix, self.messages, self.per_message, self.pace_s = prefix, messages, per_message, pace_s
        self.sent: dict[tuple[str, str, int], float] = {}
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.published = 0
        self.allowed = 0

    def allow(self, n: int) -> None:
        """Let the gateway publish up to ``n`` messages in all (the test sets the pace)."""
        self.allowed = n

    def run(self) -> None:
        rng = np.random.default_rng(3)
        for i in range(self.messages):
            asset = ASSETS[i % len(ASSETS)]
            rows = []
            for j in range(self.per_message):
                ts = T0_MS + i * self.per_message + j
                # float32-exact values: the store keeps float32.
                value = float(np.float32(rng.normal(50, 5)))
                signal_name = f"s{j % 4}"
                rows.append({"signal": signal_name, "ts": ts, "value": value})
                self.sent[(asset, signal_name, ts * 1000)] = value
            while not self.client.is_connected() or i >= self.allowed:
                time.sleep(0.02)  # broker down: the gateway holds its data
            self.infos.append(self.client.publish(f"{self.prefix}/{asset}/batch", json.dumps(rows), qos=1))
            self.published += 1
            time.sleep(self.pace_s)

    def finish(self) -> None:
        for info in self.infos:
            info.wait_for_publish(30)
        self.client.disconnect()
        self.client.loop_stop()


def stored(store: TimeSeriesStore, org: str) -> dict[tuple[str, str, int], float]:
    out: dict[tuple[str, str, int], float] = {}
    total = 0
    for asset in store.list_assets(org):
        frame = store.query(org, asset)
        total += len(frame)
        stamps = frame["ts"].dt.as_unit("us").astype("int64").to_numpy()
        for s, t, v in zip(frame["signal"], stamps, frame["value"], strict=True):
            out[(asset, str(s), int(t))] = float(v)
    assert total == len(out), "the store holds a reading twice"
    return out


@pytest.mark.mqtt
@pytest.mark.slow
def test_sigkill_worker_and_restart_broker_mid_stream_lose_nothing(
    broker: MosquittoBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    prefix = f"rel{uuid.uuid4().hex[:6]}"
    config = tmp_path / "mapping.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "org": "acme",
                "mqtt": {
                    "port": broker.port,
                    "version": "5",
                    "client_id": "ingest-1",
                    "receive_maximum": 50,
                    "reconnect_min_s": 0.5,
                    "reconnect_max_s": 1,
                    "topics": [{"topic": f"{prefix}/{{asset}}/batch"}],
                },
            }
        )
    )
    home = tmp_path / "home"
    worker = Worker(config, home)
    request.addfinalizer(worker.close)

    def connects() -> int:
        return worker.log.read_text().count("MQTT connected") if worker.log.exists() else 0

    worker.start()
    store = TimeSeriesStore(home / "data" / "timeseries")
    publisher = Publisher(broker.port, prefix, messages=240, per_message=50, pace_s=0.01)
    # The worker's session must exist before publishing, or the broker keeps nothing for it.
    assert wait_for(lambda: connects() == 1)
    acme = worker.org_id("acme")
    publisher.start()
    publisher.allow(80)
    assert wait_for(lambda: publisher.published >= 60)
    worker.kill()  # SIGKILL mid-stream: whatever it held unacknowledged comes again
    publisher.allow(120)  # published while no worker runs: the broker keeps it for the session
    worker.start()
    assert wait_for(lambda: connects() == 2)
    assert "session present: True" in worker.log.read_text()
    publisher.allow(200)
    assert wait_for(lambda: publisher.published >= 150 and store.count(acme) > 120 * 50)
    broker.restart()  # the broker goes away and comes back (persistence on)
    assert wait_for(lambda: connects() == 3)  # the worker reconnected by itself
    publisher.allow(240)
    publisher.join(60)
    publisher.finish()
    expected = publisher.sent
    assert wait_for(lambda: store.count(acme) >= len(expected), timeout=40), worker.log.read_text()[-3000:]
    time.sleep(0.5)  # anything late (a redelivery) would show up now
    assert worker.stop() == 0
    got = stored(store, acme)
    assert len(got) == len(expected) == 240 * 50
    assert got.keys() == expected.keys()
    # Values come back exactly as published (the store keeps float64).
    assert all(got[k] == v for k, v in expected.items())
    log = worker.log.read_text()
    assert "duplicates dropped" in log

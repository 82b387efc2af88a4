"""OPC UA connector against a real asyncua server (started here, in a background loop)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pytest
from asyncua import ua

from axhub.bench._broker import free_port
from axhub.core.domain import Quality
from axhub.core.readings import WriteResult
from axhub.ingest.connectors.base import Delivery
from axhub.ingest.connectors.opcua import OpcUaSource, status_to_quality
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.tag_mapping import OpcUaConfig
from axhub.ingest.worker import IngestWorker
from axhub.sim.live import LiveTag, OpcUaPlantServer

T = TypeVar("T")


class MemorySink:
    """Idempotent on (asset, signal, ts) like the real store."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int], float | None] = {}

    def write(self, org: str, batch: pa.Table) -> WriteResult:
        keys = zip(
            batch["asset"].to_pylist(),
            batch["signal"].to_pylist(),
            batch["ts"].cast(pa.int64()).to_pylist(),
            strict=True,
        )
        new = 0
        for key, value in zip(keys, batch["value"].to_pylist(), strict=True):
            new += key not in self.rows
            self.rows[key] = value
        return WriteResult(new, batch.num_rows - new)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


BASE_US = 1_700_000_000_000_000
TAGS = [LiveTag("pump-01", "flow"), LiveTag("pump-01", "pressure"), LiveTag("cnc-01", "spindle_load")]


class Loop:
    """An asyncio loop in a thread, for the server side."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def server(loop: Loop) -> Iterator[OpcUaPlantServer]:
    """One server for the module: asyncua builds its address space slowly (seconds)."""
    srv = OpcUaPlantServer(TAGS, port=free_port(), username="operator", password="s3cret")
    loop.run(srv.start())
    yield srv
    loop.run(srv.stop())


def _when(i: int) -> datetime:
    return datetime.fromtimestamp((BASE_US + i * 1000) / 1e6, UTC)


def collect(
    source: OpcUaSource, into: list[Delivery], cond: Callable[[pa.Table], bool], timeout: float = 10
) -> pa.Table:
    deadline = time.monotonic() + timeout
    while True:
        into.extend(source.poll(0.05))
        table = pa.concat_tables([d.batch for d in into]) if into else pa.table({})
        if (into and cond(table)) or time.monotonic() > deadline:
            return table


def written(table: pa.Table) -> list[tuple[str, str, int, float, int]]:
    """Rows with the test's own (2023) timestamps, i.e. without the tags' initial values."""
    rows = [
        (r["asset"], r["signal"], int(r["ts"].timestamp() * 1e6), r["value"], r["quality"])
        for r in table.to_pylist()
    ]
    return sorted(r for r in rows if r[2] < BASE_US + 10**9)


def test_status_codes_map_to_quality() -> None:
    assert status_to_quality(ua.StatusCode(ua.StatusCodes.Good)) is Quality.GOOD
    assert status_to_quality(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) is Quality.UNCERTAIN
    assert status_to_quality(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) is Quality.BAD


def test_browse_subscribe_with_password_timestamps_and_quality(loop: Loop, server: OpcUaPlantServer) -> None:
    if True:
        cfg = OpcUaConfig.model_validate(
            {
                "endpoint": server.endpoint,
                "username": "operator",
                "password": "s3cret",
                "publishing_interval_ms": 50,
                "browse": [{"root": f"ns={server.ns};s=Plant", "asset": "{parent}", "signal": "{name}"}],
                "nodes": [
                    {
                        "node": server.node_id("pump-01", "pressure"),
                        "asset": "pump-01",
                        "signal": "pressure_kpa",
                        "scale": 1000.0,
                    }
                ],
            }
        )
        source = OpcUaSource(cfg)
        source.connect()
        assert source.wait_connected(15)
        assert {(t.asset, t.signal) for t in source.tags.values()} == {
            ("pump-01", "flow"),
            ("pump-01", "pressure_kpa"),
            ("cnc-01", "spindle_load"),
        }
        statuses = {3: ua.StatusCodes.UncertainLastUsableValue, 7: ua.StatusCodes.BadSensorFailure}
        for i in range(10):
            loop.run(server.write("pump-01", "flow", 10.0 + i, _when(i), status=statuses.get(i, 0)))
            loop.run(server.write("pump-01", "pressure", 0.5 + i, _when(i)))
            time.sleep(0.06)  # slower than the sampling: each value is its own data change
        got: list[Delivery] = []
        table = collect(source, got, lambda t: len(written(t)) >= 20)
        source.close()
    rows = written(table)
    flow = [r for r in rows if r[1] == "flow"]
    # A Bad status may come without a value: it is stored as null with quality 'bad'.
    assert [r[3] for r in flow if r[4] != 2] == [10.0 + i for i in range(10) if i != 7]
    assert flow[7][3] in (None, 17.0)
    assert [r[2] for r in flow] == [BASE_US + i * 1000 for i in range(10)]  # source timestamps kept
    assert [r[4] for r in flow] == [0, 0, 0, 1, 0, 0, 0, 2, 0, 0]
    pressure = [r for r in rows if r[1] == "pressure_kpa"]
    assert [r[3] for r in pressure] == pytest.approx([(0.5 + i) * 1000 for i in range(10)])


def test_wrong_password_is_refused(server: OpcUaPlantServer) -> None:
    if True:
        cfg = OpcUaConfig.model_validate(
            {
                "endpoint": server.endpoint,
                "username": "operator",
                "password": "wrong",
                "nodes": [{"node": server.node_id("pump-01", "flow"), "asset": "pump-01", "signal": "flow"}],
            }
        )
        source = OpcUaSource(cfg)
        source.connect()
        assert not source.wait_connected(2)
        source.close()


def test_server_restart_mid_stream_stores_exactly_what_was_sent(
    loop: Loop, server: OpcUaPlantServer, tmp_path: Path
) -> None:
    cfg = OpcUaConfig.model_validate(
        {
            "endpoint": server.endpoint,
            "username": "operator",
            "password": "s3cret",
            "publishing_interval_ms": 50,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "nodes": [
                {"node": server.node_id("cnc-01", "spindle_load"), "asset": "cnc-01", "signal": "load"}
            ],
        }
    )
    source = OpcUaSource(cfg)
    sink = MemorySink()
    worker = IngestWorker(source, sink, "demo", DeadLetterStore(tmp_path / "dl"), flush_interval_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    # (values start at 1: writing the initial 0.0 again would be no data change in OPC UA)
    expected = {("cnc-01", "load", BASE_US + i * 1000): float(i + 1) for i in range(10)}
    # Wait for these keys, not a row count: the tag's initial value is a row too.
    arrived = lambda n: all(k in sink.rows for k in list(expected)[:n])  # noqa: E731
    thread.start()
    try:
        assert wait_for(lambda: source.connected, 15)
        for i in range(5):
            loop.run(server.write("cnc-01", "spindle_load", float(i + 1), _when(i)))
            time.sleep(0.06)
        assert wait_for(lambda: arrived(5))
        loop.run(server.stop())
        loop.run(server.start())
        # Back on a new session and subscription (which re-sends the current value: at-least-once).
        assert wait_for(lambda: source.connects >= 2 and source.connected, 30)
        for i in range(5, 10):
            loop.run(server.write("cnc-01", "spindle_load", float(i + 1), _when(i)))
            time.sleep(0.06)
        assert wait_for(lambda: arrived(10))
    finally:
        stop.set()
        thread.join(10)
        loop.run(server.start())  # no-op when running: later tests find it up
    ours = {k: v for k, v in sink.rows.items() if k[2] < BASE_US + 10**9}
    assert ours == expected
    assert all(v == 0.0 for k, v in sink.rows.items() if k not in ours)  # the tag's initial value
    assert worker.stats.duplicates >= 1  # the re-sent current value, dropped by the idempotent write

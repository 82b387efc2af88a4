"""Modbus connector against an independent server (npm modbus-serial, tests/peers/modbus_server.js).

Issue 11 bug 2: one mapped register the PLC lacks (exception code 2) used to blank the whole
device and reconnect every 0.5 s. Now it is reported once (health and a dead letter naming the
exception) while every other register keeps flowing on the one connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from _peers import NodePeer
from axhub.bench._broker import free_port
from axhub.core.readings import WriteResult
from axhub.ingest.connectors.modbus import ModbusSource
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.tag_mapping import ModbusConfig
from axhub.ingest.worker import IngestWorker


class MemorySink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float | None]] = []

    def write(self, org: str, batch: pa.Table) -> WriteResult:
        self.rows += list(zip(batch["signal"].to_pylist(), batch["value"].to_pylist(), strict=True))
        return WriteResult(batch.num_rows)


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_a_register_the_plc_lacks_is_reported_once_and_the_rest_keep_flowing(tmp_path: Path) -> None:
    port = free_port()
    with NodePeer("modbus_server.js", str(port), ready_timeout=30) as peer:
        config = ModbusConfig.model_validate(
            {
                "host": "127.0.0.1",
                "port": port,
                "poll_interval_ms": 100,
                "registers": [
                    {"address": 36, "asset": "press-1", "signal": "r36"},
                    {"address": 38, "asset": "press-1", "signal": "r38"},
                    {"address": 42, "asset": "press-1", "signal": "missing"},  # the PLC has no 40..49
                    {"address": 60, "type": "int32", "asset": "press-1", "signal": "r60"},
                    {"address": 5, "kind": "input", "asset": "press-1", "signal": "in5"},
                ],
            }
        )
        source = ModbusSource(config)
        sink = MemorySink()
        deadletters = DeadLetterStore(tmp_path / "dl")
        worker = IngestWorker(source, sink, "org1", deadletters, flush_interval_s=0.1)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            polls = lambda name: sum(1 for s, _v in sink.rows if s == name)  # noqa: E731
            assert wait_for(lambda: min(polls(n) for n in ("r36", "r38", "r60", "in5")) >= 15)
            health = worker.health()
        finally:
            stop.set()
            thread.join(10)
        values = dict(sink.rows)
        # Decoded as the independent server encodes them: holding 100 + address, input 1000 + address.
        assert values["r36"] == 136 and values["r38"] == 138 and values["in5"] == 1005
        assert values["r60"] == (160 << 16) + 161
        assert "missing" not in values
        letters = list(deadletters.read("org1"))
        assert len(letters) == 1, [d.reason for d in letters]  # reported once, not once per poll
        assert letters[0].origin == "holding:42"
        assert (
            "exception 2 (illegal data address)" in letters[0].reason
            and "press-1/missing" in letters[0].reason
        )
        assert not health["ok"] and any("register 42" in p for p in health["problems"])
        assert health["connected"] and health["registers_read"] == 4
        # One connection for the whole run: no reconnect storm.
        assert [line for line in peer.lines if line.startswith("CONNECTIONS")] == ["CONNECTIONS 1"]

"""Integers a float64 cannot hold, from peers nobody on AX Hub wrote, stored exactly (issue 11).

An OPC UA server (node-opcua) and a Modbus TCP server (npm modbus-serial) hold Int64/UInt64
values (tests/peers/exact_ints_server.js); an MQTT 5 client (npm mqtt) sends them as JSON
integer literals and as Sparkplug B Int64/UInt64 metrics encoded by npm sparkplug-payload
(tests/peers/exact_ints_publisher.js). Through the connectors, the worker and the real
time-series store (write-ahead log and Parquet), 2^53+1, 2^63-1 and -2^63 come back identical
(``query(..., exact=True)``); 2^64-1, which no int64 holds, is dead-lettered with the reason
and never stored rounded.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from _peers import NodePeer, require_node_peers
from axhub.bench._broker import free_port
from axhub.core.readings import ReadingSink
from axhub.ingest.connectors.base import Source
from axhub.ingest.connectors.modbus import ModbusSource
from axhub.ingest.connectors.mqtt import MqttSource
from axhub.ingest.connectors.opcua import OpcUaSource
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.tag_mapping import ModbusConfig, MqttConfig, OpcUaConfig
from axhub.ingest.worker import IngestWorker
from axhub.store.timeseries import TimeSeriesStore

P53 = 2**53 + 1
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
U64_MAX = 2**64 - 1
BROKER = ("127.0.0.1", 1883)
T = 1_700_000_000_000_000  # µs


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def exact_values(store: TimeSeriesStore, asset: str) -> dict[str, list[int]]:
    """Each signal's stored values as exact integers (value_int where set, else value)."""
    frame = store.query("org1", asset, exact=True)
    out: dict[str, list[int]] = {}
    for signal, value, exact in zip(frame["signal"], frame["value"], frame["value_int"], strict=True):
        out.setdefault(str(signal), []).append(int(value) if pd.isna(exact) else int(exact))
    return out


class Running:
    """An ingest worker on its own thread, stopped (and flushed) on exit."""

    def __init__(
        self, source: Source, sink: ReadingSink, deadletters: DeadLetterStore, *, connect: bool = True
    ) -> None:
        self.worker = IngestWorker(source, sink, "org1", deadletters, flush_interval_s=0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.worker.run, args=(self.stop,), kwargs={"connect": connect}, daemon=True
        )

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    require_node_peers()
    opcua_port, modbus_port = free_port(), free_port()
    pki = tmp_path_factory.mktemp("opcua-pki")
    with NodePeer("exact_ints_server.js", str(opcua_port), str(modbus_port), str(pki)):
        yield opcua_port, modbus_port


def test_opcua_int64_and_uint64_come_back_identical(servers: tuple[int, int], tmp_path: Path) -> None:
    opcua_port, _ = servers
    names = {"I53": "i53", "IMax": "imax", "IMin": "imin", "U53": "u53", "UMax": "umax"}
    config = OpcUaConfig.model_validate(
        {
            "endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/axhub",
            "publishing_interval_ms": 100,
            "nodes": [{"node": f"ns=1;s={n}", "asset": "meter-1", "signal": s} for n, s in names.items()],
        }
    )
    store = TimeSeriesStore(tmp_path / "ts")
    deadletters = DeadLetterStore(tmp_path / "dl")
    try:
        with Running(OpcUaSource(config), store, deadletters):
            assert wait_for(
                lambda: deadletters.count("org1") >= 1 and len(store.list_signals("org1", "meter-1")) >= 4
            )
        got = exact_values(store, "meter-1")
        assert {s: v[0] for s, v in got.items()} == {"i53": P53, "imax": I64_MAX, "imin": I64_MIN, "u53": P53}
        reasons = [d.reason for d in deadletters.read("org1")]
        assert any("18446744073709551615" in r and "64-bit signed range" in r for r in reasons), reasons
    finally:
        store.close()


def test_modbus_64_bit_registers_come_back_identical(servers: tuple[int, int], tmp_path: Path) -> None:
    _, modbus_port = servers
    registers: list[dict[str, Any]] = [
        {"address": 0, "type": "int64", "signal": "i53"},
        {"address": 4, "type": "int64", "signal": "imax"},
        {"address": 8, "type": "int64", "signal": "imin"},
        {"address": 12, "type": "uint64", "signal": "u53"},
        {"address": 16, "type": "uint64", "signal": "umax"},
        {"address": 20, "type": "int64", "word_order": "little", "signal": "neg53"},
    ]
    config = ModbusConfig.model_validate(
        {
            "host": "127.0.0.1",
            "port": modbus_port,
            "poll_interval_ms": 100,
            "registers": [{**r, "asset": "meter-2"} for r in registers],
        }
    )
    store = TimeSeriesStore(tmp_path / "ts")
    deadletters = DeadLetterStore(tmp_path / "dl")
    try:
        source = ModbusSource(config)
        with Running(source, store, deadletters) as running:
            assert wait_for(lambda: source.polls >= 5 and len(store.list_signals("org1", "meter-2")) >= 5)
            health = running.worker.health()
        got = exact_values(store, "meter-2")
        assert set(got) == {"i53", "imax", "imin", "u53", "neg53"}  # umax: no int64 holds it
        for signal, want in {"i53": P53, "imax": I64_MAX, "imin": I64_MIN, "u53": P53, "neg53": -P53}.items():
            assert set(got[signal]) == {want}, signal
        # Reported once (not once per poll), and in the health while it lasts.
        [letter] = list(deadletters.read("org1"))
        assert letter.origin == "holding:16" and "64-bit signed range" in letter.reason
        assert "meter-2/umax" in letter.reason
        assert any("register 16" in p and "readings not stored" in p for p in health["problems"])
    finally:
        store.close()


def test_json_and_sparkplug_integers_over_mqtt_come_back_identical(tmp_path: Path) -> None:
    require_node_peers()
    try:
        socket.create_connection(BROKER, timeout=1).close()
    except OSError:
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883; start it (.ci/run does)")
    prefix = f"axint/{uuid.uuid4().hex[:8]}"
    group = f"g{uuid.uuid4().hex[:6]}"
    config = MqttConfig.model_validate(
        {
            "port": BROKER[1],
            "client_id": f"w-{uuid.uuid4().hex[:8]}",
            "topics": [
                {"topic": f"{prefix}/{{asset}}/{{signal}}"},
                {"topic": f"spBv1.0/{group}/#", "format": "sparkplug"},
            ],
        }
    )
    source = MqttSource(config)
    # Through the write-ahead log (what `axhub run ingest` uses), then compacted into Parquet.
    store = TimeSeriesStore(tmp_path / "ts", wal_max_age_s=3600)
    deadletters = DeadLetterStore(tmp_path / "dl")
    source.connect()
    assert source.wait_connected(5)
    time.sleep(0.3)  # the SUBACK
    try:
        with Running(source, store.wal_sink(), deadletters, connect=False):
            with NodePeer("exact_ints_publisher.js", str(BROKER[1]), prefix, group, ready_timeout=30) as peer:
                peer.run_to_end(30)
            # u64max twice as JSON (one message, one array) and once as Sparkplug.
            assert wait_for(lambda: deadletters.count("org1") >= 3 and store.count("org1") >= 12)
        for flushed in (False, True):  # from the log, then from Parquet
            if flushed:
                store.flush_wal("org1")
            json_got = exact_values(store, "meter-1")
            assert json_got == {"p53": [P53, P53], "i64max": [I64_MAX] * 2, "i64min": [I64_MIN] * 2}
            spb = exact_values(store, "edge-9")
            assert spb["p53"] == [P53, -P53] and spb["i64max"] == [I64_MAX] and spb["i64min"] == [I64_MIN]
            assert spb["u53"] == [P53, I64_MAX] and "u64max" not in spb
        reasons = [d.reason for d in deadletters.read("org1")]
        assert sum("18446744073709551615" in r for r in reasons) == 3, reasons
    finally:
        store.close()

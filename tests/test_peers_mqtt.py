"""MQTT payloads from an independent MQTT 5 client (npm mqtt) and an independent Sparkplug B
encoder (npm sparkplug-payload), through the real broker: tests/peers/mqtt_publisher.js.

Each gateway shape is either stored correctly or dead-lettered with a reason (issue 11 bug 7),
Korean names from MQTT are stored (issue 10), and the Sparkplug host behaviour holds: aliases,
sequence check with a rebirth request, deaths as bad-quality readings.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from _peers import PEERS, NodePeer, require_node_peers
from axhub.core.domain import Quality
from axhub.core.reading_rules import asset_id_from_name
from axhub.core.readings import WriteResult
from axhub.ingest.connectors.mqtt import MqttSource
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.tag_mapping import MqttConfig
from axhub.ingest.worker import IngestWorker

BROKER = ("127.0.0.1", 1883)
T = 1_700_000_000_000_000  # µs
PRESS2 = asset_id_from_name("Press 1")


class MemorySink:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int], tuple[float | None, int]] = {}

    def write(self, org: str, batch: pa.Table) -> WriteResult:
        for a, s, t, v, q in zip(
            batch["asset"].to_pylist(),
            batch["signal"].to_pylist(),
            batch["ts"].cast(pa.int64()).to_pylist(),
            batch["value"].to_pylist(),
            batch["quality"].to_pylist(),
            strict=True,
        ):
            self.rows[(a, s, t)] = (v, q)
        return WriteResult(batch.num_rows)

    def signal(self, asset: str, signal: str) -> list[tuple[int, float | None, int]]:
        return sorted((t, v, q) for (a, s, t), (v, q) in self.rows.items() if a == asset and s == signal)


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture
def broker() -> None:
    try:
        socket.create_connection(BROKER, timeout=1).close()
    except OSError:
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883; start it (.ci/run does)")


def test_gateway_shapes_and_sparkplug_from_independent_clients(broker: None, tmp_path: Path) -> None:
    require_node_peers()
    prefix = f"axpeer/{uuid.uuid4().hex[:8]}"
    group = f"g{uuid.uuid4().hex[:6]}"
    topics: list[dict[str, Any]] = [
        {"topic": f"{prefix}/json/{{asset}}/{{signal}}"},
        {"topic": f"{prefix}/tb/{{asset}}"},
        {"topic": f"{prefix}/gw", "make_ids": True},
        {"topic": f"{prefix}/kep/{{asset}}"},
        {"topic": f"{prefix}/nr/{{asset}}/{{signal}}"},
        {"topic": f"{prefix}/str/{{asset}}/{{signal}}", "numbers_as_strings": True},
        {"topic": f"spBv1.0/{group}/#", "format": "sparkplug", "make_ids": True},
    ]
    config = MqttConfig.model_validate(
        {"port": BROKER[1], "client_id": f"w-{uuid.uuid4().hex[:8]}", "topics": topics}
    )
    source = MqttSource(config)
    sink = MemorySink()
    deadletters = DeadLetterStore(tmp_path / "dl")
    worker = IngestWorker(source, sink, "org1", deadletters, flush_interval_s=0.05)
    source.connect()
    assert source.wait_connected(5)
    time.sleep(0.3)  # the SUBACK
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"connect": False}, daemon=True)
    thread.start()
    cases = json.loads((PEERS / "cases.json").read_text(encoding="utf-8"))
    try:
        with NodePeer("mqtt_publisher.js", str(BROKER[1]), prefix, group, ready_timeout=30) as peer:
            lines = peer.run_to_end(30)
        assert "REBIRTH Node Control/Rebirth=true" in lines  # asked for after the seq gap
        assert wait_for(lambda: len(sink.signal(PRESS2, "big")) >= 2 and deadletters.count("org1") >= 4)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
    good, bad, uncertain = int(Quality.GOOD), int(Quality.BAD), int(Quality.UNCERTAIN)
    # JSON shapes, each stored as the gateway meant it.
    assert sink.signal("press-1", "온도") == [(T, 21.5, good)]  # a Korean name from MQTT
    assert sink.signal("press-1", "압력") == [(T, 1.25, good)] and sink.signal("press-1", "rpm")[0][1] == 1500
    [(humid_ts, humid, _q)] = sink.signal("press-1", "humidity")  # no time sent: arrival time
    assert humid == 42 and abs(humid_ts / 1e6 - time.time()) < 120
    assert sink.signal(asset_id_from_name("Device A"), "temp") == [(T, 1.5, good)]
    assert sink.signal(asset_id_from_name("프레스 2"), "온도") == [(T, 2.5, good)]
    assert source.display_names()[asset_id_from_name("프레스 2")] == "프레스 2"
    assert sink.signal("press-1", "Channel1.Device1.Tag1") == [(T + 1000, 123, good)]
    assert sink.signal("press-1", "Channel1.Device1.Tag2") == [(T + 2000, 7, bad)]  # Kepware q: false
    assert sink.signal("press-1", "speed") == [(T, 3.5, good)]  # Node-RED 'timestamp'
    assert sink.signal("press-1", "s") == [(T, 12.5, good)]  # text number, opted in per rule
    assert sink.signal("press-1", "q192") == [(T, 1, good)]  # OPC Classic quality 192
    assert sink.signal("press-1", "q64") == [(T, 1, uncertain)]
    assert sink.signal("press-1", "q0") == [(T, 1, good)]  # AX Hub's own 0 = good
    assert sink.signal("press-1", "big") == [(T, 1e39, good)]
    assert sink.signal("press-1", "nan") == []
    # Sparkplug B, decoded from the independent encoder's bytes.
    assert [v for _t, v, _q in sink.signal(PRESS2, "온도")][:2] == [20.5, 21.5]  # DDATA by alias
    assert [(t, v) for t, v, _q in sink.signal(PRESS2, "big")][:2] == [(T, 1), (T + 1_500_000, -123456789012)]
    assert sink.signal(PRESS2, "Door Open")[1][1] == 1.0
    assert [q for _t, _v, q in sink.signal(PRESS2, "ok")][:2] == [good, uncertain]  # Quality 192, 64
    assert [v for _t, v, _q in sink.signal("edge-1", "Motor.Speed")][:3] == [1450.5, 1500.25, 1600]
    assert [v for _t, v, _q in sink.signal("edge-1", "count")][:2] == [7, -5]  # Int32 two's complement
    # Deaths: the device's metrics go bad at its DDEATH time; the node's at the NDEATH arrival.
    assert (T + 4_000_000, None, bad) in sink.signal(PRESS2, "온도")  # DDEATH
    assert sink.signal(PRESS2, "온도")[-1][1:] == (None, bad)  # and again at the node's death
    last_speed = sink.signal("edge-1", "Motor.Speed")[-1]
    assert last_speed[1] is None and last_speed[2] == bad and abs(last_speed[0] / 1e6 - time.time()) < 120
    # What was refused, with its reason.
    reasons = [d.reason for d in deadletters.read("org1")]
    assert any("has a time in 'time'" in r for r in reasons)  # never silently arrival time
    assert any("is text" in r and "numbers_as_strings" in r for r in reasons)
    assert any("NaN" in r for r in reasons)
    assert any("'label' is String" in r for r in reasons)  # reported once, at birth
    assert any("sequence gap" in r and "rebirth requested" in r for r in reasons)
    assert len(reasons) == 5, reasons
    assert len(cases) == 14

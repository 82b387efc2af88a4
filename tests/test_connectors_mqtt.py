"""MQTT connector: mapping, payloads, and behaviour against the real Mosquitto broker.

Broker tests use the shared broker on 127.0.0.1:1883 with unique topics and client ids, so
they can run beside other tests. Restart tests (own broker) are in test_worker_reliability.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pyarrow as pa
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from axhub.core.errors import InputValidationError
from axhub.core.readings import WriteResult
from axhub.ingest.connectors.json_payload import JsonPayloadParser
from axhub.ingest.connectors.mqtt import MqttSource
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.tag_mapping import MqttConfig, MqttTopicRule, load_mapping, parse_mapping
from axhub.ingest.worker import IngestWorker

BROKER = ("127.0.0.1", 1883)
T0_MS = 1_700_000_000_000


class MemorySink:
    """Idempotent on (asset, signal, ts) like the real store; records every write."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.rows: dict[tuple[str, str, int], float | None] = {}
        self.writes = 0
        self.delay_s = delay_s

    def write(self, org: str, batch: pa.Table) -> WriteResult:
        time.sleep(self.delay_s)
        self.writes += 1
        new = 0
        ts = batch["ts"].cast(pa.int64()).to_pylist()
        for a, s, t, v in zip(
            batch["asset"].to_pylist(),
            batch["signal"].to_pylist(),
            ts,
            batch["value"].to_pylist(),
            strict=True,
        ):
            if (a, s, t) not in self.rows:
                new += 1
            self.rows[(a, s, t)] = v
        return WriteResult(new, batch.num_rows - new)


def _broker_up() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def prefix() -> str:
    return f"axtest/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker() -> None:
    if not _broker_up():
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883; start it (.ci/run does)")


def _config(prefix: str, **kw: Any) -> MqttConfig:
    topics = kw.pop(
        "topics", [{"topic": f"{prefix}/{{asset}}/batch"}, {"topic": f"{prefix}/one/{{asset}}/{{signal}}"}]
    )
    return MqttConfig.model_validate(
        {"port": BROKER[1], "client_id": f"w-{uuid.uuid4().hex[:8]}", "topics": topics, **kw}
    )


@pytest.fixture
def publisher() -> Iterator[mqtt.Client]:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.connect(*BROKER)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def publish_all(client: mqtt.Client, items: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(10)


def batch_payload(start_ms: int, n: int, signal: str = "temp") -> bytes:
    return json.dumps([{"signal": signal, "ts": start_ms + i, "value": i * 0.5} for i in range(n)]).encode()


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def run_worker(worker: IngestWorker) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"connect": False}, daemon=True)
    thread.start()
    return stop, thread


# ------------------------------------------------------------------ mapping and payloads
def test_topic_template_gives_filter_and_values() -> None:
    rule = MqttTopicRule(topic="plant/{site}/{asset}/{signal}", asset="{site}-{asset}")
    assert rule.subscription == "plant/+/+/+"
    assert rule.match("plant/s1/pump/temp") == {"site": "s1", "asset": "pump", "signal": "temp"}
    assert rule.match("plant/s1/pump") is None
    assert rule.match("other/s1/pump/temp") is None
    hashed = MqttTopicRule(topic="f/{asset}/#")
    assert hashed.subscription == "f/+/#"
    assert hashed.match("f/a/x/y") == {"asset": "a", "rest": "x/y"}


def test_shared_group_prefixes_subscriptions() -> None:
    cfg = MqttConfig(topics=[MqttTopicRule(topic="p/{asset}/{signal}")], shared_group="g1")
    assert cfg.subscriptions() == ["$share/g1/p/+/+"]
    with pytest.raises(ValueError, match="MQTT version '5'"):
        MqttConfig(topics=[MqttTopicRule(topic="p/#")], shared_group="g1", version="3.1.1")


def test_mapping_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("mqtt:\n  port: 1883\n  topics:\n    - topic: a/+x/b\n")
    with pytest.raises(InputValidationError) as err:
        load_mapping(path)
    text = str(err.value)
    assert str(path) in text and "mqtt.topics.0.topic" in text and "whole topic level" in text
    path.write_text("mqtt: [unclosed\n")
    with pytest.raises(InputValidationError, match="not valid YAML"):
        load_mapping(path)
    with pytest.raises(InputValidationError, match="names no connection"):
        parse_mapping({"org": "demo"})


def test_payload_shapes() -> None:
    parser = JsonPayloadParser(MqttTopicRule(topic="p/{asset}/{signal}", scale=2.0, rename={"t": "temp"}))
    topic = {"asset": "pump", "signal": "t"}
    single, bad = parser.parse(b'{"ts": 1700000000000, "value": 1.5, "quality": "uncertain"}', topic, 0)
    assert not bad and single.to_pylist()[0]["value"] == 3.0 and single["quality"][0].as_py() == 1
    assert single["signal"][0].as_py() == "temp"
    assert single["ts"].cast(pa.int64())[0].as_py() == 1_700_000_000_000_000
    record, _ = parser.parse(b'{"ts": "2024-05-01T00:00:00Z", "values": {"a": 1, "b": 2}}', topic, 0)
    assert sorted(record["signal"].to_pylist()) == ["a", "b"] and record["value"].to_pylist() == [2.0, 4.0]
    cols, _ = parser.parse(b'{"ts": [1, 2, 3], "values": {"a": [1, 2, 3]}}', topic, 0)
    assert cols.num_rows == 3 and cols["value"].to_pylist() == [2.0, 4.0, 6.0]
    bare, _ = parser.parse(b"7", topic, 123)
    assert bare["value"][0].as_py() == 14.0 and bare["ts"].cast(pa.int64())[0].as_py() == 123


def test_bad_rows_are_reported_and_good_rows_kept() -> None:
    parser = JsonPayloadParser(MqttTopicRule(topic="p/{asset}"))
    payload = json.dumps(
        [
            {"signal": "a", "ts": 1, "value": 1.0},
            {"signal": "b", "ts": 2, "value": "high"},
            {"ts": 3, "value": 2.0},
            {"signal": "c", "ts": "yesterday", "value": 1.0},
        ]
    ).encode()
    table, reasons = parser.parse(payload, {"asset": "pump"}, 0)
    assert table["signal"].to_pylist() == ["a"]
    assert len(reasons) == 3
    assert reasons[0].startswith("item 1") and "value must be a number" in reasons[0]
    assert "no signal" in reasons[1] and "ISO-8601" in reasons[2]
    _, reasons = parser.parse(b"{not json", {"asset": "pump"}, 0)
    assert reasons and "not valid JSON" in reasons[0]


# ------------------------------------------------------------------------- real broker
@pytest.mark.mqtt
def test_worker_stores_exactly_what_was_published(
    broker: None, prefix: str, publisher: mqtt.Client, tmp_path: Path
) -> None:
    source = MqttSource(_config(prefix))
    sink = MemorySink()
    deadletters = DeadLetterStore(tmp_path / "dl")
    worker = IngestWorker(source, sink, "demo", deadletters, flush_rows=500, flush_interval_s=0.05)
    source.connect()
    assert source.wait_connected(5)
    stop, thread = run_worker(worker)
    items = [(f"{prefix}/pump-{i % 3}/batch", batch_payload(T0_MS + i * 100, 100)) for i in range(30)]
    items.append((f"{prefix}/one/press-1/pressure", b'{"ts": 1700000000000, "value": 4.2}'))
    items.append((f"{prefix}/one/press-1/pressure", b'{"ts": 1700000000000, "value": '))  # malformed
    items.append((f"{prefix}/pump-1/batch", b'[{"signal": "temp", "ts": 1, "value": "x"}]'))
    publish_all(publisher, items)
    expected = {
        (f"pump-{i % 3}", "temp", (T0_MS + i * 100 + j) * 1000) for i in range(30) for j in range(100)
    }
    expected.add(("press-1", "pressure", T0_MS * 1000))
    assert wait_for(lambda: len(sink.rows) >= len(expected) and deadletters.count("demo") >= 2)
    stop.set()
    thread.join(5)
    assert set(sink.rows) == expected
    assert sink.rows[("press-1", "pressure", T0_MS * 1000)] == 4.2
    reasons = sorted(d.reason for d in deadletters.read("demo"))
    assert len(reasons) == 2
    assert "not valid JSON" in reasons[1] and "value must be a number" in reasons[0]
    assert worker.stats.duplicates == 0


@pytest.mark.mqtt
@pytest.mark.parametrize("version", ["3.1.1", "5"])
def test_persistent_session_delivers_what_was_published_while_down(
    broker: None, prefix: str, publisher: mqtt.Client, version: str
) -> None:
    cfg = _config(prefix, version=version)
    first = MqttSource(cfg)
    first.connect()
    assert first.wait_connected(5)
    time.sleep(0.2)  # the SUBACK: the broker now keeps a session with our subscription
    first.close()
    publish_all(publisher, [(f"{prefix}/m1/batch", batch_payload(T0_MS + i * 10, 10)) for i in range(20)])
    second = MqttSource(cfg)
    second.connect()
    got: list[Any] = []
    assert wait_for(lambda: bool(got.extend(second.poll(0.1))) or sum(d.rows for d in got) >= 200)
    for d in got:
        d.ack()
    second.close()
    assert sum(d.rows for d in got) == 200


@pytest.mark.mqtt
def test_unacked_messages_are_redelivered_after_reconnect(
    broker: None, prefix: str, publisher: mqtt.Client
) -> None:
    cfg = _config(prefix)
    first = MqttSource(cfg)
    first.connect()
    assert first.wait_connected(5)
    time.sleep(0.2)

    # A delivery may stand for several messages (the source gathers what arrived): rows count.
    def rows(ds: list[Any]) -> int:
        return sum(d.rows for d in ds)

    def stamps(ds: list[Any]) -> set[Any]:
        return {t for d in ds for t in d.batch["ts"].to_pylist()}

    publish_all(publisher, [(f"{prefix}/m1/batch", batch_payload(T0_MS + i * 10, 10)) for i in range(2)])
    acked: list[Any] = []
    assert wait_for(lambda: bool(acked.extend(first.poll(0.1))) or rows(acked) >= 20)
    for d in acked:
        d.ack()
    time.sleep(0.2)  # let the PUBACKs leave before the next messages
    publish_all(publisher, [(f"{prefix}/m1/batch", batch_payload(T0_MS + i * 10, 10)) for i in range(2, 5)])
    unacked: list[Any] = []
    assert wait_for(lambda: bool(unacked.extend(first.poll(0.1))) or rows(unacked) >= 30)
    first.close()  # these three were never acked (as if the worker died before writing)
    second = MqttSource(cfg)
    second.connect()
    again: list[Any] = []
    assert wait_for(lambda: bool(again.extend(second.poll(0.1))) or rows(again) >= 30)
    time.sleep(0.3)
    again.extend(second.poll(0.1))
    for d in again:
        d.ack()
    second.close()
    assert stamps(again) == stamps(unacked) and rows(again) == 30
    assert not stamps(again) & stamps(acked)


@pytest.mark.mqtt
def test_shared_subscription_splits_the_stream(broker: None, prefix: str, publisher: mqtt.Client) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    sources = [MqttSource(_config(prefix, shared_group=group)) for _ in range(2)]
    for s in sources:
        s.connect()
        assert s.wait_connected(5)
    time.sleep(0.3)
    publish_all(publisher, [(f"{prefix}/m{i}/batch", batch_payload(T0_MS + i, 1)) for i in range(60)])
    got: list[list[Any]] = [[], []]

    def total() -> int:
        for i, s in enumerate(sources):
            got[i].extend(s.poll(0.05))
        return sum(d.messages for g in got for d in g)

    assert wait_for(lambda: total() >= 60)
    time.sleep(0.2)
    total()
    for s, g in zip(sources, got, strict=True):
        for d in g:
            d.ack()
        s.close()
    assets = [{a for d in g for a in d.batch["asset"].to_pylist()} for g in got]
    assert sum(d.rows for g in got for d in g) == 60  # each message to exactly one worker
    assert assets[0].isdisjoint(assets[1]) and len(assets[0] | assets[1]) == 60
    assert got[0] and got[1]  # both workers took part


@pytest.mark.mqtt
def test_slow_store_applies_back_pressure_and_loses_nothing(
    broker: None, prefix: str, publisher: mqtt.Client, tmp_path: Path
) -> None:
    source = MqttSource(_config(prefix, receive_maximum=5))
    sink = MemorySink(delay_s=0.15)
    worker = IngestWorker(
        source, sink, "demo", DeadLetterStore(tmp_path / "dl"), flush_rows=10, flush_interval_s=0.01
    )
    source.connect()
    assert source.wait_connected(5)
    stop, thread = run_worker(worker)
    publish_all(publisher, [(f"{prefix}/m1/batch", batch_payload(T0_MS + i * 10, 10)) for i in range(40)])
    assert wait_for(lambda: len(sink.rows) >= 400, timeout=30)
    stop.set()
    thread.join(5)
    assert len(sink.rows) == 400
    # Never more than 'receive_maximum' unacknowledged messages were handed to the worker.
    assert worker.stats.max_pending_rows <= 5 * 10
    assert sink.writes >= 8

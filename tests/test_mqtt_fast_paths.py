"""The MQTT source's per-message shortcuts (batched PUBACKs, buffered reads, counter
back-pressure, names remembered across arrays) give exactly what the plain paths give.
Broker tests use the shared Mosquitto on 127.0.0.1:1883 with unique topics and client ids."""

from __future__ import annotations

import json
import random
import socket
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from axhub.ingest.connectors.json_payload import BatchBuilder, JsonPayloadParser
from axhub.ingest.connectors.mqtt import MqttSource, SupervisedClient, make_client
from axhub.ingest.tag_mapping import MqttConfig, MqttTopicRule

BROKER = ("127.0.0.1", 1883)


def _config(prefix: str, **kw: Any) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "port": BROKER[1],
            "client_id": f"fast-{uuid.uuid4().hex[:8]}",
            "topics": [{"topic": f"{prefix}/{{asset}}/{{signal}}"}],
            **kw,
        }
    )


def _client(version: str = "5") -> SupervisedClient:
    client = make_client(_config("x", version=version), manual_ack=True, factory=SupervisedClient)
    assert isinstance(client, SupervisedClient)
    return client


@pytest.mark.parametrize("version", ["3.1.1", "5"])
def test_ack_many_sends_the_bytes_paho_sends_one_by_one(version: str, monkeypatch: Any) -> None:
    client = _client(version)
    queued: list[bytes] = []
    monkeypatch.setattr(client, "_packet_queue", lambda _cmd, packet, *_a, **_k: queued.append(bytes(packet)))
    mids = [1, 2, 255, 256, 4097, 65535, 7]
    for mid in mids:
        client.ack(mid, 1)
    one_by_one = b"".join(queued)
    queued.clear()
    client.ack_many(mids)
    assert len(queued) == 1 and queued[0] == one_by_one
    queued.clear()
    client.ack_many([])
    assert queued == []


class _ChunkedSocket:
    """A socket whose recv returns what the network happened to deliver: random short reads."""

    def __init__(self, data: bytes, seed: int) -> None:
        self.data = data
        self.pos = 0
        self.calls = 0
        self.rng = random.Random(seed)

    def recv(self, bufsize: int) -> bytes:
        self.calls += 1
        if self.pos >= len(self.data):
            raise BlockingIOError
        n = min(bufsize, self.rng.randint(1, 5000))
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def close(self) -> None:
        pass


def test_buffered_recv_returns_the_stream_unchanged_with_fewer_system_calls() -> None:
    client = _client()
    data = bytes(random.Random(1).randbytes(200_000))
    sock = _ChunkedSocket(data, seed=2)
    client._sock = sock  # type: ignore[assignment]
    rng = random.Random(3)
    got = bytearray()
    reads = 0
    while True:
        try:
            part = client._sock_recv(rng.choice([1, 1, 2, 40, 700]))
        except BlockingIOError:
            break
        assert part
        got += part
        reads += 1
    assert bytes(got) == data
    assert sock.calls < reads / 5
    # A new connection never sees bytes buffered from the old one.
    client._sock = _ChunkedSocket(b"new", seed=4)  # type: ignore[assignment]
    assert client._sock_recv(1) == b"n"
    client._sock = None


@pytest.fixture
def broker() -> None:
    try:
        with socket.create_connection(BROKER, timeout=1):
            pass
    except OSError:
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883; start it (.ci/run does)")


@pytest.mark.mqtt
def test_small_window_many_messages_all_delivered_once_and_acked(broker: None) -> None:
    """A window far smaller than the stream: back-pressure holds, every message arrives once,
    and the batched PUBACKs reach the broker (a new connection gets nothing again)."""
    prefix = f"axtest/{uuid.uuid4().hex[:8]}"
    cfg = _config(prefix, version="5", receive_maximum=20)
    source = MqttSource(cfg)
    source.connect()
    assert source.wait_connected(5)
    time.sleep(0.2)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    publisher.connect(*BROKER)
    publisher.loop_start()
    n = 600
    infos = [
        publisher.publish(
            f"{prefix}/m{i % 3}/s{i % 2}", json.dumps({"ts": 1_700_000_000_000 + i, "value": i}), qos=1
        )
        for i in range(n)
    ]
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while len(seen) < n and time.monotonic() < deadline:
        for d in source.poll(0.1):
            assert d.messages <= 20  # never more in hand than the window
            seen.extend(d.batch["value"].to_pylist())
            d.ack()
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()
    time.sleep(0.3)  # the last PUBACKs leave
    source.close()
    assert sorted(seen) == [float(i) for i in range(n)]
    again = MqttSource(cfg)
    again.connect()
    assert again.wait_connected(5)
    time.sleep(0.5)
    redelivered = again.poll(0.2)
    again.close()
    assert sum(d.rows for d in redelivered) == 0


_ARRAY_ROW = st.fixed_dictionaries(
    {"ts": st.integers(1_600_000_000_000, 1_800_000_000_000), "value": st.floats(-1e6, 1e6)},
    optional={"signal": st.sampled_from(["t1", "t2", "압력", ""]), "asset": st.sampled_from(["m-02", "m 3"])},
)


@pytest.mark.parametrize(
    "rule", [{"topic": "f/{asset}/{signal}"}, {"topic": "f/{asset}/{signal}", "rename": {"t1": "temp"}}]
)
@settings(max_examples=40, deadline=None)
@given(messages=st.lists(st.lists(_ARRAY_ROW, min_size=1, max_size=6), min_size=1, max_size=8))
def test_name_codes_kept_across_messages_give_what_the_general_path_gives(
    rule: dict[str, Any], messages: list[list[dict[str, Any]]]
) -> None:
    """One parser reads many arrays (names remembered from earlier messages, keys missing or
    escaped); gathered into one batch they equal the general path's readings of each."""
    parser = JsonPayloadParser(MqttTopicRule.model_validate(rule))
    general = JsonPayloadParser(MqttTopicRule.model_validate(rule))
    values = {"asset": "m-01", "signal": "t1"}
    builder = BatchBuilder()
    want: list[tuple[Any, ...]] = []
    want_reasons = []
    got_reasons = []
    for rows in messages * 2:  # every name seen again
        got_reasons.append(builder.add(parser, json.dumps(rows).encode(), values, 0))
        slow, reasons = general.parse(
            json.dumps([{**r, "quality": "good"} for r in rows]).encode(), values, 0
        )
        want_reasons.append(reasons)
        want += _rows(slow)
    assert got_reasons == want_reasons
    assert _rows(builder.table()) == want


def test_escaped_key_is_read_as_the_key_it_spells() -> None:
    parser = JsonPayloadParser(MqttTopicRule.model_validate({"topic": "f/{asset}/{signal}"}))
    payload = b'[{"ts": 1700000000000, "value": 1.0, "\\u0061sset": "m-09", "sign\\u0061l": "p"}]'
    table, reasons = parser.parse(payload, {"asset": "m-01", "signal": "t1"}, 0)
    assert not reasons
    assert table["asset"].to_pylist() == ["m-09"] and table["signal"].to_pylist() == ["p"]


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    table = table.set_column(2, "ts", table["ts"].cast(pa.int64()))
    cols = [table[c].to_pylist() for c in ("asset", "signal", "ts", "value", "quality")]
    return list(zip(*cols, strict=True))


def _publish_packet(topic: bytes, payload: bytes, mid: int, qos: int, props: bytes | None) -> bytearray:
    """A PUBLISH's variable header and payload as paho holds it after the fixed header."""
    out = bytearray(len(topic).to_bytes(2, "big") + topic)
    if qos:
        out += mid.to_bytes(2, "big")
    if props is not None:  # MQTT 5: property length (one byte here), then the properties
        out += bytes([len(props)]) + props
    return out + payload


@pytest.mark.parametrize("version", ["3.1.1", "5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize(
    "topic,props",
    [
        (b"f/m-01/t1", b""),
        ("f/압력/t1".encode(), b""),
        (b"f/m-01/t1", b"\x02\x00\x00\x00\x3c"),  # message expiry 60 s: paho's own path
        (b"f/\xff/t1", b""),  # not UTF-8
    ],
)
def test_lean_publish_path_hands_over_what_paho_hands_over(
    version: str, qos: int, topic: bytes, props: bytes
) -> None:
    payload = b'{"ts": 1700000000000, "value": 1.5}'
    packet = _publish_packet(topic, payload, 4242, qos, props if version == "5" else None)
    got: dict[bool, list[tuple[Any, ...]]] = {True: [], False: []}
    lean_calls: list[int] = []
    for use_lean in (True, False):
        out = got[use_lean]
        client = _client(version)

        def take(t: str, p: Any, m: int, q: int, out: list[tuple[Any, ...]] = out) -> None:
            lean_calls.append(1)
            out.append((t, bytes(p), m, q))

        def on_message(_c: Any, _u: Any, msg: Any, out: list[tuple[Any, ...]] = out) -> None:
            try:
                name = msg.topic
            except UnicodeDecodeError:
                name = "not utf-8"
            out.append((name, bytes(msg.payload), msg.mid, msg.qos))

        client.on_plain_publish = take if use_lean else None
        client.on_message = on_message
        client._in_packet["command"] = 0x30 | (qos << 1)
        client._in_packet["packet"] = bytearray(packet)
        client._handle_publish()
    # QoS 2 reaches the application only at PUBREL (paho's own path in both).
    assert got[True] == got[False] and len(got[False]) == (0 if qos == 2 else 1)
    paho_only = qos == 2 or (props and version == "5") or topic == b"f/\xff/t1"
    assert len(lean_calls) == (0 if paho_only else 1)

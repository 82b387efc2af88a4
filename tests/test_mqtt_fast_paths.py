"""The MQTT source's per-message shortcuts around paho (batched PUBACKs, buffered reads,
counter back-pressure) give exactly what paho's own paths give. Broker tests use the shared
Mosquitto on 127.0.0.1:1883 with unique topics and client ids."""

from __future__ import annotations

import json
import random
import socket
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from axhub.ingest.connectors.mqtt import MqttSource, SupervisedClient, make_client
from axhub.ingest.tag_mapping import MqttConfig

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

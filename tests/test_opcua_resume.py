"""OPC UA loses nothing when the worker is SIGKILLed (issue 11's soak: 1,200 changes per run).

Against an independent server (node-opcua, ``tests/peers/opcua_bench_server.js``): a worker
process stores part of what it received, acknowledges less, and is killed; the next one
takes the subscription over and every change the server made is stored exactly once. The
acknowledgement ledger and the state file are checked on their own first.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.common.subscription import StatusChangeEvent

from _peers import require_node_peers
from axhub.bench.soak_opcua import OpcUaServer
from axhub.ingest.connectors.opcua import OpcUaSource, _ends_subscription
from axhub.ingest.connectors.opcua_resume import AckLedger, SubscriptionState, state_path
from axhub.ingest.tag_mapping import OpcUaConfig
from axhub.store.timeseries import TimeSeriesStore

SRC = Path(__file__).resolve().parents[1] / "src"
TAGS = 20


def _acked(ledger: AckLedger) -> list[tuple[int, int]]:
    return [(int(a.SubscriptionId), int(a.SequenceNumber)) for a in ledger.take()]


def test_messages_are_acknowledged_only_once_stored() -> None:
    ledger = AckLedger()
    ledger.received(7, 1)
    ledger.received(7, 2)
    ack_first = ledger.hand_over()  # the delivery carrying messages 1 and 2
    ledger.received(7, 3)
    assert _acked(ledger) == []  # nothing stored yet: the server must keep all three
    ack_first()
    assert _acked(ledger) == [(7, 1), (7, 2)]
    assert _acked(ledger) == []  # each acknowledgement goes out once
    ack_second = ledger.hand_over()
    ack_second()
    sent = ledger.take()
    ledger.give_back(sent)  # the PublishRequest carrying it failed: sent with the next one
    assert _acked(ledger) == [(7, 3)]


def test_a_subscription_the_server_no_longer_has_is_forgotten() -> None:
    ledger = AckLedger()
    ledger.received(1, 5)
    ledger.durable([(1, 4), (2, 9)])
    ledger.forget(1)
    ledger.hand_over()()
    assert _acked(ledger) == [(2, 9)]


def test_state_round_trips_and_a_damaged_file_means_subscribe_afresh(tmp_path: Path) -> None:
    path = state_path(tmp_path / "state", "opc.tcp://plc:4840", "worker-1")
    assert path != state_path(tmp_path / "state", "opc.tcp://plc:4840", "worker-2")
    state = SubscriptionState("opc.tcp://plc:4840", 4242, {201: "ns=2;s=라인1.온도", 202: "ns=2;i=7"})
    state.save(path)
    assert SubscriptionState.load(path) == state
    assert SubscriptionState.load(tmp_path / "missing.json") is None
    path.write_text('{"endpoint": "x", "subscription_id": ')  # half a file
    assert SubscriptionState.load(path) is None


def test_one_worker_per_state_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two workers on one state file would take the subscription from each other in turn."""
    config = OpcUaConfig.model_validate(
        {
            "endpoint": "opc.tcp://127.0.0.1:9/none",
            "nodes": [{"node": "ns=2;i=1", "asset": "a", "signal": "s"}],
        }
    )
    state_file = tmp_path / "state" / "opcua.json"
    first, second = OpcUaSource(config, state_file=state_file), OpcUaSource(config, state_file=state_file)
    try:
        first.connect()
        with caplog.at_level(logging.WARNING, logger="axhub.ingest.connectors.opcua"):
            second.connect()
        assert first.state_file == state_file
        assert second.state_file is None
        assert any("its own --client-id" in r.getMessage() for r in caplog.records)
    finally:
        second.close()
        first.close()
    third = OpcUaSource(config, state_file=state_file)  # the first one's lock went with it
    try:
        third.connect()
        assert third.state_file == state_file
    finally:
        third.close()


def test_a_subscription_taken_by_another_session_ends_ours() -> None:
    def event(code: int) -> StatusChangeEvent:
        return StatusChangeEvent(
            notification=ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(code)))
        )

    assert _ends_subscription(event(ua.StatusCodes.GoodSubscriptionTransferred))
    assert _ends_subscription(event(ua.StatusCodes.BadTimeout))
    assert not _ends_subscription(event(ua.StatusCodes.Good))


# A worker: stores (into the time-series store) and acknowledges what arrives in its first
# 2.5 s, stores without acknowledging until 3.5 s (the server republishes it: stored twice
# unless the store drops it), keeps the rest in memory only, and is SIGKILLed at 4.5 s.
_DOOMED_WORKER = """
import os, signal, sys, time, json
from pathlib import Path
from axhub.ingest.connectors.opcua import OpcUaSource, _ends_subscription
from axhub.ingest.tag_mapping import OpcUaConfig
from axhub.store.timeseries import TimeSeriesStore
cfg = OpcUaConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
store = TimeSeriesStore(Path(sys.argv[2]))
source = OpcUaSource(cfg, state_file=Path(sys.argv[3]))
source.connect()
assert source.wait_connected(60)
t0 = time.monotonic()
while time.monotonic() - t0 < 4.5:
    for d in source.poll(0.1):
        age = time.monotonic() - t0
        if age < 3.5:
            store.write("org", d.batch)
        if age < 2.5:
            d.ack()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow  # a node-opcua server, a worker process and ~15 s of changes
def test_a_sigkilled_worker_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    require_node_peers()
    server = OpcUaServer(tmp_path / "server", TAGS, 10.0)
    server.start()
    try:
        config = OpcUaConfig.model_validate(server.mapping())
        mapping_file = tmp_path / "mapping.json"
        mapping_file.write_text(json.dumps(server.mapping()))
        state_file = tmp_path / "state" / "opcua.json"
        root = tmp_path / "ts"
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        doomed = subprocess.run(
            [sys.executable, "-c", _DOOMED_WORKER, str(mapping_file), str(root), str(state_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert doomed.returncode == -signal.SIGKILL, doomed.stderr[-2000:]
        time.sleep(2.0)  # the server queues changes while no worker is connected

        store = TimeSeriesStore(root)
        source = OpcUaSource(config, state_file=state_file)
        source.connect()
        try:
            assert source.wait_connected(60)
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                for d in source.poll(0.1):
                    store.write("org", d.batch)
                    d.ack()
            health = source.health()
        finally:
            source.close()
    finally:
        server.stop()
    assert health["resumed"] == 1  # the subscription was taken over, not made afresh
    frames = [store.query("org", asset) for asset in server.assets()]
    rows = sum(len(f) for f in frames)
    stored_ms: dict[int, int] = {}
    for frame in frames:
        assert len(frame) == len(frame.drop_duplicates(["signal", "ts"]))  # nothing twice
        for ms in frame["ts"].dt.as_unit("us").astype("int64") // 1000:
            stored_ms[int(ms)] = stored_ms.get(int(ms), 0) + 1
    ticks = server.ticks_ms()
    first = min(stored_ms)
    last = max(stored_ms) - 1000  # the last second may still have been on its way
    covered = [t for t in ticks if first <= t <= last]
    assert len(covered) >= 80  # the doomed worker's life, the gap and the new life
    missing = {t: TAGS - stored_ms.get(t, 0) for t in covered if stored_ms.get(t, 0) != TAGS}
    assert missing == {}
    assert rows >= len(covered) * TAGS


@pytest.mark.slow  # a node-opcua server, ~5 s
def test_a_server_that_will_not_hand_over_is_said_once_and_data_still_flow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Anonymous over an unsigned channel: node-opcua, by the specification, refuses the
    transfer; the source says what to change and subscribes afresh."""
    require_node_peers()
    server = OpcUaServer(tmp_path / "server", TAGS, 10.0)
    server.start()
    mapping = server.mapping()
    for key in ("certificate", "private_key"):
        mapping.pop(key)
    mapping.update(security_policy="None", security_mode="None")
    config = OpcUaConfig.model_validate(mapping)
    first_state, second_state = tmp_path / "first.json", tmp_path / "second.json"
    first, second = OpcUaSource(config, state_file=first_state), OpcUaSource(config, state_file=second_state)
    try:
        first.connect()
        assert first.wait_connected(60)
        saved = SubscriptionState.load(first_state)
        assert saved is not None and len(saved.handles) == TAGS
        saved.save(second_state)  # the second worker tries to take the first one's subscription
        with caplog.at_level(logging.INFO, logger="axhub.ingest.connectors.opcua"):
            second.connect()
            assert second.wait_connected(60)
            got = 0
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                got += sum(d.rows for d in second.poll(0.1))
    finally:
        second.close()
        first.close()
        server.stop()
    assert got >= TAGS * 10  # a fresh subscription, flowing
    assert second.health()["resumed"] == 0
    said = [r.getMessage() for r in caplog.records if "refused to hand subscription" in r.getMessage()]
    assert len(said) == 1 and "security_mode Sign" in said[0]
    assert "(Bad" in said[0]  # the server's reason, by name

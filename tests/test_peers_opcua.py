"""OPC UA connector against an independent server (node-opcua, tests/peers/opcua_server.js).

Issue 11 bugs 3-6 each proven against a server nobody on AX Hub wrote: browse names with spaces,
'°' and Hangul become valid ids (display names kept); a NodeId the server lacks and objects
below the browse depth are reported at connect time and in the health; the back-off starts
afresh after each working session; an untrusted client certificate is explained (and, once
trusted on the server, the source connects by itself); ``axhub run ingest`` logs summaries.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID

from _peers import NodePeer, TcpProxy, require_node_peers
from axhub.bench._broker import free_port
from axhub.core.reading_rules import asset_id_from_name, signal_name_problem
from axhub.core.readings import WriteResult
from axhub.ingest.connectors.opcua import OpcUaSource
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.tag_mapping import OpcUaConfig
from axhub.ingest.worker import IngestWorker

PRESS = asset_id_from_name("Press 1")


class MemorySink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float | None]] = []

    def write(self, org: str, batch: pa.Table) -> WriteResult:
        self.rows += list(
            zip(
                batch["asset"].to_pylist(),
                batch["signal"].to_pylist(),
                batch["value"].to_pylist(),
                strict=True,
            )
        )
        return WriteResult(batch.num_rows)


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodePeer, int]]:
    require_node_peers()
    port = free_port()
    # node-opcua takes ~10 s to start here (it loads the standard address space): one per module.
    peer = NodePeer("opcua_server.js", str(port), str(tmp_path_factory.mktemp("opcua-pki")))
    with peer:
        yield peer, port


def _config(port: int, **kw: Any) -> OpcUaConfig:
    return OpcUaConfig.model_validate(
        {
            "endpoint": f"opc.tcp://127.0.0.1:{port}/axhub",
            "publishing_interval_ms": 100,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 30,
            **kw,
        }
    )


def test_browse_names_missing_nodes_and_depth_are_reported(
    plain_server: tuple[NodePeer, int], tmp_path: Path
) -> None:
    _peer, port = plain_server
    config = _config(
        port,
        browse=[{"root": "ns=1;s=Plant", "asset": "{parent}", "signal": "{name}", "max_depth": 2}],
        nodes=[
            {"node": "ns=1;s=Counter", "asset": "press-1", "signal": "counter"},
            {"node": "ns=1;s=NoSuchTag", "asset": "press-1", "signal": "ghost"},
        ],
    )
    source = OpcUaSource(config)
    sink = MemorySink()
    deadletters = DeadLetterStore(tmp_path / "dl")
    worker = IngestWorker(source, sink, "org1", deadletters, flush_interval_s=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        signals = lambda: {(a, s) for a, s, _v in sink.rows}  # noqa: E731
        # ns=1;s=Counter is both browsed and configured: the configured name wins.
        wanted = {
            (PRESS, "Door Open"),
            (PRESS, "Zone1 °C"),
            (PRESS, "온도"),
            (PRESS, "Sensor Fault"),
            ("press-1", "counter"),
        }
        assert wait_for(lambda: wanted <= signals()), signals()
        health = worker.health()
    finally:
        stop.set()
        thread.join(15)
    # Every stored name follows the one rule; the browse names are kept as display names.
    assert all(signal_name_problem(s) is None for _a, s in signals())
    assert source.display_names()[PRESS] == "Press 1"
    assert ("press-1", "ghost") not in signals()
    # NaN from the server: a missing value (quality bad), not a dead letter at every change.
    assert [v for a, s, v in sink.rows if s == "Sensor Fault"][:1] == [None]
    problems = " | ".join(health["problems"])
    assert "ns=1;s=NoSuchTag" in problems and "BadNodeIdUnknown" in problems
    assert "max_depth 2" in problems and "Plant.Line1.Cell1" in problems
    assert not health["ok"]
    letters = [d.reason for d in deadletters.read("org1")]
    assert any("NoSuchTag" in r for r in letters) and any("max_depth" in r for r in letters)


def test_reconnect_back_off_starts_afresh_after_each_working_session(
    plain_server: tuple[NodePeer, int], caplog: pytest.LogCaptureFixture
) -> None:
    _peer, port = plain_server
    proxy = TcpProxy(port)
    config = _config(proxy.port, nodes=[{"node": "ns=1;s=Counter", "asset": "press-1", "signal": "n"}])
    # The endpoint the server announces is its own port: connect through the proxy regardless.
    source = OpcUaSource(config)
    first_waits = []
    caplog.set_level(logging.WARNING, logger="axhub.ingest.connectors.opcua")
    source.connect()
    try:
        assert source.wait_connected(20)
        for _cycle in range(3):
            caplog.clear()
            proxy.cut()
            assert wait_for(lambda: not source.connected, 15)
            time.sleep(2.5)  # down long enough for several attempts: the back-off grows meanwhile
            proxy.restore()
            assert wait_for(lambda: source.connected, 30)
            ours = [r.getMessage() for r in caplog.records if r.name == "axhub.ingest.connectors.opcua"]
            waits = [float(m) for m in re.findall(r"retrying in ([0-9.]+)s", "\n".join(ours))]
            assert len(waits) >= 2, caplog.text
            first_waits.append(waits[0])
    finally:
        source.close()
        proxy.close()
    # Without the reset the first wait after each outage grew (0.5 -> 8 -> 16 -> 30 s in the
    # field); now every outage starts again from reconnect_min_s.
    assert first_waits == [0.5, 0.5, 0.5], first_waits


def test_untrusted_certificate_is_explained_and_trusting_it_connects(tmp_path: Path) -> None:
    from test_connectors_opcua import CLIENT_URI, make_cert

    port = free_port()
    pki = tmp_path / "pki"
    cert, key = make_cert(tmp_path, "axhub-ingest", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH)
    with NodePeer("opcua_server.js", str(port), str(pki), "secure"):
        config = _config(
            port,
            security_policy="Basic256Sha256",
            security_mode="SignAndEncrypt",
            certificate=str(cert),
            private_key=str(key),
            reconnect_min_s=0.3,
            reconnect_max_s=1.0,
            nodes=[{"node": "ns=1;s=Counter", "asset": "press-1", "signal": "n"}],
        )
        source = OpcUaSource(config)
        source.connect()
        try:
            assert wait_for(lambda: source.last_error is not None, 20)
            error = source.last_error or ""
            assert "trust this client certificate on the server" in error and str(cert) in error, error
            assert error.split(".")[0].strip(), error  # says what happened, never an empty text
            assert any(str(cert) in p for p in source.health()["problems"])
            # Do what the message says: the server put our certificate in its rejected folder.
            rejected = pki / "server" / "rejected"
            assert wait_for(lambda: rejected.is_dir() and any(rejected.iterdir()), 10)
            trusted = pki / "server" / "trusted" / "certs"
            trusted.mkdir(parents=True, exist_ok=True)
            for found in rejected.iterdir():
                shutil.move(str(found), trusted / found.name)
            assert source.wait_connected(30), source.last_error
        finally:
            source.close()


def test_run_ingest_logs_summaries_not_payloads(plain_server: tuple[NodePeer, int], tmp_path: Path) -> None:
    _peer, port = plain_server
    mapping = tmp_path / "plant.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "org": "peers",
                "opcua": {
                    "endpoint": f"opc.tcp://127.0.0.1:{port}/axhub",
                    "publishing_interval_ms": 50,
                    "browse": [
                        {"root": "ns=1;s=Plant", "asset": "{parent}", "signal": "{name}", "max_depth": 5}
                    ],
                },
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "AXHUB_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    health_file = tmp_path / "health.json"
    cmd = [sys.executable, "-m", "axhub.cli.main", "run", "ingest", "-c", str(mapping), "--stats-every", "1"]
    cmd += ["--health-file", str(health_file)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(8)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "Publish callback" not in out and "PublishResponse" not in out
    assert len(out.encode()) < 20_000, out[-2000:]  # summaries: was 88 MB in 25 s at 1,000 tags
    summaries = [line for line in out.splitlines() if line.startswith("written ")]
    assert summaries and "/s)" in summaries[-1] and "opcua: ok" in summaries[-1], out[-2000:]
    [health] = json.loads(health_file.read_text(encoding="utf-8"))["workers"]
    assert health["kind"] == "opcua" and health["written"] > 0 and health["tags"] >= 6
    # The signals it stored are registered for the dashboard, browse names as display names.
    from sqlalchemy import select

    from axhub.core.settings import Settings
    from axhub.store.db import Database
    from axhub.store.models import AssetRow, SignalRow

    db = Database(Settings(home=tmp_path / "home").database_url)
    with db.session() as session:
        rows = set(session.execute(select(SignalRow.name, AssetRow.name, AssetRow.slug).join(AssetRow)).all())
    db.dispose()
    assert ("온도", "Press 1", PRESS) in rows and ("Zone1 °C", "Press 1", PRESS) in rows


def test_bulk_decoding_reads_the_independent_servers_responses_as_asyncua_does(
    plain_server: tuple[NodePeer, int],
) -> None:
    """PublishResponses as node-opcua encodes them (Boolean, Double, UInt32, NaN, their status
    codes and timestamps), decoded by ``opcua_bulk`` and by asyncua: the same item for item."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from asyncua import Client, ua
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import struct_from_binary

    from axhub.ingest.connectors.opcua_bulk import DataChanges, decode_publish_response

    _peer, port = plain_server
    raw: list[bytes] = []

    async def capture() -> None:
        client = Client(f"opc.tcp://127.0.0.1:{port}/axhub", timeout=10)
        await client.connect()
        try:
            session = client.uaclient.session
            send = session._send_request

            async def recording(request: Any, *args: Any, **kwargs: Any) -> Any:
                data = await send(request, *args, **kwargs)
                if isinstance(request, ua.PublishRequest):
                    raw.append(bytes(data.copy()))
                return data

            session._send_request = recording
            press = await client.get_node("ns=1;s=Plant").get_child(["1:Press 1"])
            sub = await client.create_subscription(100, None)
            await sub.subscribe_data_change(await press.get_children(), queuesize=10)
            deadline = time.monotonic() + 15
            while sum(len(r) > 200 for r in raw) < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            await client.disconnect()

    asyncio.run(capture())
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def _us_of(when: datetime | None) -> int | None:
        return None if when is None else (when - epoch) // timedelta(microseconds=1)

    compared = picoseconds = 0
    types: set[type] = set()
    for data in raw:
        reference = struct_from_binary(ua.PublishResponse, Buffer(data)).Parameters.NotificationMessage
        ours = decode_publish_response(Buffer(data)).Parameters.NotificationMessage
        assert ours.SequenceNumber == reference.SequenceNumber
        for mine, theirs in zip(ours.NotificationData or [], reference.NotificationData or [], strict=True):
            if not isinstance(theirs, ua.DataChangeNotification):
                assert mine == theirs
                continue
            assert isinstance(mine, DataChanges)
            for i, item in enumerate(theirs.MonitoredItems):
                dv = item.Value
                value = dv.Value.Value if dv.Value is not None else None
                assert mine.handles[i] == item.ClientHandle
                assert mine.values[i] == value or (value != value and mine.values[i] != mine.values[i])
                assert type(mine.values[i]) is type(value)
                assert mine.status[i] == dv.StatusCode.value
                # Source timestamps come before any picoseconds: both decoders read them alike.
                assert mine.source_us[i] == _us_of(dv.SourceTimestamp)
                if dv.SourcePicoseconds is None and dv.ServerPicoseconds is None:
                    assert mine.server_us[i] == _us_of(dv.ServerTimestamp)
                elif mine.server_us[i] is not None and mine.source_us[i] is not None:
                    # node-opcua sends picoseconds, and asyncua reads the server timestamp from
                    # where the spec puts SourcePicoseconds; ours is read where it is.
                    picoseconds += 1
                    assert abs(mine.server_us[i] - mine.source_us[i]) < 60_000_000
                types.add(type(value))
                compared += 1
    assert compared >= 20, compared
    assert {bool, float, int} <= types  # Door Open, Zone1 °C / NaN, Counter

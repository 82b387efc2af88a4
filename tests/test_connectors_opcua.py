"""OPC UA connector against a real asyncua server (started here, in a background loop)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pytest
from asyncua import ua
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError

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


# ------------------------------------------------------------------ certificate security
SERVER_URI = "urn:axhub:sim:plant"
CLIENT_URI = "urn:axhub:ingest:test"  # not asyncua's default: the connector must take it from the cert


def make_cert(folder: Path, name: str, uri: str, usage: x509.ObjectIdentifier) -> tuple[Path, Path]:
    """A self-signed OPC UA application certificate and its key, both PEM (the key as ``.key``)."""
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())],
        [usage],
        days=2,
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    key_file.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_file, key_file


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("pki")
    return {
        "server": make_cert(folder, "plant", SERVER_URI, ExtendedKeyUsageOID.SERVER_AUTH),
        "client": make_cert(folder, "ingest", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH),
        "stranger": make_cert(folder, "stranger", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH),
    }


@pytest.fixture(scope="module")
def secure_server(loop: Loop, pki: dict[str, tuple[Path, Path]]) -> Iterator[OpcUaPlantServer]:
    """Only Basic256Sha256 / SignAndEncrypt, a password, and only the 'client' certificate trusted."""
    cert, key = pki["server"]
    srv = OpcUaPlantServer(
        TAGS,
        port=free_port(),
        username="operator",
        password="s3cret",
        certificate=cert,
        private_key=key,
        application_uri=SERVER_URI,
        security_policies=["Basic256Sha256_SignAndEncrypt"],
        trusted_clients=[pki["client"][0]],
    )
    loop.run(srv.start())
    yield srv
    loop.run(srv.stop())


def secure_config(server: OpcUaPlantServer, **security: Any) -> OpcUaConfig:
    return OpcUaConfig.model_validate(
        {
            "endpoint": server.endpoint,
            "username": "operator",
            "password": "s3cret",
            "publishing_interval_ms": 50,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
            "nodes": [{"node": server.node_id("pump-01", "flow"), "asset": "pump-01", "signal": "flow"}],
            **security,
        }
    )


def test_secured_server_offers_only_the_encrypted_endpoint(
    loop: Loop, secure_server: OpcUaPlantServer
) -> None:
    endpoints = loop.run(secure_server._server.get_endpoints())
    assert {(e.SecurityPolicyUri.rsplit("#", 1)[-1], e.SecurityMode) for e in endpoints} == {
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)
    }


@pytest.mark.parametrize("pin_server_certificate", [False, True])
def test_sign_and_encrypt_with_certificate_and_password_stores_readings(
    loop: Loop,
    secure_server: OpcUaPlantServer,
    pki: dict[str, tuple[Path, Path]],
    tmp_path: Path,
    pin_server_certificate: bool,
) -> None:
    cert, key = pki["client"]
    security: dict[str, Any] = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": str(cert),
        "private_key": str(key),
    }
    if pin_server_certificate:  # else taken from the server's endpoint listing
        security["server_certificate"] = str(pki["server"][0])
    source = OpcUaSource(secure_config(secure_server, **security))
    sink = MemorySink()
    worker = IngestWorker(source, sink, "demo", DeadLetterStore(tmp_path / "dl"), flush_interval_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    offset = 100 if pin_server_certificate else 0  # the two runs write distinct values and times
    expected = {("pump-01", "flow", BASE_US + (offset + i) * 1000): 40.0 + offset + i for i in range(5)}
    thread.start()
    try:
        assert wait_for(lambda: source.connected, 8)
        for i in range(5):
            loop.run(secure_server.write("pump-01", "flow", 40.0 + offset + i, _when(offset + i)))
            time.sleep(0.06)
        assert wait_for(lambda: all(k in sink.rows for k in expected), 5)
    finally:
        stop.set()
        thread.join(10)
    ours = {
        k: v
        for k, v in sink.rows.items()
        if k in expected or BASE_US + offset * 1000 <= k[2] < BASE_US + 10**9
    }
    assert ours == expected
    assert len(sink.rows) - len(ours) <= 1  # plus the tag's current value at subscription time
    assert source.connects == 1


def _refused(source: OpcUaSource, caplog: pytest.LogCaptureFixture, within: float = 2.0) -> str:
    """Not connected within ``within`` s, still retrying (thread alive), closes cleanly; the log."""
    with caplog.at_level(logging.WARNING, logger="axhub.ingest.connectors.opcua"):
        source.connect()
        try:
            assert not source.wait_connected(within)
            assert source._thread is not None and source._thread.is_alive()  # retrying, not crashed
        finally:
            started = time.monotonic()
            source.close()
            assert time.monotonic() - started < 5
    lines = [r.getMessage() for r in caplog.records if r.name == "axhub.ingest.connectors.opcua"]
    assert lines, "no warning logged for the refused connection"
    assert all(source.config.endpoint in line and "retrying" in line for line in lines)
    return "\n".join(lines)


def test_no_security_against_encrypted_only_server_is_refused(
    secure_server: OpcUaPlantServer, caplog: pytest.LogCaptureFixture
) -> None:
    source = OpcUaSource(secure_config(secure_server))  # security_policy "None"
    log = _refused(source, caplog)
    assert "SecurityPolicy#None" in log  # asyncua: no endpoint matches the policy asked for
    assert source.connects == 0 and source.poll(0.1) == []


def test_untrusted_client_certificate_is_refused(
    secure_server: OpcUaPlantServer, pki: dict[str, tuple[Path, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = pki["stranger"]  # valid, right URI, but not in the server's trust list
    source = OpcUaSource(
        secure_config(
            secure_server,
            security_policy="Basic256Sha256",
            security_mode="SignAndEncrypt",
            certificate=str(cert),
            private_key=str(key),
        )
    )
    log = _refused(source, caplog)
    assert "BadCertificateUntrusted" in log
    assert source.connects == 0


def test_policy_without_a_mode_is_refused_when_the_mapping_loads(
    secure_server: OpcUaPlantServer, pki: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = pki["client"]
    with pytest.raises(ValidationError, match="needs security_mode Sign or SignAndEncrypt"):
        secure_config(
            secure_server, security_policy="Basic256Sha256", certificate=str(cert), private_key=str(key)
        )

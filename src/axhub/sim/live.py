"""Serve the simulated plant live: MQTT publisher, OPC UA server and Modbus TCP server.

The demo and the connector tests get real endpoints speaking the real protocols:

- MQTT: JSON arrays of readings per asset on ``<prefix>/<asset>/batch`` (QoS 1);
- OPC UA (asyncua): ``Objects/Plant/<asset>/<signal>`` variables, node id
  ``ns=<idx>;s=<asset>.<signal>``, values written with their source timestamps; optional
  username/password;
- Modbus TCP (pymodbus): every signal as a float32 in two holding registers (big-endian
  words) and, scaled ×10 as int16, in one input register.

``live_mapping(...)`` writes the matching mapping file, so ``axhub connect`` and
``axhub run ingest`` can read the plant straight away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast


# --------------------------------------------------------------------------------- OPC UA
def _pem_or_der(path: str | Path) -> str:
    """asyncua goes by the file name (only ``.pem`` is PEM); look at the content instead."""
    with open(path, "rb") as f:
        return "pem" if f.read(11) == b"-----BEGIN " else "der"


@dataclass(frozen=True)
class LiveTag:
    asset: str
    signal: str


class OpcUaPlantServer:
    """An asyncua server holding one variable per (asset, signal)."""

    NAMESPACE = "urn:axhub:sim"

    def __init__(
        self,
        tags: Sequence[LiveTag],
        *,
        host: str = "127.0.0.1",
        port: int = 4840,
        username: str | None = None,
        password: str | None = None,
        certificate: str | Path | None = None,
        private_key: str | Path | None = None,
        security_policies: Sequence[str] | None = None,
        trusted_clients: Sequence[str | Path] | None = None,
        application_uri: str = "urn:axhub:sim:plant",
    ) -> None:
        """``certificate``/``private_key`` (PEM or DER files) enable certificate security;
        ``security_policies`` then names the endpoints offered, e.g.
        ``["Basic256Sha256_SignAndEncrypt"]`` (asyncua's ``ua.SecurityPolicyType`` names;
        default: asyncua's set, which without a certificate is only ``NoSecurity``).
        ``trusted_clients``: when given, only clients presenting one of these certificates
        (whose URI also matches the client's application URI) get a session.
        """
        if (certificate is None) != (private_key is None):
            raise ValueError("give both 'certificate' and 'private_key', or neither")
        self.tags = list(tags)
        self.endpoint = f"opc.tcp://{host}:{port}/axhub/"
        self.username = username
        self.password = password
        self.certificate = certificate
        self.private_key = private_key
        self.security_policies = None if security_policies is None else list(security_policies)
        self.trusted_clients = None if trusted_clients is None else list(trusted_clients)
        self.application_uri = application_uri
        self._server: Any = None
        self._nodes: dict[tuple[str, str], Any] = {}
        self._running = False
        self.ns = 2

    async def start(self) -> None:
        """Start serving; after ``stop()`` this restarts the same address space (quick)."""
        from asyncua import Server, ua

        if self._server is not None:
            if not self._running:
                await self._server.start()
                self._running = True
            return
        from asyncua.crypto.permission_rules import User, UserRole

        expected_user, expected_password = self.username, self.password

        class _Users:
            """Accept only the configured user (anonymous is refused when one is set)."""

            def get_user(
                self,
                iserver: Any,
                username: str | None = None,
                password: str | None = None,
                certificate: Any = None,
            ) -> User | None:
                if expected_user is None:
                    return User(role=UserRole.User)
                if username == expected_user and password == expected_password:
                    return User(role=UserRole.User, name=username)
                return None

        server = Server(user_manager=_Users())  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("AX Hub simulated plant")
        if expected_user is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        await self._setup_security(server)
        self.ns = await server.register_namespace(self.NAMESPACE)
        plant = await server.nodes.objects.add_folder(ua.NodeId.from_string(f"ns={self.ns};s=Plant"), "Plant")
        assets: dict[str, Any] = {}
        for tag in self.tags:
            if tag.asset not in assets:
                assets[tag.asset] = await plant.add_object(
                    ua.NodeId.from_string(f"ns={self.ns};s={tag.asset}"), tag.asset
                )
            var = await assets[tag.asset].add_variable(
                ua.NodeId.from_string(self.node_id(tag.asset, tag.signal)),
                tag.signal,
                ua.Variant(0.0, ua.VariantType.Double),
            )
            self._nodes[(tag.asset, tag.signal)] = var
        await server.start()
        self._server = server
        self._running = True

    async def _setup_security(self, server: Any) -> None:
        from asyncua import ua
        from asyncua.crypto import uacrypto
        from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

        if self.certificate is not None and self.private_key is not None:
            # The server's certificate names this URI (OPC UA checks they match).
            await server.set_application_uri(self.application_uri)
            await server.load_certificate(str(self.certificate), _pem_or_der(self.certificate))
            await server.load_private_key(str(self.private_key), None, _pem_or_der(self.private_key))
        if self.security_policies is not None:
            server.set_security_policy([ua.SecurityPolicyType[name] for name in self.security_policies])
        if self.trusted_clients is not None:
            trusted = {
                uacrypto.der_from_x509(await uacrypto.load_certificate(str(path), _pem_or_der(path)))
                for path in self.trusted_clients
            }
            basic = CertificateValidator(
                CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
            )

            async def validate(cert: Any, app: Any) -> None:
                from asyncua.common.utils import ServiceError

                await basic.validate(cert, app)  # time range, and URI = the client's application URI
                if uacrypto.der_from_x509(cert) not in trusted:
                    raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

            server.set_certificate_validator(validate)

    def node_id(self, asset: str, signal: str) -> str:
        return f"ns={self.ns};s={asset}.{signal}"

    async def write(
        self, asset: str, signal: str, value: float, ts: datetime | None = None, status: int = 0
    ) -> None:
        """Set a tag's value with its source timestamp (now if not given) and status code."""
        from asyncua import ua

        now = datetime.now(UTC)
        dv = ua.DataValue(
            ua.Variant(float(value), ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.UInt32(status)),
            SourceTimestamp=cast(Any, ts or now),
            ServerTimestamp=cast(Any, now),
        )
        await self._server.write_attribute_value(self._nodes[(asset, signal)].nodeid, dv)

    async def stop(self) -> None:
        if self._server is not None and self._running:
            self._running = False
            # asyncua may wait on a client's open session; the listener is closed anyway.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.stop(), 2)


# --------------------------------------------------------------------------------- Modbus
def float32_registers(value: float) -> list[int]:
    """Two registers, big-endian words and bytes (the most common PLC layout)."""
    raw = struct.pack(">f", value)
    return [int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:4], "big")]


def int16_register(value: float, scale: float = 10.0) -> int:
    raw = max(-32768, min(32767, round(value * scale)))
    return raw & 0xFFFF


async def start_modbus_server(device: Any, host: str, port: int) -> tuple[Any, asyncio.Task[None]]:
    """A pymodbus TCP server for ``device`` on (host, port), started and answering (≤ 2 s)."""
    from pymodbus.server import ModbusTcpServer

    server = ModbusTcpServer(device, address=(host, port))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):
        if server.is_active():
            break
        await asyncio.sleep(0.02)
    return server, task


class ModbusPlantServer:
    """A pymodbus TCP server; tag ``i`` is holding registers 2i..2i+1 and input register i."""

    def __init__(
        self,
        tags: Sequence[LiveTag],
        *,
        host: str = "127.0.0.1",
        port: int = 5020,
        spare_registers: int = 100,
    ) -> None:
        self.tags = list(tags)
        self.index = {(t.asset, t.signal): i for i, t in enumerate(self.tags)}
        self.host, self.port = host, port
        # Spare registers after the tags, for extra raw values (tests, other layouts).
        self.holding = [0] * (2 * len(self.tags) + spare_registers)
        self.input = [0] * (len(self.tags) + spare_registers)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    def set(self, asset: str, signal: str, value: float) -> None:
        i = self.index[(asset, signal)]
        self.holding[2 * i : 2 * i + 2] = float32_registers(value)
        self.input[i] = int16_register(value)

    def set_raw(self, kind: str, address: int, registers: Iterable[int]) -> None:
        target = self.holding if kind == "holding" else self.input
        for k, reg in enumerate(registers):
            target[address + k] = reg

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: Any,
    ) -> None:
        # Serve reads from our own tables (the simulator writes them between polls).
        source = self.input if function_code == 4 else self.holding
        for k in range(len(current_registers)):
            pos = start_address + k
            if 0 <= pos < len(source):
                current_registers[k] = source[pos]

    async def start(self) -> None:
        from pymodbus.simulator import DataType, SimData, SimDevice

        device = SimDevice(
            id=0,
            simdata=(
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(0, count=len(self.holding), values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=len(self.input), values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        self._server, self._task = await start_modbus_server(device, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        if self._task is not None:
            self._task.cancel()
            self._task = None


# ------------------------------------------------------------------------------- mapping
def live_mapping(
    tags: Sequence[LiveTag],
    *,
    mqtt_port: int = 1883,
    mqtt_prefix: str = "axhub-sim",
    opcua_endpoint: str | None = None,
    opcua_ns: int = 2,
    modbus_port: int | None = None,
    org: str = "demo",
) -> dict[str, Any]:
    """A mapping-file dict (see ``axhub.ingest.tag_mapping``) that reads the live plant."""
    mapping: dict[str, Any] = {
        "org": org,
        "mqtt": {
            "port": mqtt_port,
            "client_id": "axhub-ingest",
            "topics": [{"topic": f"{mqtt_prefix}/{{asset}}/batch"}],
        },
    }
    if opcua_endpoint:
        mapping["opcua"] = {
            "endpoint": opcua_endpoint,
            "browse": [{"root": f"ns={opcua_ns};s=Plant", "asset": "{parent}", "signal": "{name}"}],
        }
    if modbus_port:
        mapping["modbus"] = {
            "port": modbus_port,
            "registers": [
                {"address": 2 * i, "kind": "holding", "type": "float32", "asset": t.asset, "signal": t.signal}
                for i, t in enumerate(tags)
            ],
        }
    return mapping


# ------------------------------------------------------------------------------- MQTT
def readings_payload(asset: str, rows: Sequence[tuple[str, int, float]]) -> bytes:
    """JSON array of readings (signal, epoch ms, value) for one asset."""
    return json.dumps([{"signal": s, "ts": t, "value": v} for s, t, v in rows]).encode()


def stamps_us(ts: Any) -> Any:
    """A ``ts`` column as microseconds since the epoch, whatever resolution pandas holds it at:
    ``date_range`` makes nanoseconds, pandas 3 reads files at microseconds, so a bare int64
    cast would be off by a thousand for one of them."""
    return ts.dt.as_unit("us").astype("int64").to_numpy()


async def serve_plant_live(
    frames: dict[str, Any],
    *,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int | None = 1883,
    mqtt_prefix: str = "axhub-sim",
    opcua_port: int | None = 4840,
    modbus_port: int | None = 5020,
    speed: float = 1.0,
    duration_s: float | None = None,
    realtime_stamps: bool = True,
    on_tick: Any = None,
) -> int:
    """Replay simulated frames (one per asset: ``ts`` + signal columns) on all endpoints.

    Rows are sent ``speed`` times faster than recorded. With ``realtime_stamps`` the
    readings carry the time they are served (so dashboards show 'now'). Returns readings sent.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    tags = [LiveTag(a, c) for a, f in frames.items() for c in f.columns if c != "ts"]
    opc = OpcUaPlantServer(tags, port=opcua_port) if opcua_port else None
    mod = ModbusPlantServer(tags, port=modbus_port) if modbus_port else None
    client = None
    if mqtt_port:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"axhub-sim-{int(time.time())}")
        client.connect(mqtt_host, mqtt_port)
        client.loop_start()
    if opc:
        await opc.start()
    if mod:
        await mod.start()
    sent = 0
    try:
        n = min(len(f) for f in frames.values())
        stamps = {a: stamps_us(f["ts"]) for a, f in frames.items()}
        step_s = (stamps[next(iter(stamps))][1] - stamps[next(iter(stamps))][0]) / 1e6 if n > 1 else 1.0
        started = time.monotonic()
        for i in range(n):
            if duration_s is not None and time.monotonic() - started > duration_s:
                break
            now_ms = int(time.time() * 1000)
            for asset, frame in frames.items():
                row = frame.iloc[i]
                ts_ms = now_ms if realtime_stamps else int(stamps[asset][i] // 1000)
                values = [(c, float(row[c])) for c in frame.columns if c != "ts"]
                if client is not None:
                    payload = readings_payload(asset, [(c, ts_ms, v) for c, v in values])
                    client.publish(f"{mqtt_prefix}/{asset}/batch", payload, qos=1)
                when = datetime.fromtimestamp(ts_ms / 1000, UTC)
                for c, v in values:
                    if opc:
                        await opc.write(asset, c, v, when)
                    if mod:
                        mod.set(asset, c, v)
                sent += len(values)
            if on_tick is not None:
                on_tick(i, sent)
            await asyncio.sleep(max(0.0, started + (i + 1) * step_s / speed - time.monotonic()))
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()
        if opc:
            await opc.stop()
        if mod:
            await mod.stop()
    return sent

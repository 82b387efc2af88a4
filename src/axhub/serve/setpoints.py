"""Setpoints on a machine: read them, write them, read them back (OPC UA or Modbus TCP).

A ``SetpointTarget`` says where each setpoint lives: an OPC UA node id, or the address of a
float32 in two holding registers (big-endian words, the common PLC layout). Nothing here
decides *whether* to write: ``axhub.serve.process`` does (approval, limits, audit); this module
only talks to the machine, and reports what the machine holds after the write.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from axhub.core.errors import AxHubError


class SetpointError(AxHubError):
    """The machine could not be read or written (connection, refused write, read-back)."""


@dataclass(frozen=True)
class SetpointTarget:
    protocol: str  # "opcua" | "modbus"
    endpoint: str = ""  # opc.tcp://host:port/path
    host: str = "127.0.0.1"
    port: int = 502
    unit: int = 1
    nodes: dict[str, str] = field(default_factory=dict)  # setpoint -> OPC UA node id
    registers: dict[str, int] = field(default_factory=dict)  # setpoint -> holding register
    timeout_s: float = 5.0

    @property
    def names(self) -> list[str]:
        return list(self.nodes if self.protocol == "opcua" else self.registers)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol, "endpoint": self.endpoint, "host": self.host,
            "port": self.port, "unit": self.unit, "nodes": self.nodes,
            "registers": self.registers, "timeout_s": self.timeout_s,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SetpointTarget:
        if data.get("protocol") not in ("opcua", "modbus"):
            raise AxHubError("setpoint target: protocol must be 'opcua' or 'modbus'")
        try:
            target = cls(
                protocol=str(data["protocol"]),
                endpoint=str(data.get("endpoint", "")),
                host=str(data.get("host", "127.0.0.1")),
                port=int(data.get("port", 502)),
                unit=int(data.get("unit", 1)),
                nodes={str(k): str(v) for k, v in dict(data.get("nodes", {})).items()},
                registers={str(k): int(v) for k, v in dict(data.get("registers", {})).items()},
                timeout_s=float(data.get("timeout_s", 5.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AxHubError(f"setpoint target is not valid: {type(exc).__name__} {exc}") from exc
        if target.protocol == "opcua" and not target.endpoint.startswith("opc.tcp://"):
            raise AxHubError("setpoint target: an OPC UA endpoint starts with opc.tcp://")
        if not 0 < target.port < 65536 or not 0 <= target.unit < 256:
            raise AxHubError("setpoint target: port 1-65535 and unit 0-255")
        if any(not 0 <= r < 65535 for r in target.registers.values()):
            raise AxHubError("setpoint target: holding registers 0-65534 (two per float32)")
        if not (0 < target.timeout_s <= 60):
            raise AxHubError("setpoint target: timeout_s between 0 and 60 seconds")
        return target


def _regs(value: float) -> list[int]:
    raw = struct.pack(">f", value)
    return [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]


def _float(regs: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *regs))[0])


async def read_setpoints(target: SetpointTarget) -> dict[str, float]:
    if target.protocol == "opcua":
        return await _opcua(target, None)
    return await _modbus(target, None)


async def write_setpoints(target: SetpointTarget, values: Mapping[str, float]) -> dict[str, float]:
    """Write ``values`` and return what the machine holds afterwards (the read-back)."""
    unknown = set(values) - set(target.names)
    if unknown:
        raise SetpointError(f"no address configured for setpoint(s) {sorted(unknown)}")
    if target.protocol == "opcua":
        return await _opcua(target, values)
    return await _modbus(target, values)


async def _opcua(target: SetpointTarget, values: Mapping[str, float] | None) -> dict[str, float]:
    from asyncua import Client, ua

    client = Client(target.endpoint, timeout=target.timeout_s)
    try:
        await client.connect()
    except Exception as exc:
        raise SetpointError(f"OPC UA server {target.endpoint} not reachable: {exc}") from exc
    try:
        for name, value in (values or {}).items():
            node = client.get_node(target.nodes[name])
            try:
                await node.write_value(ua.DataValue(ua.Variant(float(value), ua.VariantType.Double)))
            except Exception as exc:
                raise SetpointError(f"OPC UA write of {name} refused: {exc}") from exc
        return {n: float(await client.get_node(nid).read_value()) for n, nid in target.nodes.items()}
    finally:
        await client.disconnect()


async def _modbus(target: SetpointTarget, values: Mapping[str, float] | None) -> dict[str, float]:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(target.host, port=target.port, timeout=target.timeout_s)
    if not await client.connect():
        raise SetpointError(f"Modbus device {target.host}:{target.port} not reachable")
    try:
        for name, value in (values or {}).items():
            reply = await client.write_registers(
                target.registers[name], _regs(float(value)), device_id=target.unit
            )
            if reply.isError():
                raise SetpointError(f"Modbus write of {name} refused: {reply}")
        out = {}
        for name, address in target.registers.items():
            reply = await client.read_holding_registers(address, count=2, device_id=target.unit)
            if reply.isError():
                raise SetpointError(f"Modbus read-back of {name} failed: {reply}")
            out[name] = _float(list(reply.registers))
        return out
    finally:
        client.close()


def matches(written: Mapping[str, float], read_back: Mapping[str, float]) -> bool:
    """Read-back equals what was written (float32 registers: to float32 precision)."""
    return all(
        math.isclose(read_back.get(n, math.nan), v, rel_tol=1e-6, abs_tol=1e-9) for n, v in written.items()
    )

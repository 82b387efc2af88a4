"""The simulated process as a machine: setpoints on OPC UA nodes and Modbus holding registers.

A hub writes setpoints the way it would on a plant (an OPC UA write to
``ns=<i>;s=<cell>.<setpoint>``, or a float32 in two holding registers, big-endian words, at
``2 x index``); ``run_batch()`` machines parts with whatever the controller holds at that
moment, so the closed loop is tested through the real protocols. Both servers hold the same
setpoints: a write on either is seen by the other (one controller, two interfaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

from axhub.sim import process as sp
from axhub.sim.live import float32_registers, start_modbus_server


class ProcessCell:
    def __init__(
        self,
        name: str = "CNC-07",
        *,
        seed: int = 0,
        parts_per_batch: int = 40,
        host: str = "127.0.0.1",
        opcua_port: int = 0,
        modbus_port: int = 0,
    ) -> None:
        self.name = name
        self.names = list(sp.BOUNDS)
        self.sim = sp.ProcessSim(seed=seed, parts_per_batch=parts_per_batch)
        self.host = host
        self.opcua_port, self.modbus_port = opcua_port, modbus_port
        self.holding = [0] * (2 * len(self.names))
        self._opcua: Any = None
        self._nodes: dict[str, Any] = {}
        self._modbus: Any = None
        self._task: asyncio.Task[None] | None = None
        self.ns = 2

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.opcua_port}/axhub/"

    def node_id(self, setpoint: str) -> str:
        return f"ns={self.ns};s={self.name}.{setpoint}"

    def register(self, setpoint: str) -> int:
        return 2 * self.names.index(setpoint)

    # --------------------------------------------------------------------- setpoints
    async def setpoints(self) -> dict[str, float]:
        """What the controller holds now (OPC UA and Modbus agree; Modbus written last wins)."""
        return {n: await self._nodes[n].read_value() for n in self.names}

    async def _set_opcua(self, name: str, value: float) -> None:
        from asyncua import ua

        await self._nodes[name].write_value(ua.Variant(float(value), ua.VariantType.Double))

    async def set(self, settings: dict[str, float]) -> None:
        """Set setpoints at the controller itself (the operator's panel, not the network)."""
        for name, value in settings.items():
            await self._set_opcua(name, value)
        await self._sync_to_modbus()

    async def run_batch(self, n_parts: int | None = None) -> list[sp.Part]:
        """Machine one batch at the current setpoints."""
        return self.sim.run_batch(await self.setpoints(), n_parts)

    # ----------------------------------------------------------------------- servers
    async def start(self, initial: dict[str, float] | None = None) -> None:
        from asyncua import Server, ua
        from pymodbus.simulator import DataType, SimData, SimDevice

        initial = dict(initial or sp.BASELINE)
        self.opcua_port = self.opcua_port or _free_port()
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"AX Hub simulated cell {self.name}")
        self.ns = await server.register_namespace("urn:axhub:sim:process")
        cell = await server.nodes.objects.add_object(
            ua.NodeId.from_string(f"ns={self.ns};s={self.name}"), self.name
        )
        for n in self.names:
            var = await cell.add_variable(
                ua.NodeId.from_string(self.node_id(n)), n, ua.Variant(initial[n], ua.VariantType.Double)
            )
            await var.set_writable()
            self._nodes[n] = var
        await server.start()
        self._opcua = server
        for i, n in enumerate(self.names):
            self.holding[2 * i : 2 * i + 2] = float32_registers(initial[n])

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            current_registers: list[int],
            set_values: Any,
        ) -> None:
            if function_code in (6, 16) and set_values is not None:
                values = [set_values] if isinstance(set_values, int) else list(set_values)
                for k, v in enumerate(values):
                    if 0 <= address + k < len(self.holding):
                        self.holding[address + k] = int(v)
                await self._sync_from_modbus()
            else:
                await self._sync_to_modbus()  # an OPC UA client may have written meanwhile
            for k in range(len(current_registers)):
                pos = start_address + k
                if 0 <= pos < len(self.holding):
                    current_registers[k] = self.holding[pos]

        device = SimDevice(
            id=0,
            simdata=(
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(0, count=len(self.holding), values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
            ),
            action=action,
        )
        self.modbus_port = self.modbus_port or _free_port()
        self._modbus, self._task = await start_modbus_server(device, self.host, self.modbus_port)

    async def _sync_from_modbus(self) -> None:
        for i, n in enumerate(self.names):
            raw = struct.pack(">HH", *self.holding[2 * i : 2 * i + 2])
            value = struct.unpack(">f", raw)[0]
            if abs(value - await self._nodes[n].read_value()) > 1e-6 * max(1.0, abs(value)):
                await self._set_opcua(n, value)

    async def _sync_to_modbus(self) -> None:
        for i, n in enumerate(self.names):
            self.holding[2 * i : 2 * i + 2] = float32_registers(await self._nodes[n].read_value())

    async def stop(self) -> None:
        if self._modbus is not None:
            await self._modbus.shutdown()
            self._modbus = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._opcua is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._opcua.stop(), 2)
            self._opcua = None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

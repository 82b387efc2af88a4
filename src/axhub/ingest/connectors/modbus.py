"""Modbus TCP source (pymodbus 3.x): poll holding/input registers, decode and scale them.

Registers of one kind are read in as few requests as possible (contiguous blocks of up
to 125 registers). Each poll becomes one ``Delivery`` stamped with the poll time. If the
device stops answering, the connection is rebuilt with exponential back-off.

Back-pressure: the poll thread waits while more than ``max_pending`` polls are waiting
for the worker, instead of queueing without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from axhub.core.domain import Quality
from axhub.ingest.connectors.base import Backoff, Delivery, DeliveryBuffer, Rejected, Source, columns_to_batch
from axhub.ingest.tag_mapping import ModbusConfig, ModbusRegister

log = logging.getLogger(__name__)

MAX_BLOCK = 125  # registers per read request (Modbus protocol limit)


@dataclass(frozen=True)
class Block:
    kind: str
    start: int
    count: int
    tags: tuple[ModbusRegister, ...]


def plan_blocks(registers: list[ModbusRegister], max_gap: int = 8) -> list[Block]:
    """Group tags into read requests: same kind, close addresses, at most 125 registers."""
    blocks: list[Block] = []
    for kind in ("holding", "input"):
        tags = sorted((r for r in registers if r.kind == kind), key=lambda r: r.address)
        current: list[ModbusRegister] = []
        start = end = 0
        for tag in tags:
            tag_end = tag.address + tag.count
            if current and (tag.address - end > max_gap or tag_end - start > MAX_BLOCK):
                blocks.append(Block(kind, start, end - start, tuple(current)))
                current = []
            if not current:
                start = tag.address
                end = tag_end
            current.append(tag)
            end = max(end, tag_end)
        if current:
            blocks.append(Block(kind, start, end - start, tuple(current)))
    return blocks


class ModbusSource(Source):
    """Polls one Modbus TCP device every ``poll_interval_ms``."""

    kind = "modbus"

    def __init__(self, config: ModbusConfig, *, max_pending: int = 100) -> None:
        self.config = config
        self.blocks = plan_blocks(config.registers)
        self._buffer = DeliveryBuffer()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self.max_pending = max_pending
        self.polls = 0
        self.connects = 0
        self.failures = 0

    def _client(self) -> ModbusTcpClient:
        # pymodbus' own retries are off: reconnecting is done here, with back-off.
        return ModbusTcpClient(
            self.config.host, port=self.config.port, timeout=self.config.timeout_s, retries=0
        )

    def read_once(self, client: ModbusTcpClient) -> Delivery:
        """One poll of every block (raises on a failed request)."""
        ts = time.time_ns() // 1000
        assets: list[str] = []
        signals: list[str] = []
        values: list[float | None] = []
        rejected: list[Rejected] = []
        for block in self.blocks:
            read = client.read_holding_registers if block.kind == "holding" else client.read_input_registers
            response = read(block.start, count=block.count, device_id=self.config.unit_id)
            if response.isError():
                raise ModbusException(f"{block.kind} registers {block.start}+{block.count}: {response}")
            regs = list(response.registers)
            for tag in block.tags:
                offset = tag.address - block.start
                try:
                    value: float | None = tag.decode(regs[offset : offset + tag.count])
                except ValueError as exc:
                    rejected.append(Rejected("modbus", f"{tag.kind}:{tag.address}", str(exc), b""))
                    continue
                if value is not None and value != value:  # NaN float32 from the device
                    value = None
                assets.append(tag.asset)
                signals.append(tag.signal)
                values.append(value)
        n = len(assets)
        quality = [int(Quality.GOOD) if v is not None else int(Quality.BAD) for v in values]
        return Delivery(columns_to_batch(assets, signals, [ts] * n, values, quality), rejected)

    def _run(self) -> None:
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        interval = self.config.poll_interval_ms / 1000
        client: ModbusTcpClient | None = None
        next_poll = time.monotonic()
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self._client()
                    if not client.connect():
                        raise ConnectionError(f"cannot connect to {self.config.host}:{self.config.port}")
                    self.connects += 1
                    self._connected.set()
                    backoff.reset()
                while len(self._buffer) >= self.max_pending and not self._stop.is_set():
                    self._stop.wait(interval)  # the worker is behind: do not pile up polls
                self._buffer.put(self.read_once(client))
                self.polls += 1
            except (ModbusException, ConnectionError, OSError) as exc:
                self.failures += 1
                self._connected.clear()
                if client is not None:
                    client.close()
                    client = None
                delay = backoff.next_delay()
                log.warning(
                    "Modbus %s:%s: %s; retrying in %.1fs", self.config.host, self.config.port, exc, delay
                )
                self._stop.wait(delay)
                next_poll = time.monotonic()
                continue
            next_poll += interval
            self._stop.wait(max(0.0, next_poll - time.monotonic()))
            if time.monotonic() - next_poll > interval:
                next_poll = time.monotonic()  # fell behind: skip polls rather than burst
        if client is not None:
            client.close()
        self._connected.clear()

    def connect(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="modbus-source", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def poll(self, timeout: float) -> list[Delivery]:
        return self._buffer.drain(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

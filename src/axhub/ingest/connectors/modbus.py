"""Modbus TCP source (pymodbus 3.x): poll holding/input registers, decode and scale them.

Registers of one kind are read in as few requests as possible (contiguous blocks of up
to 125 registers). Each poll becomes one ``Delivery`` stamped with the poll time. If the
device stops answering, the connection is rebuilt with exponential back-off.

Back-pressure: the poll thread waits while more than ``max_pending`` polls are waiting
for the worker, instead of queueing without bound.

A register the device refuses (a Modbus exception such as code 2, illegal data address) is a
mistake in the mapping, not a broken connection: it is reported once (health and a dead
letter naming the exception), left out of the reads so every other register keeps flowing,
and tried again every ``retry_refused_s`` in case the PLC program changes. Only a failed
connection makes the source reconnect (with back-off).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse

from axhub.core.domain import Quality
from axhub.ingest.connectors.base import Backoff, Delivery, DeliveryBuffer, Rejected, Source, columns_to_batch
from axhub.ingest.tag_mapping import ModbusConfig, ModbusRegister

log = logging.getLogger(__name__)

MAX_BLOCK = 125  # registers per read request (Modbus protocol limit)
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# Exceptions that say the register (or function) is wrong for this device, not that it is
# momentarily unavailable.
_REGISTER_EXCEPTIONS = {1, 2, 3}


def _tag_key(tag: ModbusRegister) -> tuple[str, int]:
    return (tag.kind, tag.address)


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

    def __init__(
        self, config: ModbusConfig, *, max_pending: int = 100, retry_refused_s: float = 60.0
    ) -> None:
        self.config = config
        self.blocks = plan_blocks(config.registers)
        # Registers the device refused: (kind, address) -> the reason, shown in the health.
        self.refused: dict[tuple[str, int], str] = {}
        # Registers whose value cannot be stored (a UInt64 above 2^63 - 1): (kind, address) ->
        # [reason, polls left out]. Dead-lettered once per episode, counted in the health,
        # rather than one dead letter per poll while the value stays out of range.
        self.unstorable: dict[tuple[str, int], list[Any]] = {}
        self.retry_refused_s = retry_refused_s
        self._refused_at = 0.0
        self.last_error: str | None = None
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

    def _exception(self, response: Any, tag: ModbusRegister | None, block: Block) -> str:
        code = int(getattr(response, "exception_code", 0))
        what = (
            f"{tag.kind} register {tag.address} ({tag.asset}/{tag.signal})"
            if tag is not None
            else f"{block.kind} registers {block.start}-{block.start + block.count - 1}"
        )
        return (
            f"Modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')}) reading {what} from unit "
            f"{self.config.unit_id} at {self.config.host}:{self.config.port}"
        )

    def _refuse(self, tag: ModbusRegister, reason: str, rejected: list[Rejected]) -> None:
        hint = "; the device has no such register: fix the mapping. The other registers keep being read"
        self.refused[_tag_key(tag)] = reason
        rejected.append(Rejected("modbus", f"{tag.kind}:{tag.address}", reason + hint, b""))
        log.warning("%s%s", reason, hint)

    def _replan(self) -> None:
        self.blocks = plan_blocks([r for r in self.config.registers if _tag_key(r) not in self.refused])

    def _read_block(self, client: ModbusTcpClient, block: Block) -> Any:
        read = client.read_holding_registers if block.kind == "holding" else client.read_input_registers
        response = read(block.start, count=block.count, device_id=self.config.unit_id)
        if response.isError() and not isinstance(response, ExceptionResponse):
            raise ModbusException(f"{block.kind} registers {block.start}+{block.count}: {response}")
        return response

    def _retry_refused(self, client: ModbusTcpClient, rejected: list[Rejected]) -> None:
        """Try the refused registers again now and then: a PLC program may have been changed."""
        if not self.refused or time.monotonic() - self._refused_at < self.retry_refused_s:
            return
        self._refused_at = time.monotonic()
        for tag in [r for r in self.config.registers if _tag_key(r) in self.refused]:
            response = self._read_block(client, Block(tag.kind, tag.address, tag.count, (tag,)))
            if not response.isError():
                log.info("Modbus %s register %d answers again", tag.kind, tag.address)
                del self.refused[_tag_key(tag)]
        self._replan()

    def read_once(self, client: ModbusTcpClient) -> Delivery:
        """One poll of every block (raises on a failed connection, not on a refused register)."""
        ts = time.time_ns() // 1000
        assets: list[str] = []
        signals: list[str] = []
        values: list[float | int | None] = []
        rejected: list[Rejected] = []
        self._retry_refused(client, rejected)
        replan = False
        for block in self.blocks:
            response = self._read_block(client, block)
            if isinstance(response, ExceptionResponse):
                code = int(getattr(response, "exception_code", 0))
                if code not in _REGISTER_EXCEPTIONS:
                    # Busy, device failure, gateway: this block is missing from this poll only.
                    self.last_error = self._exception(response, None, block)
                    log.warning("%s; this poll goes without them", self.last_error)
                    continue
                # Find which registers of the block the device refuses: read them one by one.
                for tag in block.tags:
                    single = Block(tag.kind, tag.address, tag.count, (tag,))
                    one = self._read_block(client, single) if len(block.tags) > 1 else response
                    if isinstance(one, ExceptionResponse):
                        self._refuse(tag, self._exception(one, tag, block), rejected)
                        replan = True
                        continue
                    self._decode(single, list(one.registers), assets, signals, values, rejected)
                continue
            self._decode(block, list(response.registers), assets, signals, values, rejected)
        if replan:
            self._replan()
            self._refused_at = time.monotonic()
        n = len(assets)
        quality = [int(Quality.GOOD) if v is not None else int(Quality.BAD) for v in values]
        return Delivery(columns_to_batch(assets, signals, [ts] * n, values, quality), rejected)

    def _decode(
        self,
        block: Block,
        regs: list[int],
        assets: list[str],
        signals: list[str],
        values: list[float | int | None],
        rejected: list[Rejected],
    ) -> None:
        for tag in block.tags:
            offset = tag.address - block.start
            try:
                value: float | int | None = tag.decode(regs[offset : offset + tag.count])
            except ValueError as exc:
                episode = self.unstorable.get(_tag_key(tag))
                if episode is None or episode[0] != str(exc):
                    self.unstorable[_tag_key(tag)] = [str(exc), 1]
                    reason = f"{tag.kind} register {tag.address} ({tag.asset}/{tag.signal}): {exc}"
                    rejected.append(Rejected("modbus", f"{tag.kind}:{tag.address}", reason, b""))
                else:
                    episode[1] += 1
                continue
            self.unstorable.pop(_tag_key(tag), None)
            if value is not None and value != value:  # NaN float32 from the device
                value = None
            assets.append(tag.asset)
            signals.append(tag.signal)
            values.append(value)

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
                self.last_error = str(exc)
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

    def health(self) -> dict[str, Any]:
        problems = [f"{reason} (left out of the reads)" for reason in self.refused.values()]
        problems += [
            f"{kind} register {address}: {reason} ({polls} readings not stored)"
            for (kind, address), (reason, polls) in self.unstorable.items()
        ]
        if not self.connected:
            problems.insert(0, f"not connected to {self.config.host}:{self.config.port}: {self.last_error}")
        readable = len(self.config.registers) - len(self.refused)
        return {
            "kind": self.kind,
            "ok": self.connected and not self.refused and not self.unstorable,
            "connected": self.connected,
            "registers": len(self.config.registers),
            "registers_read": readable,
            "polls": self.polls,
            "problems": problems,
        }

    def poll(self, timeout: float) -> list[Delivery]:
        return self._buffer.drain(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

"""The one interface every connector implements: connect, stream batches of readings, close.

A source hands out ``Delivery`` objects: a readings batch, payloads it could not read
(dead letters, with the reason) and an ``ack`` to call once the batch is durably stored.
Acknowledging only after the store's ``write`` returns gives at-least-once delivery; the
store's idempotent writes on (asset, signal, ts) turn that into exactly-once series.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from axhub.core.readings import READINGS_SCHEMA, TIMESTAMP_TYPE, split_exact, with_exact_ints


@dataclass(frozen=True)
class Rejected:
    """A payload (or row) that could not become readings, and why."""

    source: str
    origin: str
    reason: str
    payload: bytes


def _no_ack() -> None:
    return None


@dataclass
class Delivery:
    """What a source received in one go (one MQTT message, one poll, one notification set)."""

    batch: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    ack: Callable[[], None] = _no_ack
    # Upstream messages this delivery stands for (a source may gather many into one).
    messages: int = 1

    @property
    def rows(self) -> int:
        return self.batch.num_rows


EMPTY_BATCH = READINGS_SCHEMA.empty_table()


def columns_to_batch(
    assets: list[str],
    signals: list[str],
    ts_us: list[int],
    values: list[float | int | None],
    quality: list[int],
) -> pa.Table:
    """Build a readings batch from parallel Python lists (the connectors' common path).

    A Python ``int`` among ``values`` is an exact integer beyond float64's reach
    (``reading_rules.exact_value``): it goes into ``value_int`` as well.
    """
    floats, exact = split_exact(values)
    batch = pa.table(
        {
            "asset": pa.array(assets, pa.string()),
            "signal": pa.array(signals, pa.string()),
            "ts": pa.array(np.asarray(ts_us, dtype=np.int64), pa.int64()).cast(TIMESTAMP_TYPE),
            "value": pa.array(floats, pa.float64()),
            "quality": pa.array(np.asarray(quality, dtype=np.uint8), pa.uint8()),
        },
        schema=READINGS_SCHEMA,
    )
    return with_exact_ints(batch, exact)


class Backoff:
    """Exponential back-off between reconnect attempts (doubling, capped, reset on success)."""

    def __init__(self, min_s: float = 0.5, max_s: float = 30.0) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.current = min_s

    def next_delay(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self.current = self.min_s


class Source(ABC):
    """A stream of reading batches from one connection."""

    kind: ClassVar[str] = "source"

    @abstractmethod
    def connect(self) -> None:
        """Open the connection (and keep it open: sources reconnect by themselves)."""

    @abstractmethod
    def poll(self, timeout: float) -> list[Delivery]:
        """Deliveries received since the last call; waits up to ``timeout`` s for the first."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; unacknowledged deliveries are redelivered next time."""

    @property
    def connected(self) -> bool:
        return True

    def health(self) -> dict[str, Any]:
        """The source's real state: ``ok``, ``connected`` and ``problems`` (what a person should
        know: not connected, a register or node that does not exist, a thread that died)."""
        return {"kind": self.kind, "ok": self.connected, "connected": self.connected, "problems": []}

    @property
    def window(self) -> int | None:
        """Messages the source may hold unacknowledged (None: no limit); the worker writes
        before the window fills, so a flow-controlled stream never stalls on it."""
        return None

    def stream(self, stop: threading.Event, timeout: float = 0.2) -> Iterator[list[Delivery]]:
        """Yield non-empty lists of deliveries until ``stop`` is set."""
        while not stop.is_set():
            got = self.poll(timeout)
            if got:
                yield got

    def __enter__(self) -> Source:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class DeliveryBuffer:
    """Thread-safe hand-over from a connector's network thread to the worker's thread."""

    def __init__(self) -> None:
        self._items: deque[Delivery] = deque()
        self._cond = threading.Condition()
        self.rows = 0

    def put(self, delivery: Delivery) -> None:
        with self._cond:
            self._items.append(delivery)
            self.rows += delivery.rows
            self._cond.notify()

    def drain(self, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            out = list(self._items)
            self._items.clear()
            self.rows = 0
            return out

    def clear(self) -> int:
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.rows = 0
            return n

    def __len__(self) -> int:
        return len(self._items)

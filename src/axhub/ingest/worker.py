"""The long-running ingest worker: source → validate → buffered idempotent write → ack.

- Buffered (group commit): deliveries are gathered until ``flush_rows`` readings,
  ``flush_interval_s``, or half the source's window of unacknowledged messages (MQTT
  receive maximum), then written in one ``sink.write`` (one fsync for many messages is what
  makes 100k readings/s possible; flushing at half the window lets the broker keep sending
  the other half while the write runs, so small messages never wait on the interval).
- Acknowledged after the write: every delivery's ``ack`` is called only once the sink has
  returned, i.e. once the readings are durable (at-least-once; the sink is idempotent).
- Dead letters: payloads the connector could not read and rows that fail validation are
  stored with the reason before the ack, so nothing is dropped silently.
- Back-pressure: while a write is slow or failing, the worker does not poll the source and
  sends no acks; the protocol's flow control (MQTT receive maximum, OPC UA queue, Modbus
  poll loop) then holds data upstream. A failing write is retried with back-off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from axhub.core.readings import READINGS_SCHEMA, ReadingSink
from axhub.ingest.connectors.base import Backoff, Delivery, Rejected, Source
from axhub.ingest.deadletter import DeadLetterStore

log = logging.getLogger(__name__)

_SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
# Readings outside these years are almost always a unit mistake (seconds sent as ms).
MIN_TS_US = 946_684_800_000_000  # 2000-01-01
MAX_TS_US = 4_102_444_800_000_000  # 2100-01-01


def validate_batch(batch: pa.Table, source: str = "ingest") -> tuple[pa.Table, list[Rejected]]:
    """Split a batch into rows fit to store and rejected rows (each with its reason)."""
    if batch.num_rows == 0:
        return batch, []
    n = batch.num_rows
    reasons: list[tuple[pa.Array, str]] = []
    for col in ("asset", "signal"):
        # Names repeat (a few machines and signals, many readings): check each distinct
        # name once and map the verdict back to the rows.
        encoded = pc.dictionary_encode(batch[col]).combine_chunks()
        names = encoded.dictionary
        safe = pc.fill_null(pc.match_substring_regex(names, _SAFE_NAME), False)
        dots = pc.fill_null(pc.match_substring(names, ".."), True)
        bad_name = pc.or_(pc.invert(safe), dots)
        reasons.append(
            (
                pc.fill_null(pc.take(bad_name, encoded.indices), True),
                f"{col} name must be 1-128 letters, digits, '_', '.' or '-' (no '..')",
            )
        )
    ts = batch["ts"].cast(pa.int64())
    reasons.append(
        (pc.or_(pc.less(ts, MIN_TS_US), pc.greater_equal(ts, MAX_TS_US)), "ts outside 2000..2100 (unit?)")
    )
    values = batch["value"]
    reasons.append((pc.fill_null(pc.invert(pc.is_finite(values)), False), "value is NaN or infinite"))
    reasons.append((pc.greater(batch["quality"], 2), "quality must be 0 (good), 1 (uncertain) or 2 (bad)"))
    bad = np.zeros(n, dtype=bool)
    why: dict[int, str] = {}
    for mask, reason in reasons:
        m = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
        for i in np.flatnonzero(m & ~bad):
            why[int(i)] = reason
        bad |= m
    if not bad.any():
        return batch, []
    rows = batch.filter(pa.array(bad)).to_pylist()
    rejected = [
        Rejected(source, f"{r['asset']}/{r['signal']}", why[i], json.dumps(r, default=str).encode())
        for i, r in zip(np.flatnonzero(bad).tolist(), rows, strict=True)
    ]
    return batch.filter(pa.array(~bad)), rejected


@dataclass
class WorkerStats:
    deliveries: int = 0
    received_rows: int = 0
    written: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    flushes: int = 0
    write_failures: int = 0
    acked: int = 0
    max_pending_rows: int = 0
    last_flush_s: float = 0.0


class IngestWorker:
    """Moves readings from one source into one sink for one organisation."""

    def __init__(
        self,
        source: Source,
        sink: ReadingSink,
        org: str,
        deadletters: DeadLetterStore,
        *,
        flush_rows: int = 50_000,
        flush_interval_s: float = 0.2,
        on_written: Callable[[pa.Table], None] | None = None,
        retry_min_s: float = 0.2,
        retry_max_s: float = 10.0,
    ) -> None:
        self.source = source
        self.sink = sink
        self.org = org
        self.deadletters = deadletters
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.on_written = on_written
        self.stats = WorkerStats()
        self._pending: list[Delivery] = []
        self._pending_rows = 0
        self._pending_messages = 0
        self._oldest: float | None = None
        self._retry = Backoff(retry_min_s, retry_max_s)

    def step(self, stop: threading.Event | None = None) -> None:
        """Poll once (waiting at most until the next flush is due) and flush when due."""
        if self._oldest is None:
            timeout = self.flush_interval_s
        else:
            timeout = max(0.0, self._oldest + self.flush_interval_s - time.monotonic())
        got = self.source.poll(timeout)
        if got:
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._pending.extend(got)
            self.stats.deliveries += len(got)
            rows = sum(d.rows for d in got)
            self._pending_messages += sum(d.messages for d in got)
            self._pending_rows += rows
            self.stats.received_rows += rows
            self.stats.max_pending_rows = max(self.stats.max_pending_rows, self._pending_rows)
        due = self._oldest is not None and time.monotonic() - self._oldest >= self.flush_interval_s
        window = self.source.window
        if window is not None and self._pending_messages >= max(1, window // 2):
            due = True
        if self._pending and (self._pending_rows >= self.flush_rows or due):
            self.flush(stop)

    def flush(self, stop: threading.Event | None = None) -> bool:
        """Write everything pending, then ack it. False if stopped before the write succeeded."""
        if not self._pending:
            return True
        deliveries = self._pending
        started = time.monotonic()
        tables = [d.batch for d in deliveries if d.rows]
        batch = pa.concat_tables(tables) if tables else READINGS_SCHEMA.empty_table()
        good, bad_rows = validate_batch(batch, self.source.kind)
        rejected = [r for d in deliveries for r in d.rejected] + bad_rows
        dead_lettered = not rejected
        while True:
            try:
                if not dead_lettered:
                    self.deadletters.add(self.org, rejected)
                    dead_lettered = True
                result = self.sink.write(self.org, good) if good.num_rows else None
                break
            except Exception as exc:  # the store may be briefly unavailable: keep the data
                self.stats.write_failures += 1
                delay = self._retry.next_delay()
                log.warning("store write failed (%s); retrying in %.1fs, nothing acked", exc, delay)
                if stop is not None and stop.wait(delay):
                    return False
                if stop is None:
                    time.sleep(delay)
        self._retry.reset()
        # Durable now: acknowledge upstream, in arrival order.
        for d in deliveries:
            d.ack()
        self.stats.acked += len(deliveries)
        self.stats.flushes += 1
        self.stats.dead_letters += len(rejected)
        if result is not None:
            self.stats.written += result.written
            self.stats.duplicates += result.duplicates
        self.stats.last_flush_s = time.monotonic() - started
        self._pending = []
        self._pending_rows = 0
        self._pending_messages = 0
        self._oldest = None
        if self.on_written is not None and good.num_rows:
            try:
                self.on_written(good)
            except Exception:  # scoring must never stop ingestion
                log.exception("on_written hook failed")
        return True

    def run(
        self,
        stop: threading.Event,
        *,
        until: Callable[[WorkerStats], bool] | None = None,
        connect: bool = True,
    ) -> WorkerStats:
        """Run until ``stop`` is set (or ``until(stats)`` is true); flush and close at the end."""
        if connect:
            self.source.connect()
        try:
            while not stop.is_set():
                self.step(stop)
                if until is not None and until(self.stats):
                    break
            self.flush(stop)
        finally:
            self.source.close()
        return self.stats

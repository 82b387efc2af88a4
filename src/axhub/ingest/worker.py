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
from typing import Any

import pyarrow as pa

from axhub.core.reading_rules import check_batch
from axhub.core.readings import ReadingSink, concat_readings
from axhub.ingest.connectors.base import Backoff, Delivery, Rejected, Source
from axhub.ingest.deadletter import DeadLetterStore

log = logging.getLogger(__name__)


def validate_batch(batch: pa.Table, source: str = "ingest") -> tuple[pa.Table, list[Rejected]]:
    """Split a batch into rows fit to store and rejected rows (each with its reason).

    The rule is the one of every path (``core.reading_rules``).
    """
    good, problems = check_batch(batch)
    rejected = [
        Rejected(
            source,
            f"{p.reading['asset']}/{p.reading['signal']}",
            p.problem.en,
            json.dumps(p.reading, default=str, ensure_ascii=False).encode(),
        )
        for p in problems
    ]
    return good, rejected


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
        self.error: str | None = None
        self.running = False

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
        batch = concat_readings(tables)
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
        self.running = True
        try:
            if connect:
                self.source.connect()
            while not stop.is_set():
                self.step(stop)
                if until is not None and until(self.stats):
                    break
            self.flush(stop)
        except BaseException as exc:
            # Shown in the health (and by ``axhub run ingest``), never a silently idle worker.
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("ingest worker for %s stopped", self.source.kind)
            raise
        finally:
            self.running = False
            self.source.close()
        return self.stats

    def health(self) -> dict[str, Any]:
        """The worker's real state: its source's health, plus store failures and whether it runs."""
        source = self.source.health()
        problems = list(source.get("problems", []))
        if self.error:
            problems.insert(0, f"the worker stopped: {self.error}")
        if self.stats.write_failures and self._pending:
            problems.append(
                f"store writes failing ({self.stats.write_failures} so far); nothing acked meanwhile"
            )
        return {
            **source,
            "ok": bool(source.get("ok")) and self.running and not self.error,
            "running": self.running,
            "written": self.stats.written,
            "dead_letters": self.stats.dead_letters,
            "problems": problems,
        }

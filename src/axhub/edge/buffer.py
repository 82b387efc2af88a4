"""The agent's durable store-and-forward buffer: SQLite in WAL mode, ``synchronous=FULL``.

Everything the agent must not lose is committed here before anything is acknowledged
upstream (a connector's ack, an MQTT PUBACK): readings, alerts and inspection results. The
sync loop moves them to the hub in batches:

1. ``next_batch`` forms a batch in ONE transaction: the rows are encoded (readings as an Arrow
   IPC stream with zstd, alerts as gzip JSON), the payload is stored in ``outbox`` under a new
   batch id and the rows leave their table. A crash before the commit leaves the rows; after,
   the batch. Nothing is in both places, nothing in neither.
2. The batch is sent with its id; the hub stores it idempotently (readings on
   (asset, signal, ts), alerts on their id, batch ids remembered per device).
3. ``ack`` deletes the batch once the hub answered. A crash between 2 and 3 resends the SAME
   batch id, which the hub recognises: exactly once in effect, and resumable batch by batch.

Disk quota: when the live pages pass ``quota_bytes`` the OLDEST RAW READINGS go first (then the
oldest readings batches waiting in the outbox); alerts and inspection results are never dropped.
Every dropped reading is counted (``dropped_readings``) and reported to the hub.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from axhub.core.readings import READINGS_SCHEMA, TIMESTAMP_TYPE, with_exact_ints

READINGS_KIND = "readings"
ALERTS_KIND = "alerts"
RESULTS_KIND = "results"
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
JSON_GZIP_MEDIA_TYPE = "application/json+gzip"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, asset TEXT NOT NULL, signal TEXT NOT NULL,
    UNIQUE (asset, signal));
CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, series INTEGER NOT NULL, ts INTEGER NOT NULL,
    value REAL, quality INTEGER NOT NULL, value_int INTEGER);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, batch_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    rows INTEGER NOT NULL, payload BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inspected (file TEXT PRIMARY KEY, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class OutBatch:
    batch_id: str
    kind: str
    rows: int
    payload: bytes

    @property
    def media_type(self) -> str:
        return ARROW_MEDIA_TYPE if self.kind == READINGS_KIND else JSON_GZIP_MEDIA_TYPE


def encode_readings(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_readings(payload: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.BufferReader(payload)) as reader:
        return reader.read_all()


def encode_events(events: list[dict[str, Any]]) -> bytes:
    return gzip.compress(json.dumps(events, ensure_ascii=False).encode(), compresslevel=6)


def decode_events(payload: bytes, max_bytes: int = 64 << 20) -> list[dict[str, Any]]:
    with gzip.GzipFile(fileobj=__import__("io").BytesIO(payload)) as handle:
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError("events batch unpacks to more than the limit")
    data = json.loads(raw)
    if not isinstance(data, list):
        raise ValueError("events batch is not a list")
    return data


class Buffer:
    """One SQLite file; one connection guarded by a lock (ingest and sync threads share it)."""

    def __init__(self, path: str | Path, *, quota_bytes: int = 1 << 30) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it returns (WAL's NORMAL may lose the last commits on
        # power loss, and we acknowledge upstream right after the commit).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # Buffers made before exact integers: a REAL column alone would round them (2^53 + 1).
        columns = {str(row[1]) for row in self._db.execute("PRAGMA table_info(readings)")}
        if "value_int" not in columns:
            self._db.execute("ALTER TABLE readings ADD COLUMN value_int INTEGER")
        self._series: dict[tuple[str, str], int] = {
            (a, s): i for i, a, s in self._db.execute("SELECT id, asset, signal FROM series")
        }
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writing
    def _series_id(self, asset: str, signal: str) -> int:
        key = (asset, signal)
        found = self._series.get(key)
        if found is None:
            self._db.execute("INSERT OR IGNORE INTO series (asset, signal) VALUES (?, ?)", key)
            found = int(
                self._db.execute("SELECT id FROM series WHERE asset=? AND signal=?", key).fetchone()[0]
            )
            self._series[key] = found
        return found

    def add_readings(self, batch: pa.Table) -> int:
        """Store a readings batch durably (returns once committed); returns rows stored."""
        if batch.num_rows == 0:
            return 0
        assets = batch.column("asset").to_pylist()
        signals = batch.column("signal").to_pylist()
        ts = batch.column("ts").cast(pa.int64()).to_numpy().tolist()
        values = batch.column("value").to_pylist()
        quality = batch.column("quality").to_pylist()
        # Exact integers beyond +-2^53 (``core.readings``) in their own INTEGER column.
        exact = batch.column("value_int").to_pylist() if "value_int" in batch.column_names else None
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [self._series_id(a, s) for a, s in zip(assets, signals, strict=True)]
                if exact is None:
                    self._db.executemany(
                        "INSERT INTO readings (series, ts, value, quality) VALUES (?, ?, ?, ?)",
                        zip(ids, ts, values, quality, strict=True),
                    )
                else:
                    self._db.executemany(
                        "INSERT INTO readings (series, ts, value, quality, value_int) VALUES (?, ?, ?, ?, ?)",
                        zip(ids, ts, values, quality, exact, strict=True),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._enforce_quota()
        return batch.num_rows

    def add_event(self, kind: str, body: dict[str, Any]) -> None:
        """An alert or an inspection result, durably (never dropped for quota)."""
        if kind not in (ALERTS_KIND, RESULTS_KIND):
            raise ValueError(f"unknown event kind {kind!r}")
        with self._lock:
            self._db.execute(
                "INSERT INTO events (kind, body) VALUES (?, ?)", (kind, json.dumps(body, ensure_ascii=False))
            )

    def add_inspection(self, file_key: str, result: dict[str, Any], alert: dict[str, Any] | None) -> bool:
        """An inspection result (and its alert) committed with the record that ``file_key`` was
        scored, in ONE transaction: after a crash a file is either scored-and-buffered or neither,
        so a restarted agent scores each file exactly once. False when it was already recorded."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                done = self._db.execute(
                    "INSERT OR IGNORE INTO inspected (file, at) VALUES (?, ?)", (file_key, time.time())
                )
                if done.rowcount != 1:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute(
                    "INSERT INTO events (kind, body) VALUES (?, ?)",
                    (RESULTS_KIND, json.dumps(result, ensure_ascii=False)),
                )
                if alert is not None:
                    self._db.execute(
                        "INSERT INTO events (kind, body) VALUES (?, ?)",
                        (ALERTS_KIND, json.dumps(alert, ensure_ascii=False)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def inspected(self, file_keys: Iterable[str]) -> set[str]:
        """Which of these files were already scored (by this run or an earlier one)."""
        keys = list(file_keys)
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                found |= {
                    r[0]
                    for r in self._db.execute(f"SELECT file FROM inspected WHERE file IN ({marks})", chunk)
                }
        return found

    # ------------------------------------------------------------------ quota
    def used_bytes(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def _enforce_quota(self) -> None:
        """Drop oldest raw readings (then oldest readings batches) until under the quota."""
        while self.used_bytes() > self.quota_bytes:
            total = int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])
            self._db.execute("BEGIN IMMEDIATE")
            if total:
                n = max(1000, total // 20)
                cut = self._db.execute("SELECT id FROM readings ORDER BY id LIMIT 1 OFFSET ?", (n - 1,))
                row = cut.fetchone()
                upto = int(row[0]) if row else 1 << 62
                dropped = self._db.execute("DELETE FROM readings WHERE id <= ?", (upto,)).rowcount
            else:
                oldest = self._db.execute(
                    "SELECT seq, rows FROM outbox WHERE kind = ? ORDER BY seq LIMIT 1", (READINGS_KIND,)
                ).fetchone()
                if oldest is None:
                    self._db.execute("ROLLBACK")
                    return  # only alerts/results left: those are never dropped
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (oldest[0],))
                dropped = int(oldest[1])
            self._bump("dropped_readings", dropped)
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ forwarding
    def next_batch(self, max_rows: int = 50_000) -> OutBatch | None:
        """The oldest batch waiting for the hub (formed now from buffered rows if none waits)."""
        with self._lock:
            row = self._db.execute(
                "SELECT batch_id, kind, rows, payload FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is not None:
                return OutBatch(str(row[0]), str(row[1]), int(row[2]), bytes(row[3]))
            self._db.execute("BEGIN IMMEDIATE")
            try:
                formed = self._form_events(max_rows) or self._form_readings(max_rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return formed

    def _store_batch(self, kind: str, rows: int, payload: bytes) -> OutBatch:
        batch_id = uuid.uuid4().hex
        self._db.execute(
            "INSERT INTO outbox (batch_id, kind, rows, payload, created) VALUES (?, ?, ?, ?, ?)",
            (batch_id, kind, rows, payload, time.time()),
        )
        return OutBatch(batch_id, kind, rows, payload)

    def _form_events(self, max_rows: int) -> OutBatch | None:
        # Alerts first: they are small and what people wait for.
        for kind in (ALERTS_KIND, RESULTS_KIND):
            rows = self._db.execute(
                "SELECT id, body FROM events WHERE kind = ? ORDER BY id LIMIT ?", (kind, min(max_rows, 5000))
            ).fetchall()
            if rows:
                payload = encode_events([json.loads(body) for _, body in rows])
                self._db.execute("DELETE FROM events WHERE kind = ? AND id <= ?", (kind, rows[-1][0]))
                return self._store_batch(kind, len(rows), payload)
        return None

    def _form_readings(self, max_rows: int) -> OutBatch | None:
        rows = self._db.execute(
            "SELECT id, series, ts, value, quality, value_int FROM readings ORDER BY id LIMIT ?", (max_rows,)
        ).fetchall()
        if not rows:
            return None
        names = {i: (a, s) for (a, s), i in self._series.items()}
        ids, series, ts, values, quality, exact = zip(*rows, strict=True)
        table = readings_table(
            [names[s][0] for s in series], [names[s][1] for s in series], ts, values, quality
        )
        table = with_exact_ints(table, {i: v for i, v in enumerate(exact) if v is not None})
        self._db.execute("DELETE FROM readings WHERE id <= ?", (ids[-1],))
        return self._store_batch(READINGS_KIND, len(rows), encode_readings(table))

    def ack(self, batch: OutBatch) -> None:
        """The hub has the batch: forget it (and count what was delivered)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM outbox WHERE batch_id = ?", (batch.batch_id,))
            self._bump(f"sent_{batch.kind}", batch.rows)
            self._db.execute("COMMIT")

    def refuse(self, batch: OutBatch, reason: str) -> None:
        """The hub refused the batch as invalid (it will never take it): count it, keep a note."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM outbox WHERE batch_id = ?", (batch.batch_id,))
            self._bump(f"refused_{batch.kind}", batch.rows)
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ reporting
    def counters(self) -> dict[str, int]:
        with self._lock:
            return {str(n): int(v) for n, v in self._db.execute("SELECT name, value FROM counters")}

    def depth(self) -> dict[str, int]:
        """Rows waiting: raw readings, alerts/results, and rows in formed batches."""
        with self._lock:
            readings = int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])
            events = int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])
            outbox = int(self._db.execute("SELECT coalesce(sum(rows), 0) FROM outbox").fetchone()[0])
            return {
                "readings": readings,
                "events": events,
                "outbox": outbox,
                "total": readings + events + outbox,
            }


def readings_table(
    assets: Iterable[str],
    signals: Iterable[str],
    ts_us: Iterable[int],
    values: Iterable[Any],
    quality: Iterable[int],
) -> pa.Table:
    return pa.table(
        {
            "asset": pa.array(list(assets), pa.string()),
            "signal": pa.array(list(signals), pa.string()),
            "ts": pa.array(np.asarray(list(ts_us), dtype=np.int64), pa.int64()).cast(TIMESTAMP_TYPE),
            "value": pa.array(list(values), pa.float64()),
            "quality": pa.array(np.asarray(list(quality), dtype=np.uint8), pa.uint8()),
        },
        schema=READINGS_SCHEMA,
    )

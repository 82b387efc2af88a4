"""Write-ahead log of the time-series store: one append-only, fsynced log per organisation.

Why: a Parquet write costs a file, an fsync, a manifest swap and a directory fsync *per
asset and day it touches* (~25 ms each), so a stream of small messages from many machines
could never be acknowledged quickly. Appending the batch to one log and fsyncing that once
costs ~1 ms whatever it touches; compaction later turns the log into Parquet partitions.

Layout: ``root/org=<org>/_wal/wal-<seq>.log``; each record is

    b"AXW1" | payload length (u32 LE) | crc32 of payload (u32 LE) | payload

where the payload is one Arrow IPC stream (``WAL_SCHEMA``, or ``WAL_EXACT_SCHEMA`` for a batch
that carries exact integers in ``value_int``: records of both kinds share a segment). Protocol:

* **Append** (under an exclusive ``flock`` on ``_wal/.lock``, so processes take turns):
  always to the highest-numbered segment; write the record, ``fdatasync``, only then return
  (the caller acknowledges upstream after that: durable before acknowledged). Before
  appending, a writer checks the file ends where the last valid record ends; if not (a
  writer was killed mid-record), the torn tail is cut off first.
* **Seal**: creating segment ``seq + 1`` (under the same lock) seals every lower one: no
  writer appends to a segment once a higher one exists.
* **Read**: records are read up to the first one that is incomplete or fails its checksum
  (a torn tail, or a record another process is still writing).
* **Compaction** (``TimeSeriesStore``) writes a sealed segment's rows into Parquet with the
  store's idempotent, first-write-wins write, then deletes the segment. A crash in between
  replays the segment later, and the replay stores nothing twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from axhub.core.readings import TIMESTAMP_TYPE, VALUE_INT_FIELD
from axhub.store.ts_files import fsync_dir, make_dirs_durable

WAL_DIR = "_wal"
MAGIC = b"AXW1"
HEADER = struct.Struct("<4sII")
LOCK = ".lock"
COMPACT_LOCK = ".compact.lock"
SEGMENT_PREFIX = "wal-"
SEGMENT_SUFFIX = ".log"

WAL_SCHEMA = pa.schema(
    [
        pa.field("asset", pa.string(), nullable=False),
        pa.field("signal", pa.string(), nullable=False),
        pa.field("ts", TIMESTAMP_TYPE, nullable=False),
        pa.field("value", pa.float64(), nullable=True),
        pa.field("quality", pa.uint8(), nullable=False),
    ]
)


# Only batches with exact integers pay for the extra column (8 bytes a row even when null).
WAL_EXACT_SCHEMA = WAL_SCHEMA.append(VALUE_INT_FIELD)


def concat(tables: list[pa.Table]) -> pa.Table:
    """Tables of either schema as one (``value_int`` null where a record had none)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


def segment_name(seq: int) -> str:
    return f"{SEGMENT_PREFIX}{seq:012d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[int]:
    """Sequence numbers of the segments in ``directory``, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX):
            with contextlib.suppress(ValueError):
                out.append(int(name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]))
    return sorted(out)


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` (released by the kernel if the holder dies); yields whether held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def encode(table: pa.Table) -> bytes:
    """One record: header + Arrow IPC stream of ``table`` (cast to ``WAL_SCHEMA``, or to
    ``WAL_EXACT_SCHEMA`` if it has a ``value_int`` column)."""
    schema = WAL_EXACT_SCHEMA if "value_int" in table.column_names else WAL_SCHEMA
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table.select(schema.names).cast(schema))
    payload = sink.getvalue().to_pybytes()
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


def scan(data: bytes, start: int = 0) -> tuple[list[bytes], int]:
    """Valid record payloads in ``data[start:]`` and the offset where valid records end."""
    out: list[bytes] = []
    pos = start
    size = len(data)
    while pos + HEADER.size <= size:
        magic, length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > size:
            break
        payload = data[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        out.append(payload)
        pos = end
    return out, pos


def read_segment(path: Path, start: int = 0) -> tuple[list[bytes], int]:
    """Valid records of a segment file from ``start`` (empty if it is gone)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return [], start
    records, end = scan(data)
    return records, start + end


class WalWriter:
    """Appends records to one organisation's log (one per process and organisation)."""

    def __init__(self, directory: Path, *, segment_bytes: int) -> None:
        self.dir = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._seq = -1
        self._end = 0
        self._ready = False

    def _open(self, seq: int) -> None:
        self._close_fd()
        path = self.dir / segment_name(seq)
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if created:
            fsync_dir(self.dir)
        self._seq = seq
        self._end = 0
        self._repair()

    def _repair(self) -> None:
        """Cut a torn tail (a record some writer never finished) before appending after it."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size == self._end:
            return
        with open(self.dir / segment_name(self._seq), "rb") as fh:
            fh.seek(self._end)
            _, valid = scan(fh.read())
        self._end += valid
        if self._end != size:
            os.ftruncate(self._fd, self._end)
            os.fsync(self._fd)

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, record: bytes) -> None:
        """Append one encoded record and make it durable (returns after ``fdatasync``)."""
        with self._lock:
            if not self._ready:
                make_dirs_durable(self.dir)
                self._ready = True
            with file_lock(self.dir / LOCK):
                segments = list_segments(self.dir)
                seq = segments[-1] if segments else 0
                if seq != self._seq or self._fd is None:
                    self._open(seq)
                else:
                    self._repair()
                if self._end >= self.segment_bytes:
                    self._open(seq + 1)
                assert self._fd is not None
                try:
                    view = memoryview(record)
                    while view:
                        view = view[os.write(self._fd, view) :]
                    os.fdatasync(self._fd)
                except OSError:
                    # Disk full or failing: leave no partial record behind for the next append.
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, self._end)
                    raise
                self._end += len(record)

    def close(self) -> None:
        with self._lock:
            self._close_fd()
            self._seq = -1


def seal(directory: Path) -> bool:
    """Seal the active segment if it holds records; True if it did."""
    if not directory.is_dir():
        return False
    with file_lock(directory / LOCK):
        segments = list_segments(directory)
        if not segments:
            return False
        path = directory / segment_name(segments[-1])
        stat = path.stat()
        if stat.st_size == 0:
            return False
        fd = os.open(directory / segment_name(segments[-1] + 1), os.O_RDWR | os.O_CREAT, 0o644)
        os.close(fd)
        fsync_dir(directory)
        return True


@dataclass
class _Segment:
    end: int = 0
    by_asset: dict[str, list[pa.Table]] = field(default_factory=dict)
    rows: int = 0


class WalView:
    """A process's incremental view of one organisation's log, for queries.

    Each refresh reads only what was appended since the last one; segments that compaction
    removed are dropped (their rows are in Parquet by then).
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._segments: dict[int, _Segment] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            on_disk = list_segments(self.dir)
            for seq in [s for s in self._segments if s not in on_disk]:
                del self._segments[seq]
            for seq in on_disk:
                seg = self._segments.setdefault(seq, _Segment())
                records, seg.end = read_segment(self.dir / segment_name(seq), seg.end)
                for payload in records:
                    _split_into(decode(payload), seg)

    def rows(self, asset: str) -> pa.Table | None:
        """The asset's rows in log order (asset column dropped), or None."""
        with self._lock:
            parts = [t for seq in sorted(self._segments) for t in self._segments[seq].by_asset.get(asset, [])]
        if not parts:
            return None
        return concat(parts)

    def assets(self) -> set[str]:
        with self._lock:
            return {a for seg in self._segments.values() for a in seg.by_asset}

    @property
    def total_rows(self) -> int:
        with self._lock:
            return sum(seg.rows for seg in self._segments.values())


def _split_into(table: pa.Table, seg: _Segment) -> None:
    assets = table.column("asset").combine_chunks().dictionary_encode()
    rest = table.drop_columns(["asset"])
    names = assets.dictionary.to_pylist()
    seg.rows += table.num_rows
    if len(names) == 1:
        seg.by_asset.setdefault(str(names[0]), []).append(rest)
        return
    codes = assets.indices
    for i, name in enumerate(names):
        seg.by_asset.setdefault(str(name), []).append(rest.filter(pc.equal(codes, i)))

"""Time-series store: readings as Parquet partitions, queried through DuckDB.

Layout: ``root/org=<org>/asset=<asset>/date=YYYY-MM-DD/part-<min_us>-<max_us>-<id>.parquet``
(UTC dates) plus a ``_manifest.json`` per partition that lists the committed files (see
``ts_files`` for the crash-safety protocol).

Choices, and why:

* **Values are stored losslessly** (see ``ts_values``): what a machine sent comes back bit
  for bit (every integer up to 2^53, 1e39, -0.0). Each file picks its encoding: decimals
  (the usual sensor reading: 0.01 resolution, counters) as int64 multiples of 10^-k,
  DELTA_BINARY_PACKED + zstd (~1.2 bytes per value on simulator data), anything else as
  float64, BYTE_STREAM_SPLIT + zstd. Files of the earlier float32 store still read, as the
  float64 of the float32's shortest decimal form, as they always did. Integers beyond +-2^53
  (which float64 rounds) that a source sent with ``value_int`` (``core.readings``) are kept
  exactly in an extra int64 column, written only into files that hold such integers
  (``PartFile.exact_ints``), and returned by ``query(..., exact=True)``.
* **Timestamps** are microseconds UTC, DELTA_BINARY_PACKED; rows are sorted by signal then
  time, so a regular 1 Hz series costs almost nothing. ``signal`` and ``quality`` are
  dictionary/RLE encoded (long runs after the sort).
* **Idempotent, first write wins.** A reading is keyed by (asset, signal, ts). A batch is
  de-duplicated within itself (first occurrence kept), then anti-joined against what the
  partition already holds; rows already stored are dropped and counted as duplicates.
  Keeping the stored row means a retry never rewrites existing files, and an at-least-once
  source (MQTT, a re-run file ingest) ends with exactly one copy. The anti-join only reads
  files whose [min, max] time range overlaps the batch (ranges kept in the manifest), so
  appending newer data - the usual case - skips it entirely.
* **Rollups**: compaction also writes 1-minute partial aggregates (count, sum, min, max,
  last) of the merged file, committed with it in the same manifest swap (computed from the
  merged rows in memory, ``ts_rollups``, so writing never needs DuckDB). A resampled query
  whose interval is a whole number of minutes over a minute-aligned window reads those
  instead of raw rows (and raw rows of files written since), combining the partials exactly.
* **Concurrency**: one file lock per partition serialises writers and compaction of that
  partition; readers take no lock (they read the manifest and retry if compaction removed a
  file under them).
* **Streams go through a write-ahead log** (``append``, see ``wal.py``): one fsynced record
  per call whatever it touches, so an ingest worker can acknowledge many small messages
  quickly. A background thread seals the log every ``wal_max_age_s`` (or at
  ``wal_segment_bytes``) and compacts sealed segments into partitions with ``write`` (so the
  first copy of a key wins and a replay stores nothing twice), then merges partitions that
  collected ``merge_files`` small files (``_merge_plan``: size-tiered, at most
  ``merge_max_rows`` rows per merge, files of half that final), so a writer's memory is
  bounded by the cap, not by how much of the day is stored. Queries read the log too: its
  rows of the asset, first copy of each (signal, ts) kept, minus keys Parquet already holds
  (the log is always read before the manifests, so a compaction finishing in between can
  only show a row twice to the anti-join, never hide it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock

from axhub.core.errors import AxHubError
from axhub.core.ids import check_path_safe
from axhub.core.readings import FLOAT_EXACT_INT, VALUE_INT_FIELD, ReadingSink, WriteResult
from axhub.store import ts_values
from axhub.store.ts_files import (
    LOCK_NAME,
    ROLLUP_PREFIX,
    Manifest,
    PartFile,
    commit_manifest,
    fsync_dir,
    fsync_file,
    make_dirs_durable,
    part_name,
    read_manifest,
    remove_uncommitted,
    temp_path,
)
from axhub.store.ts_rollups import ROLLUP_US, rollup
from axhub.store.wal import (
    COMPACT_LOCK,
    WAL_DIR,
    WalView,
    WalWriter,
    file_lock,
    list_segments,
    read_segment,
    seal,
    segment_name,
)
from axhub.store.wal import concat as wal_concat
from axhub.store.wal import decode as wal_decode
from axhub.store.wal import encode as wal_encode

log = logging.getLogger(__name__)

US_PER_DAY = 86_400_000_000
Agg = Literal["mean", "min", "max", "last"]

# In-file schema; `asset` and `org` live in the path only.
FILE_SCHEMA = pa.schema(
    [
        pa.field("signal", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=True),
        pa.field("quality", pa.uint8(), nullable=False),
    ]
)

# Reading only the key columns needs no value type (old and new files differ there).
KEY_SCHEMA = pa.schema([FILE_SCHEMA.field("signal"), FILE_SCHEMA.field("ts")])


_AGG_SQL: dict[str, str] = {
    "mean": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "last": "arg_max(value, ts) FILTER (WHERE value IS NOT NULL)",
}
# Partial aggregates (per signal and bucket) that combine across raw files and rollups:
# (from raw rows, from rollup rows, final combination).
_PARTIAL_SQL: dict[str, tuple[str, str, str]] = {
    "mean": (
        "sum(CAST(value AS DOUBLE)) AS s, count(value) AS n",
        "sum(s) AS s, sum(n) AS n",
        "sum(s) / NULLIF(sum(n), 0)",
    ),
    "min": ("min(value) AS lo", "min(lo) AS lo", "min(lo)"),
    "max": ("max(value) AS hi", "max(hi) AS hi", "max(hi)"),
    "last": (
        "arg_max(value, ts) FILTER (WHERE value IS NOT NULL) AS lv, "
        "max(ts) FILTER (WHERE value IS NOT NULL) AS lt",
        "arg_max(last_v, last_ts) AS lv, max(last_ts) AS lt",
        "arg_max(lv, lt)",
    ),
}


@dataclass(frozen=True)
class CompactResult:
    partitions: int
    files_before: int
    files_after: int
    rows: int
    duplicates_removed: int


@dataclass(frozen=True)
class StoreStats:
    points: int
    bytes: int
    files: int
    partitions: int

    @property
    def bytes_per_point(self) -> float:
        return self.bytes / self.points if self.points else float("nan")

    def __getitem__(self, key: str) -> int | float:
        """Dict-style access (``stats["bytes"]``) for callers that treat stats as a mapping."""
        if key not in {"points", "bytes", "files", "partitions", "bytes_per_point"}:
            raise KeyError(key)
        value: int | float = getattr(self, key)
        return value


def _to_us(value: datetime | str | pd.Timestamp | np.datetime64 | int | None) -> int | None:
    """Epoch microseconds of a time; naive times are read as UTC, ints as epoch us."""
    if value is None:
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1000)


def _day_name(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def interval_us(interval: str) -> int:
    """'1min', '5s', '1h', '1D' -> microseconds (pandas offset aliases)."""
    try:
        delta = pd.to_timedelta(interval)
    except (ValueError, TypeError) as exc:
        raise AxHubError(
            f"interval {interval!r} is not understood", hint="use e.g. '10s', '1min', '15min', '1h', '1D'"
        ) from exc
    micros = int(delta.value // 1000)
    if micros <= 0:
        raise AxHubError(f"interval {interval!r} must be positive", hint="e.g. '1min'")
    return micros


class TimeSeriesStore:
    """Readings of many organisations under ``root``; implements ``ReadingSink``."""

    def __init__(
        self,
        root: Path,
        *,
        compression_level: int = 3,
        row_group_size: int = 1 << 17,
        lock_timeout_s: float = 120.0,
        wal_max_age_s: float = 30.0,
        wal_segment_bytes: int = 64 << 20,
        merge_files: int = 16,
        merge_max_rows: int = 1 << 18,
    ) -> None:
        self.root = Path(root)
        self.compression_level = compression_level
        self.row_group_size = row_group_size
        self.lock_timeout_s = lock_timeout_s
        self.wal_max_age_s = wal_max_age_s
        self.wal_segment_bytes = wal_segment_bytes
        # A partition that reaches this many small files (e.g. from many log compactions) is merged.
        self.merge_files = merge_files
        # No log merge reads more rows than this, so its working set (and the peak the
        # allocators keep afterwards) is bounded, not proportional to the day; files of at
        # least half of it are final (see ``_merge_plan``).
        self.merge_max_rows = merge_max_rows
        self._con_lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._wal_lock = threading.Lock()
        self._writers: dict[str, WalWriter] = {}
        self._views: dict[str, WalView] = {}
        self._compactor: _WalCompactor | None = None

    # ------------------------------------------------------------------ paths
    def _asset_dir(self, org: str, asset: str) -> Path:
        check_path_safe(org, "organisation")
        check_path_safe(asset, "asset")
        return self.root / f"org={org}" / f"asset={asset}"

    def _partition(self, org: str, asset: str, day: int) -> Path:
        return self._asset_dir(org, asset) / f"date={_day_name(day)}"

    def _assets(self, org: str) -> list[str]:
        check_path_safe(org, "organisation")
        org_dir = self.root / f"org={org}"
        if not org_dir.is_dir():
            return []
        return sorted(e.name[6:] for e in os.scandir(org_dir) if e.is_dir() and e.name.startswith("asset="))

    def _partitions(self, org: str, asset: str) -> list[Path]:
        asset_dir = self._asset_dir(org, asset)
        if not asset_dir.is_dir():
            return []
        return sorted(
            Path(e.path) for e in os.scandir(asset_dir) if e.is_dir() and e.name.startswith("date=")
        )

    @contextlib.contextmanager
    def _locked(self, partition: Path) -> Iterator[Manifest]:
        """Hold the partition's lock; yields its manifest after clearing dead writers' files."""
        make_dirs_durable(partition)
        with FileLock(str(partition / LOCK_NAME), timeout=self.lock_timeout_s):
            manifest = read_manifest(partition)
            remove_uncommitted(partition, manifest)
            yield manifest

    # ------------------------------------------------------------------ write
    def write(self, org: str, batch: pa.Table) -> WriteResult:
        """Store a ``READINGS_SCHEMA`` batch durably; returns rows written and duplicates dropped.

        ``asset``/``signal`` may also be dictionary-encoded strings (faster for big batches).
        Returns after every touched partition is fsync'ed and committed.
        """
        prepared = _prepare(org, batch)
        if prepared is None:
            return WriteResult(written=0, duplicates=0)
        asset_dict, table = prepared
        asset_names = [str(a) for a in asset_dict.dictionary.to_pylist()]
        asset_codes = asset_dict.indices.to_numpy(zero_copy_only=False)
        ts_np = table.column("ts").cast(pa.int64()).to_numpy()
        day0 = int(ts_np.min()) // US_PER_DAY
        span = int(ts_np.max()) // US_PER_DAY - day0 + 1
        written = duplicates = 0
        single_asset = len(asset_names) == 1 or bool(np.all(asset_codes == asset_codes[0]))
        if single_asset and span == 1:
            # The common case (an ingest chunk, a connector flush): one partition, no copies.
            slices: list[tuple[int, np.ndarray | None]] = [(int(asset_codes[0]) * span, None)]
        else:
            slices = _group_rows(asset_codes.astype(np.int64) * span + (ts_np // US_PER_DAY - day0))
        for gid, idx in slices:
            asset = asset_names[gid // span]
            day = day0 + gid % span
            part = table if idx is None else table.take(pa.array(idx))
            w, d = self._write_partition(org, asset, day, part)
            written += w
            duplicates += d
        return WriteResult(written=written, duplicates=duplicates)

    def _write_partition(self, org: str, asset: str, day: int, table: pa.Table) -> tuple[int, int]:
        """Sort, de-duplicate and append one partition's rows (first write wins)."""
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        sig_arr = table.column("signal").combine_chunks()
        codes = sig_arr.indices.to_numpy().astype(np.int64)
        names = sig_arr.dictionary
        t0 = day * US_PER_DAY
        # One int64 key per (signal, ts): a partition spans < 1 day, so ts - t0 < US_PER_DAY.
        key = codes * US_PER_DAY + (ts - t0)
        if len(key) > 1 and not np.all(key[1:] >= key[:-1]):
            order = np.argsort(key, kind="stable")
            key = key[order]
            table = table.take(pa.array(order))
        keep = np.ones(len(key), dtype=bool)
        keep[1:] = key[1:] != key[:-1]
        partition = self._partition(org, asset, day)
        with self._locked(partition) as manifest:
            tmin, tmax = int(ts.min()), int(ts.max())
            overlapping = [f for f in manifest.files if f.overlaps(tmin, tmax)]
            if overlapping:
                keep &= ~self._stored_mask(partition, overlapping, key, names, t0, tmin, tmax)
            if not keep.all():
                table = table.filter(pa.array(keep))
            rows = table.num_rows
            if rows == 0:
                return 0, len(key)
            table = _compact_dictionary(table)
            new_file = self._write_file(partition, table)
            commit_manifest(partition, Manifest(files=[*manifest.files, new_file]))
        return rows, len(key) - rows

    def _stored_mask(
        self,
        partition: Path,
        files: Sequence[PartFile],
        key: np.ndarray,
        names: pa.Array,
        t0: int,
        tmin: int,
        tmax: int,
    ) -> np.ndarray:
        """Which batch keys the partition already holds (anti-join on (signal, ts))."""
        existing = pq.read_table(
            [str(partition / f.name) for f in files],
            columns=["signal", "ts"],
            filters=[
                ("ts", ">=", pd.Timestamp(tmin, unit="us", tz="UTC")),
                ("ts", "<=", pd.Timestamp(tmax, unit="us", tz="UTC")),
            ],
            schema=KEY_SCHEMA,
        )
        if existing.num_rows == 0:
            return np.zeros(len(key), dtype=bool)
        ex_signal = pc.cast(existing.column("signal"), pa.string())
        ex_codes = pc.index_in(ex_signal, value_set=pc.cast(names, pa.string()))
        known = pc.is_valid(ex_codes)
        ex_codes_np = pc.filter(ex_codes, known).to_numpy().astype(np.int64)
        ex_ts = pc.filter(existing.column("ts"), known).cast(pa.int64()).to_numpy()
        ex_key = np.sort(ex_codes_np * US_PER_DAY + (ex_ts - t0))
        if len(ex_key) == 0:
            return np.zeros(len(key), dtype=bool)
        pos = np.searchsorted(ex_key, key)
        return ex_key[np.minimum(pos, len(ex_key) - 1)] == key

    def _write_file(self, partition: Path, table: pa.Table) -> PartFile:
        """Write, fsync and rename one immutable part file (not yet committed)."""
        exact = table.column("value_int").combine_chunks() if "value_int" in table.column_names else None
        table = table.select(FILE_SCHEMA.names).cast(FILE_SCHEMA)
        value_type, stored = ts_values.encode(table.column("value").combine_chunks())
        idx = table.schema.get_field_index("value")
        table = table.set_column(idx, pa.field("value", stored.type, nullable=True), stored)
        value_encoding = "BYTE_STREAM_SPLIT" if value_type == ts_values.FLOAT64 else "DELTA_BINARY_PACKED"
        encodings = {"ts": "DELTA_BINARY_PACKED", "value": value_encoding}
        exact_ints = exact is not None and exact.null_count < len(exact)
        if exact_ints:
            assert exact is not None
            table = table.append_column(VALUE_INT_FIELD, exact)
            encodings["value_int"] = "DELTA_BINARY_PACKED"
        tmp = temp_path(partition)
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=self.compression_level,
            use_dictionary=["signal", "quality"],
            column_encoding=encodings,
            row_group_size=self.row_group_size,
            write_statistics=["signal", "ts"],
        )
        fsync_file(tmp)
        ts = table.column("ts").cast(pa.int64())
        tmin, tmax = int(pc.min(ts).as_py()), int(pc.max(ts).as_py())
        final = partition / part_name(tmin, tmax)
        os.replace(tmp, final)
        fsync_dir(partition)
        dictionary = table.column("signal").combine_chunks().dictionary
        signals = tuple(sorted(str(s) for s in dictionary.to_pylist()))
        return PartFile(
            name=final.name,
            min_us=tmin,
            max_us=tmax,
            rows=table.num_rows,
            bytes=final.stat().st_size,
            signals=signals,
            value_type=value_type,
            exact_ints=exact_ints,
        )

    # ------------------------------------------------------------------ write-ahead log
    def _wal_dir(self, org: str) -> Path:
        check_path_safe(org, "organisation")
        return self.root / f"org={org}" / WAL_DIR

    def append(self, org: str, batch: pa.Table) -> WriteResult:
        """Store a batch durably through the organisation's write-ahead log (one fsync).

        For streams of small batches (an ingest worker's flush): returns after the record is
        fsynced, whatever the batch touches. Duplicates are not looked up here (that would
        cost the Parquet reads the log avoids): queries and compaction keep the first copy of
        each (asset, signal, ts), so ``duplicates`` is always 0 and ``written`` counts rows
        received. Use ``write`` where exact duplicate counts matter (file ingest, the API).
        """
        prepared = _prepare(org, batch)
        if prepared is None:
            return WriteResult(written=0, duplicates=0)
        asset_dict, table = prepared
        columns = {
            "asset": asset_dict.cast(pa.string()),
            "signal": table.column("signal").cast(pa.string()),
            "ts": table.column("ts"),
            "value": table.column("value"),
            "quality": table.column("quality"),
        }
        if "value_int" in table.column_names:
            columns["value_int"] = table.column("value_int")
        record = wal_encode(pa.table(columns))
        with self._wal_lock:
            writer = self._writers.get(org)
            if writer is None:
                writer = self._writers[org] = WalWriter(
                    self._wal_dir(org), segment_bytes=self.wal_segment_bytes
                )
            compactor = self._compactor
            if compactor is None:
                compactor = self._compactor = _WalCompactor(self)
                compactor.start()
            compactor.orgs.add(org)
        writer.append(record)
        return WriteResult(written=table.num_rows, duplicates=0)

    def wal_sink(self) -> ReadingSink:
        """This store as a ``ReadingSink`` that writes through the log (for ingest workers)."""
        return _WalSink(self)

    def flush_wal(self, org: str) -> int:
        """Seal the log and compact every sealed segment into Parquet now; returns rows read."""
        seal(self._wal_dir(org))
        return self._compact_sealed(org, blocking=True)

    def _compact_sealed(self, org: str, *, blocking: bool) -> int:
        """Turn sealed segments into partitions (idempotent), then delete them."""
        directory = self._wal_dir(org)
        with contextlib.ExitStack() as stack:
            if not directory.is_dir():
                return 0
            held = stack.enter_context(file_lock(directory / COMPACT_LOCK, blocking=blocking))
            if not held:
                return 0  # another process is compacting this organisation's log
            return self._compact_segments(org)

    def _compact_segments(self, org: str) -> int:
        """The work of ``_compact_sealed``; the caller holds ``COMPACT_LOCK``."""
        directory = self._wal_dir(org)
        rows = 0
        touched: set[str] = set()
        for seq in list_segments(directory)[:-1]:
            path = directory / segment_name(seq)
            records, _ = read_segment(path)
            if records:
                table = wal_concat([wal_decode(r) for r in records])
                rows += table.num_rows
                self.write(org, table)
                touched.update(str(a) for a in pc.unique(table.column("asset")).to_pylist())
            # Committed to Parquet: the segment may go (a crash before this replays it).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            fsync_dir(directory)
        merged = sum(self._merge_small_files(org, asset) for asset in sorted(touched))
        if merged:
            # Hand the merges' freed buffers back to the OS: Arrow's allocator otherwise keeps
            # them for later allocations, and the worker's RSS with them (~10 MB, issue 11).
            pa.default_memory_pool().release_unused()
        return rows

    def tidy(
        self,
        org: str,
        asset: str,
        start: datetime | str | pd.Timestamp | int | None,
        end: datetime | str | pd.Timestamp | int | None,
    ) -> int:
        """Merge the small files of ``asset``'s partitions between ``start`` and ``end`` (a
        file upload's span); returns the number of merges.

        Bounded like the log's merges (``_merge_plan``: never more than ``merge_max_rows`` rows
        at once, final files left as they are), unlike ``compact``, which reads each partition
        whole: a day that also holds a machine's stream is not loaded into memory, and the
        asset's other days are not rewritten at every upload.
        """
        self.flush_wal(org)
        lo, hi = _to_us(start), _to_us(end)
        days = None
        if lo is not None and hi is not None:
            days = {_day_name(d) for d in range(lo // US_PER_DAY, hi // US_PER_DAY + 1)}
        return self._merge_small_files(org, asset, min_files=2, days=days)

    def _merge_small_files(
        self, org: str, asset: str, *, min_files: int | None = None, days: set[str] | None = None
    ) -> int:
        """Merge each partition's small files (of the ``days`` given, else all) while there are
        ``min_files`` of them (default ``merge_files``; see ``_merge_plan``: size-tiered, and
        never more than ``merge_max_rows`` rows at once); returns the number of merges."""
        least = self.merge_files if min_files is None else min_files
        done = 0
        for partition in self._partitions(org, asset):
            if days is not None and partition.name.removeprefix("date=") not in days:
                continue
            while self._merge_plan(read_manifest(partition).files, least):
                with self._locked(partition) as manifest:
                    chosen = self._merge_plan(manifest.files, least)
                    if not chosen:
                        break
                    keep = [f for f in manifest.files if f not in chosen]
                    # Files of one partition never share a key (each write drops what is stored).
                    merged, _ = _sort_dedupe(_read_parts(partition, chosen))
                    new_file = self._write_rollup(partition, self._write_file(partition, merged), merged)
                    commit_manifest(partition, Manifest(files=[*keep, new_file]))
                    for old in chosen:
                        for name in [n for n in (old.name, old.rollup) if n]:
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(partition / name)
                    fsync_dir(partition)
                    done += 1
        return done

    def _merge_plan(self, files: Sequence[PartFile], min_files: int | None = None) -> list[PartFile]:
        """The files a log merge rewrites into one (none: nothing to do), so that a partition
        that grows all day keeps a bounded number of files and a merge a bounded size:

        * files of at least ``merge_max_rows // 2`` rows are final, never read by a merge
          again (a day becomes a series of such files, which every read handles);
        * the others are merged once there are ``min_files`` of them (default ``merge_files``;
          ``tidy`` asks for 2), size-tiered: while
          the largest outweighs the rest together it is left alone (so it is not rewritten
          at every merge), then the smallest are taken while their rows fit in
          ``merge_max_rows`` (any two non-final files do).
        """
        cap = self.merge_max_rows
        small = sorted((f for f in files if f.rows < cap // 2), key=lambda f: f.rows)
        if len(small) < (self.merge_files if min_files is None else min_files):
            return []
        while len(small) > 2 and small[-1].rows > sum(f.rows for f in small[:-1]):
            small.pop()
        chosen: list[PartFile] = []
        total = 0
        for f in small:
            if total + f.rows > cap:
                break
            chosen.append(f)
            total += f.rows
        return chosen if len(chosen) >= 2 else []

    def _view(self, org: str) -> WalView:
        with self._wal_lock:
            view = self._views.get(org)
            if view is None:
                view = self._views[org] = WalView(self._wal_dir(org))
        view.refresh()
        return view

    def _wal_rows(
        self,
        view: WalView,
        asset: str,
        selected: list[tuple[Path, PartFile]],
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> pa.Table | None:
        """The log's rows of ``asset`` in [start, end) that Parquet (``selected``) lacks.

        The first copy of each (signal, ts) in the log is kept; ``selected`` must have been
        read *after* the view was refreshed.
        """
        table = view.rows(asset)
        if table is None:
            return None
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        mask = np.ones(len(ts), dtype=bool)
        if start_us is not None:
            mask &= ts >= start_us
        if end_us is not None:
            mask &= ts < end_us
        sig = pc.dictionary_encode(table.column("signal")).combine_chunks()
        codes = sig.indices.to_numpy().astype(np.int64)
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return None
        # First copy of each key, in log order (lexsort is stable).
        order = idx[np.lexsort((ts[idx], codes[idx]))]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (codes[order][1:] != codes[order][:-1]) | (ts[order][1:] != ts[order][:-1])
        keep = np.sort(order[first])
        # Minus what Parquet holds, one day partition at a time.
        by_partition: dict[Path, list[PartFile]] = {}
        for partition, f in selected:
            by_partition.setdefault(partition, []).append(f)
        days = ts[keep] // US_PER_DAY
        stored = np.zeros(len(keep), dtype=bool)
        for day in np.unique(days):
            files = by_partition.get(self._partition_dir(view, asset, int(day)), [])
            if not files:
                continue
            in_day = np.flatnonzero(days == day)
            rows = keep[in_day]
            t0 = int(day) * US_PER_DAY
            key = codes[rows] * US_PER_DAY + (ts[rows] - t0)
            tmin, tmax = int(ts[rows].min()), int(ts[rows].max())
            overlapping = [f for f in files if f.overlaps(tmin, tmax)]
            if overlapping:
                partition = self._partition_dir(view, asset, int(day))
                stored[in_day] = self._stored_mask(
                    partition, overlapping, key, sig.dictionary, t0, tmin, tmax
                )
        keep = keep[~stored]
        if len(keep) == 0:
            return None
        out = table.take(pa.array(keep))
        return out.set_column(0, "signal", pc.cast(out.column("signal"), pa.string()))

    def _partition_dir(self, view: WalView, asset: str, day: int) -> Path:
        return view.dir.parent / f"asset={asset}" / f"date={_day_name(day)}"

    # ------------------------------------------------------------------ compaction
    def compact(self, org: str, asset: str | None = None, *, min_files: int = 2) -> CompactResult:
        """Merge each partition's files into one (de-duplicating again, first write wins).

        The organisation's write-ahead log is compacted into partitions first. The manifest
        swap is the commit point: a crash before it leaves the old files committed (the new
        one is removed later), a crash after it leaves the new file committed (the old ones
        are removed later). Readers never see both.
        """
        self.flush_wal(org)
        assets = [asset] if asset is not None else self._assets(org)
        partitions = files_before = files_after = rows = dups = 0
        for name in assets:
            for partition in self._partitions(org, name):
                done = self._compact_partition(partition, min_files=min_files)
                if done is None:
                    continue
                partitions += 1
                files_before += done[0]
                files_after += 1
                rows += done[1]
                dups += done[2]
        return CompactResult(partitions, files_before, files_after, rows, dups)

    def _compact_partition(self, partition: Path, *, min_files: int) -> tuple[int, int, int] | None:
        """Merge one partition; (files before, rows, duplicates removed) or None if skipped."""
        with self._locked(partition) as manifest:
            files = manifest.files
            if not files or (len(files) < min_files and all(f.rollup for f in files)):
                return None
            table = _read_parts(partition, files)
            merged, removed = _sort_dedupe(table)
            new_file = self._write_rollup(partition, self._write_file(partition, merged), merged)
            commit_manifest(partition, Manifest(files=[new_file]))
            for old in files:
                for name in [n for n in (old.name, old.rollup) if n]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(partition / name)
            fsync_dir(partition)
        return len(files), merged.num_rows, removed

    def _write_rollup(self, partition: Path, part: PartFile, rows: pa.Table) -> PartFile:
        """1-minute partials of a (not yet committed) part file, written durably beside it;
        ``rows`` are the file's rows, sorted by (signal, ts) (see ``ts_rollups``)."""
        table = rollup(rows)
        tmp = temp_path(partition)
        pq.write_table(table, tmp, compression="zstd", compression_level=self.compression_level)
        fsync_file(tmp)
        final = partition / f"{ROLLUP_PREFIX}{part.name.removeprefix('part-')}"
        os.replace(tmp, final)
        fsync_dir(partition)
        return replace(part, rollup=final.name, rollup_bytes=final.stat().st_size)

    # ------------------------------------------------------------------ reading
    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._con_lock:
            if self._con is None:
                con = duckdb.connect()
                con.execute("SET TimeZone = 'UTC'")
                # Part files are immutable (unique names), so cached footers never go stale.
                with contextlib.suppress(duckdb.Error):
                    con.execute("SET parquet_metadata_cache = true")
                self._con = con
            return self._con.cursor()

    def files_for(self, org: str, asset: str, start: object = None, end: object = None) -> list[Path]:
        """Committed files of ``asset`` that may hold readings in [start, end)."""
        return [partition / f.name for partition, f in self._select(org, asset, start, end)]

    def _select(
        self, org: str, asset: str, start: object = None, end: object = None
    ) -> list[tuple[Path, PartFile]]:
        start_us = _to_us(start)  # type: ignore[arg-type]
        end_us = _to_us(end)  # type: ignore[arg-type]
        asset_dir = self._asset_dir(org, asset)
        if start_us is None or end_us is None:
            partitions = self._partitions(org, asset)
        else:
            first, last = start_us // US_PER_DAY, (end_us - 1) // US_PER_DAY
            partitions = [asset_dir / f"date={_day_name(d)}" for d in range(first, last + 1)]
        lo = start_us if start_us is not None else -(2**62)
        hi = (end_us - 1) if end_us is not None else 2**62
        out: list[tuple[Path, PartFile]] = []
        for partition in partitions:
            out += [(partition, f) for f in read_manifest(partition).files if f.overlaps(lo, hi)]
        return out

    def query(
        self,
        org: str,
        asset: str,
        signals: list[str] | None = None,
        start: datetime | str | pd.Timestamp | None = None,
        end: datetime | str | pd.Timestamp | None = None,
        interval: str | None = None,
        agg: Agg = "mean",
        *,
        exact: bool = False,
    ) -> pd.DataFrame:
        """Readings of one asset in [start, end) (naive times are UTC), long format.

        Without ``interval``: columns ts, signal, value, quality (ordered by ts, signal), and
        with ``exact=True`` also ``value_int`` (pandas Int64): the exact integer where a source
        sent one beyond +-2^53, which ``value`` (float64) can only approximate; null elsewhere,
        where ``value`` is exact.
        With ``interval`` (e.g. '1min'): one row per bucket and signal, buckets aligned to
        the Unix epoch (so '1min' starts on the minute, '1D' at UTC midnight) and labelled
        by their start; ``agg`` is mean, min, max or last.
        """
        if agg not in _AGG_SQL:
            raise AxHubError(f"unknown aggregation {agg!r}", hint="use mean, min, max or last")
        bucket = interval_us(interval) if interval else None
        start_us, end_us = _to_us(start), _to_us(end)
        for attempt in range(5):
            # The log first, then the manifests (see the module docstring).
            view = self._view(org)
            selected = self._select(org, asset, start, end)
            try:
                wal = self._wal_rows(view, asset, selected, start_us, end_us)
                if not selected and wal is None:
                    return _empty_frame(bucket is None, exact and bucket is None)
                return self._run_query(
                    selected, wal, signals, start_us, end_us, bucket, agg, exact and bucket is None
                )
            except (duckdb.IOException, duckdb.InvalidInputException, FileNotFoundError, OSError):
                # A compaction replaced files between reading the manifest and opening them.
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _run_query(
        self,
        selected: list[tuple[Path, PartFile]],
        wal: pa.Table | None,
        signals: list[str] | None,
        start_us: int | None,
        end_us: int | None,
        bucket: int | None,
        agg: str,
        exact: bool = False,
    ) -> pd.DataFrame:
        if signals is not None and not signals:
            return _empty_frame(bucket is None, exact)
        epoch = datetime.fromtimestamp(0, UTC)
        bounds: list[object] = []
        where: list[str] = []
        if start_us is not None:
            where.append("{t} >= ?")
            bounds.append(epoch + timedelta(microseconds=start_us))
        if end_us is not None:
            where.append("{t} < ?")
            bounds.append(epoch + timedelta(microseconds=end_us))
        if signals is not None:
            where.append(f"signal IN ({', '.join('?' for _ in signals)})")
        filters = [*bounds, *(signals or [])]

        def cond(time_expr: str) -> str:
            return f"WHERE {' AND '.join(where).format(t=time_expr)}" if where else ""

        # Rollups answer exactly when buckets are whole minutes and the window is minute-aligned.
        aligned = (
            bucket is not None
            and bucket % ROLLUP_US == 0
            and all(x is None or x % ROLLUP_US == 0 for x in (start_us, end_us))
        )
        raw: dict[tuple[str, bool], list[str]] = {}
        rollups: dict[str, list[str]] = {}
        for p, f in selected:
            if aligned and f.rollup:
                rollups.setdefault(f.value_type, []).append(str(p / f.rollup))
            else:
                raw.setdefault((f.value_type, exact and f.exact_ints), []).append(str(p / f.name))
        # Raw rows: Parquet files grouped by value type (legacy float32 read as decimals),
        # plus the log's rows that Parquet lacks.
        raw_parts: list[str] = []
        raw_params: list[object] = []
        no_ints = ", CAST(NULL AS BIGINT) AS value_int" if exact else ""
        for (value_type, has_ints), files in raw.items():
            value = ts_values.sql(value_type)
            ints = ", value_int" if has_ints else no_ints
            raw_parts.append(f"SELECT signal, ts, {value}, quality{ints} FROM read_parquet(?) {cond('ts')}")
            raw_params += [files, *filters]
        if wal is not None:
            ints = ", value_int" if exact and "value_int" in wal.column_names else no_ints
            raw_parts.append(f"SELECT signal, ts, value, quality{ints} FROM wal_rows {cond('ts')}")
            raw_params += filters
        raw_sql = " UNION ALL ".join(raw_parts)
        params: list[object]
        if bucket is None:
            ints = ", value_int" if exact else ""
            sql = f"SELECT epoch_us(ts) AS ts_us, signal, value, quality{ints} FROM ({raw_sql}) ORDER BY ALL"
            params = raw_params
        elif not rollups:
            sql = (
                f"SELECT (epoch_us(ts) // {bucket}) * {bucket} AS ts_us, signal, {_AGG_SQL[agg]} AS value "
                f"FROM ({raw_sql}) GROUP BY ALL ORDER BY ts_us, signal"
            )
            params = raw_params
        else:
            from_raw, from_rollup, final = _PARTIAL_SQL[agg]
            roll_parts: list[str] = []
            params = []
            for value_type, files in rollups.items():
                cols = "signal, bucket_us, n, s, lo, hi, last_v, last_ts"
                if value_type == ts_values.LEGACY_FLOAT32:
                    # Rollups of float32 files hold float32 partials; newer ones hold doubles.
                    lo, hi, last = (ts_values.sql(value_type, c) for c in ("lo", "hi", "last_v"))
                    cols = f"signal, bucket_us, n, s, {lo}, {hi}, {last}, last_ts"
                roll_parts.append(
                    f"SELECT {cols} FROM read_parquet(?) {cond('to_timestamp(bucket_us // 1000000)')}"
                )
                params += [files, *filters]
            parts = [
                f"SELECT signal, (bucket_us // {bucket}) * {bucket} AS b, {from_rollup} "
                f"FROM ({' UNION ALL '.join(roll_parts)}) GROUP BY ALL"
            ]
            if raw_parts:
                parts.append(
                    f"SELECT signal, (epoch_us(ts) // {bucket}) * {bucket} AS b, {from_raw} "
                    f"FROM ({raw_sql}) GROUP BY ALL"
                )
                params += raw_params
            sql = (
                f"SELECT b AS ts_us, signal, {final} AS value FROM ({' UNION ALL BY NAME '.join(parts)}) "
                "GROUP BY ALL ORDER BY ts_us, signal"
            )
        cur = self._connection()
        try:
            if wal is not None:
                cur.register("wal_rows", wal)
            result = cur.sql(sql, params=params).to_arrow_table()
        finally:
            cur.close()
        if isinstance(result, pa.RecordBatchReader):
            result = result.read_all()
        frame = pd.DataFrame(
            {
                "ts": pd.to_datetime(result.column("ts_us").to_numpy(), unit="us", utc=True),
                "signal": result.column("signal").to_numpy(zero_copy_only=False),
                "value": result.column("value").to_numpy(zero_copy_only=False).astype(np.float64),
            }
        )
        if bucket is None:
            frame["quality"] = result.column("quality").to_numpy().astype(np.uint8)
        if exact:
            # Vectorised (a Python list per row cost ~0.5 us a reading on every exact query).
            ints = result.column("value_int").combine_chunks().cast(pa.int64())
            frame["value_int"] = pd.arrays.IntegerArray(
                np.asarray(ints.fill_null(0).to_numpy(), dtype=np.int64),
                np.asarray(ints.is_null().to_numpy(zero_copy_only=False), dtype=bool),
            )
        return frame

    def query_wide(
        self,
        org: str,
        asset: str,
        signals: list[str] | None = None,
        start: datetime | str | pd.Timestamp | None = None,
        end: datetime | str | pd.Timestamp | None = None,
        interval: str | None = None,
        agg: Agg = "mean",
        *,
        exact: bool = False,
    ) -> pd.DataFrame:
        """Like ``query`` but a ``ts`` column plus one column per signal (handy for models).

        Signals are in the order asked for (else sorted); a signal without a reading at a
        time is NaN there. With ``exact=True`` (raw readings only) a signal with integers
        beyond +-2^53 has them as Python ints in an object column (``exact_values``).
        """
        exact = exact and interval is None
        long = self.query(org, asset, signals, start, end, interval, agg, exact=exact)
        if exact:
            long["value"] = exact_values(long)
        wide = long.pivot(index="ts", columns="signal", values="value")
        wide.columns.name = None
        order = [s for s in signals if s in wide.columns] if signals else sorted(wide.columns)
        return wide.reindex(columns=order).reset_index()

    def time_range(self, org: str, asset: str) -> tuple[datetime | None, datetime | None]:
        """First and last stored reading time of ``asset`` (UTC): manifests and the log."""
        lo: int | None = None
        hi: int | None = None
        wal = self._view(org).rows(asset)
        if wal is not None and wal.num_rows:
            ts = wal.column("ts").cast(pa.int64())
            lo, hi = int(pc.min(ts).as_py()), int(pc.max(ts).as_py())
        for partition in self._partitions(org, asset):
            for f in read_manifest(partition).files:
                lo = f.min_us if lo is None else min(lo, f.min_us)
                hi = f.max_us if hi is None else max(hi, f.max_us)
        epoch = datetime.fromtimestamp(0, UTC)
        return (
            None if lo is None else epoch + timedelta(microseconds=lo),
            None if hi is None else epoch + timedelta(microseconds=hi),
        )

    def list_signals(self, org: str, asset: str) -> list[str]:
        """Signal names stored for ``asset`` (manifests and the log; no data file is opened)."""
        names: set[str] = set()
        wal = self._view(org).rows(asset)
        if wal is not None:
            names |= {str(s) for s in pc.unique(wal.column("signal")).to_pylist()}
        for partition in self._partitions(org, asset):
            names |= read_manifest(partition).signals()
        return sorted(names)

    def list_assets(self, org: str) -> list[str]:
        return sorted(set(self._assets(org)) | self._view(org).assets())

    @contextlib.contextmanager
    def _log_drained(self, org: str) -> Iterator[None]:
        """Run the body with the organisation's log drained into Parquet and no compaction
        running: every record appended before the seal is in partitions (so a delete sees
        it), and no compactor (of any process) writes into a partition until the body ends
        (so a directory renamed away cannot swallow rows appended after the seal). Appends go
        on meanwhile, into the new segment: they come after the delete. The seal is the
        point in the stream where a delete happens.
        """
        directory = self._wal_dir(org)
        if not directory.is_dir():
            yield
            return
        with file_lock(directory / COMPACT_LOCK):
            seal(directory)
            self._compact_segments(org)
            yield

    def delete_asset(self, org: str, asset: str) -> int:
        """Delete every reading of one asset, the log's included; returns how many there were.

        The directory is first renamed out of the layout (atomic: queries stop seeing it at
        once, and a later asset with the same slug starts empty), then removed; a crash in
        between leaves only a ``.deleted-`` directory that no query reads (removed by the next
        delete)."""
        check_path_safe(asset, "asset")
        source = self._asset_dir(org, asset)
        with self._log_drained(org):
            self._remove_trash(source.parent)
            if not source.is_dir():
                return 0
            rows = sum(read_manifest(p).total_rows for p in self._partitions(org, asset))
            trash = source.with_name(f".deleted-{asset}-{uuid.uuid4().hex[:8]}")
            os.replace(source, trash)
            fsync_dir(source.parent)
        shutil.rmtree(trash, ignore_errors=True)
        return rows

    def delete_signal(self, org: str, asset: str, signal: str) -> int:
        """Delete one signal's readings of one asset (the log's included); returns rows removed.

        Each partition holding the signal is rewritten without it under its lock and committed
        by the manifest swap, so a crash leaves every partition either as it was or without the
        signal, never half of a file; running the delete again finishes the rest."""
        check_path_safe(asset, "asset")
        removed = 0
        with self._log_drained(org):
            for partition in self._partitions(org, asset):
                removed += self._drop_signal(partition, signal)
        return removed

    def _drop_signal(self, partition: Path, signal: str) -> int:
        with self._locked(partition) as manifest:
            hit = [f for f in manifest.files if not f.signals or signal in f.signals]
            if not hit:
                return 0
            table = _read_parts(partition, hit)
            mask = pc.not_equal(pc.cast(table.column("signal"), pa.string()), signal)
            kept = table.filter(mask)
            removed = table.num_rows - kept.num_rows
            if removed == 0:
                return 0
            new_files = []
            if kept.num_rows:
                merged, _ = _sort_dedupe(kept)
                new_files.append(self._write_rollup(partition, self._write_file(partition, merged), merged))
            commit_manifest(
                partition, Manifest(files=[*(f for f in manifest.files if f not in hit), *new_files])
            )
            for old in hit:
                for name in [n for n in (old.name, old.rollup) if n]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(partition / name)
            fsync_dir(partition)
        return removed

    @staticmethod
    def _remove_trash(org_dir: Path) -> None:
        """Finish deletes a crash interrupted (their directories are already out of the layout)."""
        if not org_dir.is_dir():
            return
        for entry in os.scandir(org_dir):
            if entry.is_dir() and entry.name.startswith(".deleted-"):
                shutil.rmtree(entry.path, ignore_errors=True)

    def count(self, org: str, asset: str | None = None) -> int:
        """Stored readings of an organisation or one of its assets (the log included)."""
        return self.stats(org, asset).points

    def stats(self, org: str, asset: str | None = None) -> StoreStats:
        """Points, bytes on disk, files and partitions.

        Points count readings still in the log once (what a query returns); bytes and
        files are those of committed Parquet files, plus the log's segments for a whole
        organisation.
        """
        view = self._view(org)
        points = size = files = parts = 0
        for name in [asset] if asset is not None else self.list_assets(org):
            manifests = [(p, read_manifest(p)) for p in self._partitions(org, name)]
            for _, manifest in manifests:
                points += manifest.total_rows
                size += manifest.total_bytes
                files += len(manifest.files)
                parts += 1 if manifest.files else 0
            selected = [(p, f) for p, m in manifests for f in m.files]
            wal = self._wal_rows(view, name, selected)
            points += 0 if wal is None else wal.num_rows
        if asset is None:
            directory = self._wal_dir(org)
            for seq in list_segments(directory):
                with contextlib.suppress(FileNotFoundError):
                    size += (directory / segment_name(seq)).stat().st_size
        return StoreStats(points=points, bytes=size, files=files, partitions=parts)

    def close(self) -> None:
        """Stop the log compactor (the log itself is durable) and release files."""
        with self._wal_lock:
            compactor, self._compactor = self._compactor, None
            writers = list(self._writers.values())
            self._writers.clear()
        if compactor is not None:
            compactor.stop.set()
            compactor.join(30)
        for writer in writers:
            writer.close()
        with self._con_lock:
            if self._con is not None:
                self._con.close()
                self._con = None


class _WalSink:
    """``ReadingSink`` over ``TimeSeriesStore.append``."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store

    def write(self, org: str, batch: pa.Table) -> WriteResult:
        return self.store.append(org, batch)


class _WalCompactor(threading.Thread):
    """Seals each organisation's log when it is old or big enough and compacts it."""

    def __init__(self, store: TimeSeriesStore) -> None:
        super().__init__(name="axhub-wal-compactor", daemon=True)
        self.store = store
        self.orgs: set[str] = set()
        self.stop = threading.Event()
        self._since: dict[tuple[str, int], float] = {}

    def run(self) -> None:
        period = max(0.05, min(1.0, self.store.wal_max_age_s / 4))
        while not self.stop.wait(period):
            for org in sorted(self.orgs):
                try:
                    self._maintain(org)
                except Exception:  # a full disk or a bad file must not kill the thread
                    log.exception("compacting the write-ahead log of %s failed; will retry", org)

    def _maintain(self, org: str) -> None:
        directory = self.store._wal_dir(org)
        segments = list_segments(directory)
        if not segments:
            return
        active = segments[-1]
        try:
            size = (directory / segment_name(active)).stat().st_size
        except FileNotFoundError:
            return
        now = time.monotonic()
        if size > 0:
            since = self._since.setdefault((org, active), now)
            if now - since >= self.store.wal_max_age_s:
                seal(directory)
        if len(list_segments(directory)) > 1:
            self.store._compact_sealed(org, blocking=False)
        live = set(list_segments(directory))
        self._since = {k: v for k, v in self._since.items() if k[0] != org or k[1] in live}


# ---------------------------------------------------------------------- helpers
def _prepare(org: str, batch: pa.Table) -> tuple[pa.DictionaryArray, pa.Table] | None:
    """Check a readings batch; (asset codes, table of signal/ts/value/quality) or None if empty."""
    check_path_safe(org, "organisation")
    n = batch.num_rows
    if n == 0:
        return None
    missing = {"asset", "signal", "ts", "value"} - set(batch.column_names)
    if missing:
        raise AxHubError(
            f"readings batch lacks column(s) {sorted(missing)}",
            hint="build batches with axhub.core.readings.make_batch",
        )
    ts_col = batch.column("ts")
    if not pa.types.is_timestamp(ts_col.type) or ts_col.type.tz is None:
        raise AxHubError(
            f"readings batch 'ts' must be a UTC timestamp, got {ts_col.type}",
            hint="use make_batch or cast to pa.timestamp('us', tz='UTC')",
        )
    if ts_col.null_count:
        raise AxHubError("readings batch has rows without a timestamp", hint="drop them before writing")
    ts = pc.cast(ts_col, pa.timestamp("us", tz="UTC")).combine_chunks()
    asset_dict = _dictionary(batch.column("asset"))
    for name in asset_dict.dictionary.to_pylist():
        check_path_safe(str(name), "asset")
    # float64 end to end: nothing a machine sent is rounded (see the module docstring).
    values = pc.cast(batch.column("value"), pa.float64()).combine_chunks()
    exact = None
    if "value_int" in batch.column_names:
        values, exact = _exact_ints(values, pc.cast(batch.column("value_int"), pa.int64()).combine_chunks())
    if "quality" in batch.column_names:
        quality = pc.cast(batch.column("quality"), pa.uint8()).combine_chunks()
    else:
        quality = pa.array(np.zeros(n, dtype=np.uint8))
    columns = {"signal": _dictionary(batch.column("signal")), "ts": ts, "value": values, "quality": quality}
    if exact is not None:
        columns["value_int"] = exact
    return asset_dict, pa.table(columns)


def exact_values(frame: pd.DataFrame) -> pd.Series:
    """The ``value`` column of an ``exact=True`` query with its exact integers put in: float64
    as it is when no row has one (no per-row work), else an object column holding Python ints
    in those rows (shown, written to CSV and to JSON digit for digit)."""
    exact = frame.get("value_int")
    if exact is None or not exact.notna().any():
        return frame["value"]
    given = exact.notna().to_numpy()
    values = frame["value"].to_numpy(dtype=np.float64).astype(object)
    values[given] = [int(v) for v in exact[given]]
    return pd.Series(values, index=frame.index, name="value")


def _exact_ints(values: pa.Array, ints: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """(values, value_int) as stored: where an exact integer is given, ``value`` becomes its
    float64 (so both columns always agree) and ``value_int`` is kept only beyond +-2^53 (within,
    the float64 is exact); None when no row needs it."""
    given = np.asarray(ints.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if not given.any():
        return values, None
    whole = np.asarray(ints.fill_null(0).to_numpy(), dtype=np.int64)
    floats = np.asarray(values.fill_null(0.0).to_numpy(), dtype=np.float64)
    missing = np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    floats = np.where(given, whole.astype(np.float64), floats)
    values = pa.array(floats, pa.float64(), mask=missing & ~given)
    beyond = given & ((whole > FLOAT_EXACT_INT) | (whole < -FLOAT_EXACT_INT))
    if not beyond.any():
        return values, None
    return values, pa.array(whole, pa.int64(), mask=~beyond)


def _read_values(
    paths: list[str], value_type: str, columns: list[str] | None = None, *, exact_ints: bool = False
) -> pa.Table:
    """Part files of one value type as FILE_SCHEMA rows (values decoded to float64), plus
    ``value_int`` if they have exact integers (and all columns are read)."""
    physical = FILE_SCHEMA.set(2, pa.field("value", ts_values.physical_type(value_type), nullable=True))
    if exact_ints and columns is None:
        physical = physical.append(VALUE_INT_FIELD)
    table = pq.read_table(paths, columns=columns, schema=physical)
    if "value" in table.column_names:
        idx = table.schema.get_field_index("value")
        decoded = ts_values.decode(value_type, table.column("value"))
        table = table.set_column(idx, FILE_SCHEMA.field("value"), decoded)
    return table


def _read_parts(partition: Path, files: Sequence[PartFile], columns: list[str] | None = None) -> pa.Table:
    """Committed files of a partition, in manifest order, with float64 values."""
    tables = []
    i = 0
    while i < len(files):
        # Consecutive files of one kind are read together (order = write order).
        j = i
        kind = (files[i].value_type, files[i].exact_ints)
        while j < len(files) and (files[j].value_type, files[j].exact_ints) == kind:
            j += 1
        paths = [str(partition / f.name) for f in files[i:j]]
        tables.append(_read_values(paths, kind[0], columns, exact_ints=kind[1]))
        i = j
    return wal_concat(tables)


def _dictionary(column: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    """A single dictionary array with string values (encodes plain strings)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        raise AxHubError("readings batch has rows without an asset or signal name")
    if pa.types.is_dictionary(arr.type):
        if not pa.types.is_string(arr.type.value_type):
            arr = arr.cast(pa.dictionary(arr.type.index_type, pa.string()))
        return arr
    return pc.dictionary_encode(pc.cast(arr, pa.string()))


def _group_rows(group: np.ndarray) -> list[tuple[int, np.ndarray | None]]:
    """Row indices of each (asset, day) group id, in their original order."""
    found = np.flatnonzero(np.bincount(group - group.min())) + group.min() if len(group) else []
    if len(found) <= 32:
        # Few (asset, day) pairs, e.g. a batch crossing midnight: masks beat a full sort.
        return [(int(g), np.flatnonzero(group == g)) for g in found]
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    bounds = np.flatnonzero(np.diff(sorted_group)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(group)]))
    return [(int(sorted_group[s]), order[s:e]) for s, e in zip(starts, ends, strict=True)]


def _compact_dictionary(table: pa.Table) -> pa.Table:
    """Drop dictionary entries no row uses, so a file's signal list is exact."""
    sig = table.column("signal").combine_chunks()
    codes = sig.indices.to_numpy(zero_copy_only=False)
    used = np.flatnonzero(np.bincount(codes, minlength=len(sig.dictionary)))
    if len(used) == len(sig.dictionary):
        return table.set_column(0, "signal", sig)
    new_codes = np.searchsorted(used, codes).astype(np.int32)
    new_sig = pa.DictionaryArray.from_arrays(pa.array(new_codes), sig.dictionary.take(pa.array(used)))
    return table.set_column(table.schema.get_field_index("signal"), "signal", new_sig)


def _sort_dedupe(table: pa.Table) -> tuple[pa.Table, int]:
    """Sort rows by (signal, ts) keeping the first of equal keys; returns (table, dropped)."""
    if table.num_rows == 0:
        return table, 0
    sig = pc.dictionary_encode(pc.cast(table.column("signal"), pa.string())).combine_chunks()
    table = table.set_column(0, "signal", sig)
    codes = sig.indices.to_numpy().astype(np.int64)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    t0 = int(ts.min())
    key = codes * US_PER_DAY + (ts - t0)
    order = np.argsort(key, kind="stable")
    key = key[order]
    keep = np.ones(len(key), dtype=bool)
    keep[1:] = key[1:] != key[:-1]
    out = table.take(pa.array(order[keep]))
    return _compact_dictionary(out), int(len(key) - keep.sum())


def _empty_frame(with_quality: bool, exact: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ts": pd.Series([], dtype="datetime64[us, UTC]"),
            "signal": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=np.float64),
        }
    )
    if with_quality:
        frame["quality"] = pd.Series([], dtype=np.uint8)
    if exact:
        frame["value_int"] = pd.Series([], dtype="Int64")
    return frame

"""Time-series store: readings as Parquet partitions, queried through DuckDB.

Layout: ``root/org=<org>/asset=<asset>/date=YYYY-MM-DD/part-<min_us>-<max_us>-<id>.parquet``
(UTC dates) plus a ``_manifest.json`` per partition that lists the committed files (see
``ts_files`` for the crash-safety protocol).

Choices, and why:

* **Values are stored as float32.** Sensor readings carry 3-5 significant digits (a 16-bit
  ADC, a thermocouple at 0.1 K); float32 keeps ~7, so nothing measurable is lost, and it
  halves the bytes before compression. With BYTE_STREAM_SPLIT + zstd, simulator-like data
  stores at ~2-3 bytes per point. Queries return float64 holding the float32 value.
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
  last) of the merged file, committed with it in the same manifest swap. A resampled query
  whose interval is a whole number of minutes over a minute-aligned window reads those
  instead of raw rows (and raw rows of files written since), combining the partials exactly.
* **Concurrency**: one file lock per partition serialises writers and compaction of that
  partition; readers take no lock (they read the manifest and retry if compaction removed a
  file under them).
"""

from __future__ import annotations

import contextlib
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
from axhub.core.readings import WriteResult
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

US_PER_DAY = 86_400_000_000
# Compaction stores 1-minute partial aggregates beside each merged file, so a resampled
# query (interval a multiple of 1 min, minute-aligned window) reads ~60x fewer rows.
ROLLUP_US = 60_000_000
Agg = Literal["mean", "min", "max", "last"]

# In-file schema; `asset` and `org` live in the path only.
FILE_SCHEMA = pa.schema(
    [
        pa.field("signal", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float32(), nullable=True),
        pa.field("quality", pa.uint8(), nullable=False),
    ]
)

# A stored float32 is returned as the float64 of its shortest decimal form (49.71, not
# 49.709999084), so values read back equal what was written to ~7 significant digits.
_AS_DECIMAL_DOUBLE = "CAST(CAST(value AS VARCHAR) AS DOUBLE)"
_AGG_SQL: dict[str, str] = {
    "mean": "avg(value)",
    "min": "CAST(CAST(min(value) AS VARCHAR) AS DOUBLE)",
    "max": "CAST(CAST(max(value) AS VARCHAR) AS DOUBLE)",
    "last": "CAST(CAST(arg_max(value, ts) FILTER (WHERE value IS NOT NULL) AS VARCHAR) AS DOUBLE)",
}
# Partial aggregates (per signal and bucket) that combine across raw files and rollups:
# (from raw rows, from rollup rows, final combination).
_PARTIAL_SQL: dict[str, tuple[str, str, str]] = {
    "mean": (
        "sum(CAST(value AS DOUBLE)) AS s, count(value) AS n",
        "sum(s) AS s, sum(n) AS n",
        "sum(s) / NULLIF(sum(n), 0)",
    ),
    "min": ("min(value) AS lo", "min(lo) AS lo", "CAST(CAST(min(lo) AS VARCHAR) AS DOUBLE)"),
    "max": ("max(value) AS hi", "max(hi) AS hi", "CAST(CAST(max(hi) AS VARCHAR) AS DOUBLE)"),
    "last": (
        "arg_max(value, ts) FILTER (WHERE value IS NOT NULL) AS lv, "
        "max(ts) FILTER (WHERE value IS NOT NULL) AS lt",
        "arg_max(last_v, last_ts) AS lv, max(last_ts) AS lt",
        "CAST(CAST(arg_max(lv, lt) AS VARCHAR) AS DOUBLE)",
    ),
}
_ROLLUP_SQL = (
    f"SELECT signal, (epoch_us(ts) // {ROLLUP_US}) * {ROLLUP_US} AS bucket_us, "
    "count(value) AS n, sum(CAST(value AS DOUBLE)) AS s, min(value) AS lo, max(value) AS hi, "
    "arg_max(value, ts) FILTER (WHERE value IS NOT NULL) AS last_v, "
    "max(ts) FILTER (WHERE value IS NOT NULL) AS last_ts "
    "FROM read_parquet(?) GROUP BY ALL ORDER BY signal, bucket_us"
)


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
    ) -> None:
        self.root = Path(root)
        self.compression_level = compression_level
        self.row_group_size = row_group_size
        self.lock_timeout_s = lock_timeout_s
        self._con_lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None

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
        check_path_safe(org, "organisation")
        n = batch.num_rows
        if n == 0:
            return WriteResult(written=0, duplicates=0)
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
        ts_np = ts.cast(pa.int64()).to_numpy()
        asset_dict = _dictionary(batch.column("asset"))
        signal_dict = _dictionary(batch.column("signal"))
        asset_names = [str(a) for a in asset_dict.dictionary.to_pylist()]
        for name in asset_names:
            check_path_safe(name, "asset")
        asset_codes = asset_dict.indices.to_numpy(zero_copy_only=False)
        values = pc.cast(batch.column("value"), pa.float32()).combine_chunks()
        if "quality" in batch.column_names:
            quality = pc.cast(batch.column("quality"), pa.uint8()).combine_chunks()
        else:
            quality = pa.array(np.zeros(n, dtype=np.uint8))
        table = pa.table(
            {
                "signal": signal_dict,
                "ts": ts,
                "value": values,
                "quality": quality,
            }
        )
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
            schema=FILE_SCHEMA,
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
        table = table.cast(FILE_SCHEMA)
        tmp = temp_path(partition)
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=self.compression_level,
            use_dictionary=["signal", "quality"],
            column_encoding={"ts": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"},
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
        )

    # ------------------------------------------------------------------ compaction
    def compact(self, org: str, asset: str | None = None, *, min_files: int = 2) -> CompactResult:
        """Merge each partition's files into one (de-duplicating again, first write wins).

        The manifest swap is the commit point: a crash before it leaves the old files
        committed (the new one is removed later), a crash after it leaves the new file
        committed (the old ones are removed later). Readers never see both.
        """
        assets = [asset] if asset is not None else self._assets(org)
        partitions = files_before = files_after = rows = dups = 0
        for name in assets:
            for partition in self._partitions(org, name):
                with self._locked(partition) as manifest:
                    files = manifest.files
                    if not files or (len(files) < min_files and all(f.rollup for f in files)):
                        continue
                    table = pq.read_table([str(partition / f.name) for f in files], schema=FILE_SCHEMA)
                    merged, removed = _sort_dedupe(table)
                    new_file = self._write_rollup(partition, self._write_file(partition, merged))
                    commit_manifest(partition, Manifest(files=[new_file]))
                    for old in files:
                        for name in [n for n in (old.name, old.rollup) if n]:
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(partition / name)
                    fsync_dir(partition)
                partitions += 1
                files_before += len(manifest.files)
                files_after += 1
                rows += merged.num_rows
                dups += removed
        return CompactResult(partitions, files_before, files_after, rows, dups)

    def _write_rollup(self, partition: Path, part: PartFile) -> PartFile:
        """1-minute partials of a (not yet committed) part file, written durably beside it."""
        cur = self._connection()
        try:
            table = cur.sql(_ROLLUP_SQL, params=[str(partition / part.name)]).to_arrow_table()
        finally:
            cur.close()
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
    ) -> pd.DataFrame:
        """Readings of one asset in [start, end) (naive times are UTC), long format.

        Without ``interval``: columns ts, signal, value, quality (ordered by ts, signal).
        With ``interval`` (e.g. '1min'): one row per bucket and signal, buckets aligned to
        the Unix epoch (so '1min' starts on the minute, '1D' at UTC midnight) and labelled
        by their start; ``agg`` is mean, min, max or last.
        """
        if agg not in _AGG_SQL:
            raise AxHubError(f"unknown aggregation {agg!r}", hint="use mean, min, max or last")
        bucket = interval_us(interval) if interval else None
        for attempt in range(5):
            selected = self._select(org, asset, start, end)
            if not selected:
                return _empty_frame(bucket is None)
            try:
                return self._run_query(selected, signals, _to_us(start), _to_us(end), bucket, agg)
            except (duckdb.IOException, duckdb.InvalidInputException, FileNotFoundError):
                # A compaction replaced files between reading the manifest and opening them.
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _run_query(
        self,
        selected: list[tuple[Path, PartFile]],
        signals: list[str] | None,
        start_us: int | None,
        end_us: int | None,
        bucket: int | None,
        agg: str,
    ) -> pd.DataFrame:
        if signals is not None and not signals:
            return _empty_frame(bucket is None)
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
        rollups = [str(p / f.rollup) for p, f in selected if aligned and f.rollup]
        raw = [str(p / f.name) for p, f in selected if not (aligned and f.rollup)]
        params: list[object]
        if bucket is None:
            sql = (
                f"SELECT epoch_us(ts) AS ts_us, signal, {_AS_DECIMAL_DOUBLE} AS value, quality "
                f"FROM read_parquet(?) {cond('ts')} ORDER BY ts_us, signal"
            )
            params = [raw, *filters]
        elif not rollups:
            sql = (
                f"SELECT (epoch_us(ts) // {bucket}) * {bucket} AS ts_us, signal, {_AGG_SQL[agg]} AS value "
                f"FROM read_parquet(?) {cond('ts')} GROUP BY ALL ORDER BY ts_us, signal"
            )
            params = [raw, *filters]
        else:
            from_raw, from_rollup, final = _PARTIAL_SQL[agg]
            parts = [
                f"SELECT signal, (bucket_us // {bucket}) * {bucket} AS b, {from_rollup} "
                f"FROM read_parquet(?) {cond('to_timestamp(bucket_us // 1000000)')} GROUP BY ALL"
            ]
            params = [rollups, *filters]
            if raw:
                parts.append(
                    f"SELECT signal, (epoch_us(ts) // {bucket}) * {bucket} AS b, {from_raw} "
                    f"FROM read_parquet(?) {cond('ts')} GROUP BY ALL"
                )
                params += [raw, *filters]
            sql = (
                f"SELECT b AS ts_us, signal, {final} AS value FROM ({' UNION ALL BY NAME '.join(parts)}) "
                "GROUP BY ALL ORDER BY ts_us, signal"
            )
        cur = self._connection()
        try:
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
    ) -> pd.DataFrame:
        """Like ``query`` but a ``ts`` column plus one column per signal (handy for models).

        Signals are in the order asked for (else sorted); a signal without a reading at a
        time is NaN there.
        """
        long = self.query(org, asset, signals, start, end, interval, agg)
        wide = long.pivot(index="ts", columns="signal", values="value")
        wide.columns.name = None
        order = [s for s in signals if s in wide.columns] if signals else sorted(wide.columns)
        return wide.reindex(columns=order).reset_index()

    def time_range(self, org: str, asset: str) -> tuple[datetime | None, datetime | None]:
        """First and last stored reading time of ``asset`` (UTC), from the manifests."""
        lo: int | None = None
        hi: int | None = None
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
        """Signal names stored for ``asset`` (from the manifests; no data file is opened)."""
        names: set[str] = set()
        for partition in self._partitions(org, asset):
            names |= read_manifest(partition).signals()
        return sorted(names)

    def list_assets(self, org: str) -> list[str]:
        return self._assets(org)

    def delete_asset(self, org: str, asset: str) -> bool:
        """Delete every reading of one asset. The directory is first renamed out of the layout
        (atomic: queries stop seeing it at once, and a later asset with the same slug starts
        empty), then removed; a crash in between leaves only a ``.deleted-`` directory that no
        query reads. Returns whether anything was there."""
        check_path_safe(asset, "asset")
        source = self._asset_dir(org, asset)
        if not source.is_dir():
            return False
        trash = source.with_name(f".deleted-{asset}-{uuid.uuid4().hex[:8]}")
        os.replace(source, trash)
        fsync_dir(source.parent)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def count(self, org: str, asset: str | None = None) -> int:
        """Stored readings of an organisation or one of its assets."""
        return self.stats(org, asset).points

    def stats(self, org: str, asset: str | None = None) -> StoreStats:
        """Points, bytes on disk, files and partitions (committed files only)."""
        points = size = files = parts = 0
        for name in [asset] if asset is not None else self._assets(org):
            for partition in self._partitions(org, name):
                manifest = read_manifest(partition)
                points += manifest.total_rows
                size += manifest.total_bytes
                files += len(manifest.files)
                parts += 1 if manifest.files else 0
        return StoreStats(points=points, bytes=size, files=files, partitions=parts)

    def close(self) -> None:
        with self._con_lock:
            if self._con is not None:
                self._con.close()
                self._con = None


# ---------------------------------------------------------------------- helpers
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


def _empty_frame(with_quality: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ts": pd.Series([], dtype="datetime64[us, UTC]"),
            "signal": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=np.float64),
        }
    )
    if with_quality:
        frame["quality"] = pd.Series([], dtype=np.uint8)
    return frame

"""File ingestion: CSV (any delimiter, wide or long layout) and Parquet into a ``ReadingSink``.

* **Streaming, bounded memory**: CSV is read block by block with ``pyarrow.csv.open_csv``
  (a background thread parses the next block while this one is converted and written);
  Parquet batch by batch. Memory depends on the block size, not the file size.
* **Vectorised**: times and values are parsed with Arrow casts, wide rows are unpivoted with
  numpy (signal-major, so each signal's run is already time-ordered for the store).
* **Validation**: a problem that makes the whole file unusable (missing column, no usable
  time, a text column among the signals) raises ``InputValidationError`` before anything is
  written. Single bad cells/rows go to a rejects CSV (file, row, field, reason, raw) and the
  good ones land. ``row`` is the line number in a CSV file (header = line 1; exact unless
  quoted values span lines) and the 1-based row number in a Parquet file.
* **What counts**: an empty cell (or NA/NaN/null) is a missing reading, neither stored nor
  rejected. A bad time rejects its whole row; a non-numeric value rejects that one reading.
* **Resume-safe**: the store's writes are idempotent, so re-running a file after a crash
  (SIGKILL included) completes it without duplicates.
"""

from __future__ import annotations

import csv
import io
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from axhub.core.domain import Quality
from axhub.core.errors import AxHubError, InputProblem, InputValidationError
from axhub.core.ids import check_path_safe
from axhub.core.reading_rules import MAX_TS_US, MIN_TS_US, signal_name_problem, time_problem_us
from axhub.core.readings import READINGS_SCHEMA, ReadingSink
from axhub.ingest.file_mapping import FileMapping, guess_time_column
from axhub.ingest.file_values import parse_numbers, parse_times

DEFAULT_BLOCK_BYTES = 8 << 20
_DELIMITERS = [",", ";", "\t", "|"]
_FIRST_REJECTS_KEPT = 20
_QUALITY_NAMES = {q.name.lower(): int(q) for q in Quality}


@dataclass(frozen=True)
class SignalSeen:
    """A signal found in a file, for registering it in the metadata database."""

    asset: str
    signal: str
    unit: str | None = None


@dataclass
class IngestReport:
    """What one file ingest did."""

    file: str
    rows_read: int = 0
    points_written: int = 0
    duplicates: int = 0
    rows_rejected: int = 0
    values_rejected: int = 0
    empty_cells: int = 0
    rejects_path: Path | None = None
    first_rejects: list[InputProblem] = field(default_factory=list)
    signals: list[SignalSeen] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def points_per_s(self) -> float:
        return self.points_written / self.elapsed_s if self.elapsed_s > 0 else float("nan")


# ---------------------------------------------------------------------- rejects
_NOT_A_NUMBER = "not a number"
_NOT_FINITE = "not a finite number (NaN and infinity are refused)"


class _Rejects:
    """Rejects CSV (file, row, field, reason, raw), opened on the first problem only."""

    HEADER = ("file", "row", "field", "reason", "raw")

    def __init__(self, path: Path, file_label: str) -> None:
        self.path = path
        self.file_label = file_label
        self.count = 0
        self.first: list[InputProblem] = []
        self._fh: io.TextIOWrapper | None = None
        self._writer: Any = None

    def add(self, row: int | None, field_name: str | None, reason: str, raw: object) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.writer(self._fh)
            self._writer.writerow(self.HEADER)
        raw_text = "" if raw is None else str(raw)
        self._writer.writerow(
            (self.file_label, "" if row is None else row, field_name or "", reason, raw_text)
        )
        self.count += 1
        if len(self.first) < _FIRST_REJECTS_KEPT:
            self.first.append(InputProblem(self.file_label, row, field_name, f"{reason} (got {raw_text!r})"))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def written_path(self) -> Path | None:
        return self.path if self.count else None


# ---------------------------------------------------------------------- row numbers
class _RowNumbers:
    """Maps the index of a parsed row to its line in the file, skipping rows the parser dropped."""

    def __init__(self, first_line: int) -> None:
        self.first_line = first_line
        self.skipped: list[int] = []

    def lines(self, parsed_index: np.ndarray) -> np.ndarray:
        if not self.skipped:
            return parsed_index + self.first_line
        skipped = np.asarray(self.skipped, dtype=np.int64)
        adjusted = skipped - self.first_line - np.arange(len(skipped))
        return parsed_index + self.first_line + np.searchsorted(adjusted, parsed_index, side="right")


# ---------------------------------------------------------------------- planning
@dataclass
class _Plan:
    layout: str
    time_column: str
    # wide: column -> (signal, asset, unit)
    value_columns: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    # long
    signal_column: str | None = None
    value_column: str | None = None
    asset_column: str | None = None
    quality_column: str | None = None
    unit_column: str | None = None

    def needed(self) -> list[str]:
        if self.layout == "wide":
            return [self.time_column, *self.value_columns]
        cols = [self.time_column, self.signal_column, self.value_column]
        cols += [self.asset_column, self.quality_column, self.unit_column]
        return [c for c in cols if c]


def _find(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def _plan(header: list[str], mapping: FileMapping, label: str) -> _Plan:
    """Decide what each column is; raise before any write if the file cannot be used."""

    def missing(column: str, what: str, hint: str) -> InputValidationError:
        return InputValidationError(
            InputProblem(label, None, column, f"column '{column}' ({what}) is not in the header {header}"),
            hint=hint,
        )

    time_column = mapping.time_column or guess_time_column(header)
    if time_column not in header:
        raise missing(time_column, "time", "give the right time column with --time-column or 'time_column:'")
    signal_col = mapping.signal_column or _find(header, ("signal", "tag", "name", "sensor"))
    value_col = mapping.value_column or _find(header, ("value", "val", "reading"))
    layout = mapping.layout
    if layout == "auto":
        layout = "long" if signal_col in header and value_col in header else "wide"
    if layout == "long":
        for col, what in ((signal_col, "signal name"), (value_col, "value")):
            if col is None or col not in header:
                raise missing(
                    str(col or what),
                    what,
                    "long files need time, signal and value columns; name them "
                    "in the mapping (signal_column/value_column) or use layout: wide",
                )
        asset_col = mapping.asset_column or _find(header, ("asset", "machine", "equipment"))
        if mapping.asset_column and mapping.asset_column not in header:
            raise missing(mapping.asset_column, "asset", "fix 'asset_column' in the mapping")
        if asset_col is None and mapping.asset is None:
            raise InputValidationError(
                InputProblem(label, None, None, "no asset: the file has no asset column and none was given"),
                hint="pass --asset NAME or add an asset column",
            )
        quality_col = mapping.quality_column or _find(header, ("quality", "status_code"))
        unit_col = mapping.unit_column or _find(header, ("unit", "units"))
        for col, key in ((mapping.quality_column, "quality_column"), (mapping.unit_column, "unit_column")):
            if col and col not in header:
                raise missing(col, key, f"fix '{key}' in the mapping")
        return _Plan(
            "long",
            time_column,
            signal_column=signal_col,
            value_column=value_col,
            asset_column=asset_col,
            quality_column=quality_col,
            unit_column=unit_col,
        )
    for col in mapping.columns:
        if col not in header:
            raise missing(col, "mapped signal", "fix the 'columns' section of the mapping")
    ignore = {time_column, *mapping.ignore}
    chosen = list(mapping.columns) if mapping.only_mapped else [h for h in header if h not in ignore]
    if not chosen:
        raise InputValidationError(
            InputProblem(label, None, None, "no signal columns besides the time column"),
            hint="a wide file needs a time column and one column per signal",
        )
    value_columns: dict[str, tuple[str, str, str | None]] = {}
    for col in chosen:
        signal, asset, unit = mapping.signal_for(col)
        asset = asset or mapping.asset
        if asset is None:
            raise InputValidationError(
                InputProblem(label, None, col, "no asset for this column"),
                hint="pass --asset NAME (wide files hold one asset unless the mapping says otherwise)",
            )
        problem = signal_name_problem(signal)
        if problem is not None:
            raise InputValidationError(
                InputProblem(label, None, col, problem.en),
                hint=f"give the column another signal name in the mapping (columns: {col!r}: "
                f"{{signal: ...}}) or leave it out (--ignore {col!r})",
            )
        value_columns[col] = (signal, asset, unit)
    return _Plan("wide", time_column, value_columns=value_columns)


# ---------------------------------------------------------------------- reading
def sniff_delimiter(sample: str) -> str:
    """The candidate that splits the first lines into the same (largest) number of fields."""
    lines = [ln for ln in sample.splitlines()[:50] if ln.strip()]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the last line of a sample may be cut
    best, best_fields = ",", 1
    for delim in _DELIMITERS:
        counts = {len(next(csv.reader([ln], delimiter=delim))) for ln in lines} if lines else {1}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delim, fields
    return best


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh, delimiter=delimiter), None)
    if not header:
        raise InputValidationError(InputProblem(str(path), 1, None, "the file is empty (no header line)"))
    return [h.strip() for h in header]


def _prefetch(source: Iterator[pa.RecordBatch], depth: int = 1) -> Iterator[pa.RecordBatch]:
    """Parse the next block in a thread (Arrow releases the GIL) while this one is processed."""
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        slots.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(("end", None))
        except BaseException as exc:  # handed to the consumer
            slots.put(("error", exc))

    thread = threading.Thread(target=pump, name="csv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()


def _csv_batches(
    path: Path,
    plan: _Plan,
    delimiter: str,
    rows: _RowNumbers,
    block_bytes: int,
    rejects: _Rejects,
    report: IngestReport,
    on_progress: Callable[[int], None],
) -> Iterator[pa.RecordBatch]:
    def invalid_row(row: Any) -> str:
        if row.number is not None:
            rows.skipped.append(int(row.number))
        if row.text.strip():
            report.rows_read += 1
            report.rows_rejected += 1
            rejects.add(
                row.number,
                None,
                f"row has {row.actual_columns} fields, the header has {row.expected_columns}",
                row.text,
            )
        return "skip"

    source = pa.OSFile(str(path))
    reader = pv.open_csv(
        source,
        read_options=pv.ReadOptions(use_threads=False, block_size=block_bytes, encoding="utf8"),
        parse_options=pv.ParseOptions(
            delimiter=delimiter, invalid_row_handler=invalid_row, ignore_empty_lines=False
        ),
        convert_options=pv.ConvertOptions(
            column_types={c: pa.string() for c in plan.needed()},
            include_columns=plan.needed(),
            strings_can_be_null=True,
        ),
    )
    try:
        for batch in _prefetch(iter(reader)):
            on_progress(source.tell())
            yield batch
    finally:
        source.close()


def _parquet_batches(
    path: Path, plan: _Plan, batch_rows: int, on_progress: Callable[[int], None]
) -> Iterator[pa.RecordBatch]:
    pf = pq.ParquetFile(path)
    total_rows = max(pf.metadata.num_rows, 1)
    size = path.stat().st_size
    done = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=plan.needed()):
        done += batch.num_rows
        on_progress(int(size * done / total_rows))
        yield batch


# ---------------------------------------------------------------------- converting
@dataclass
class _Converted:
    tables: list[pa.Table]
    signals: set[SignalSeen]


def _day_slices(ts: np.ndarray, ok: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges that stay within one UTC day when rows are time-ordered (the usual export).

    Writing each day separately gives the store single-partition batches (no split copies).
    Unordered rows come back as one range; the store sorts them out.
    """
    n = len(ts)
    if n == 0:
        return []
    last_ok = np.maximum.accumulate(np.where(ok, np.arange(n), 0))
    days = np.floor_divide(ts[last_ok], 86_400_000_000)
    steps = np.diff(days)
    if not steps.any() or (steps < 0).any():
        return [(0, n)]
    bounds = [0, *(np.flatnonzero(steps) + 1).tolist(), n]
    return list(itertools.pairwise(bounds))


class _Converter:
    """Turns parsed batches into readings tables; reports bad cells to the rejects file."""

    def __init__(self, plan: _Plan, mapping: FileMapping, rejects: _Rejects, report: IngestReport) -> None:
        self.plan = plan
        self.mapping = mapping
        self.rejects = rejects
        self.report = report
        self.first_batch = True
        if plan.layout == "wide":
            signals = sorted({s for s, _a, _u in plan.value_columns.values()})
            assets = sorted({a for _s, a, _u in plan.value_columns.values()})
            self.signal_names = pa.array(signals, pa.string())
            self.asset_names = pa.array(assets, pa.string())
            self.col_signal = np.array(
                [signals.index(s) for s, _a, _u in plan.value_columns.values()], np.int32
            )
            self.col_asset = np.array(
                [assets.index(a) for _s, a, _u in plan.value_columns.values()], np.int32
            )

    def _check_first_times(self, ok: np.ndarray, nonblank: np.ndarray, raw: pa.Array) -> None:
        if self.first_batch and nonblank.sum() >= 2 and not ok[nonblank].any():
            example = raw.filter(pa.array(nonblank))[0].as_py()
            raise InputValidationError(
                InputProblem(
                    self.report.file,
                    None,
                    self.plan.time_column,
                    f"no value of the time column could be read as a time (e.g. {example!r})",
                ),
                hint="set the format with --time-format (e.g. '%d.%m.%Y %H:%M:%S', epoch_s) "
                "or pick another column with --time-column",
            )

    def _reject_times(
        self,
        bad: np.ndarray,
        raw: pa.Array,
        lines: Callable[[np.ndarray], np.ndarray],
        ts: np.ndarray,
        parsed: np.ndarray,
    ) -> None:
        idx = np.flatnonzero(bad)
        if len(idx) == 0:
            return
        texts = raw.take(pa.array(idx)).to_pylist()
        for i, line, text in zip(idx.tolist(), lines(idx).tolist(), texts, strict=True):
            if text is None:
                reason = "missing time"
            elif parsed[i]:
                reason = str(time_problem_us(int(ts[i])) or "time outside the allowed window")
            else:
                reason = "unparseable time: expected ISO 8601 like 2024-03-01 08:00:00 or the --time-format"
            self.rejects.add(int(line), self.plan.time_column, reason, text)
        self.report.rows_rejected += len(idx)

    def wide(self, batch: pa.RecordBatch, lines: Callable[[np.ndarray], np.ndarray]) -> _Converted:
        plan, n = self.plan, batch.num_rows
        raw_time = batch.column(plan.time_column)
        ts, parsed = parse_times(raw_time, self.mapping.time_format, self.mapping.timezone)
        time_ok = parsed & (ts >= MIN_TS_US) & (ts < MAX_TS_US)
        k = len(plan.value_columns)
        values = np.empty((k, n), dtype=np.float64)
        present = np.empty((k, n), dtype=bool)
        bad_cells: list[tuple[int, np.ndarray]] = []
        nan_cells: list[np.ndarray] = []
        for j, col in enumerate(plan.value_columns):
            v, p, bad = parse_numbers(batch.column(col), self.mapping.decimal)
            not_finite = p & ~np.isfinite(v)  # NaN and infinity are refused like text
            p &= ~not_finite
            bad |= not_finite
            nan_cells.append(not_finite)
            values[j], present[j] = v, p
            if bad.any():
                if self.first_batch and bad.sum() >= 2 and not p.any():
                    raise InputValidationError(
                        InputProblem(self.report.file, None, col, "the column holds text, not numbers"),
                        hint=f"add '{col}' to 'ignore' in the mapping (or --ignore {col})",
                    )
                bad_cells.append((j, bad))
        time_present = np.asarray(pc.is_valid(raw_time).to_numpy(zero_copy_only=False), dtype=bool)
        any_cell = present.any(axis=0)
        for _j, bad in bad_cells:
            any_cell |= bad
        blank = ~time_present & ~any_cell
        nonblank = ~blank
        self._check_first_times(parsed, nonblank & time_present, raw_time)
        self.first_batch = False
        self.report.rows_read += int(nonblank.sum())
        self._reject_times(nonblank & ~time_ok, raw_time, lines, ts, parsed)
        row_rejected = np.zeros(n, dtype=bool)
        cols = list(plan.value_columns)
        for j, bad in bad_cells:
            bad &= time_ok
            idx = np.flatnonzero(bad)
            row_rejected[idx] = True
            texts = batch.column(cols[j]).take(pa.array(idx)).to_pylist()
            plain_text = ~nan_cells[j][idx]
            for line, text, plain in zip(lines(idx).tolist(), texts, plain_text.tolist(), strict=True):
                self.rejects.add(int(line), cols[j], _NOT_A_NUMBER if plain else _NOT_FINITE, text)
            self.report.values_rejected += len(idx)
        self.report.rows_rejected += int(row_rejected.sum())
        present &= time_ok[None, :]
        bad_in_good_rows = sum(int(b.sum()) for _j, b in bad_cells)
        self.report.empty_cells += k * int(time_ok.sum()) - int(present.sum()) - bad_in_good_rows
        tables = [
            t
            for a, b in _day_slices(ts, time_ok)
            if (t := self._unpivot(values[:, a:b], present[:, a:b], ts[a:b])) is not None
        ]
        seen_cols = np.flatnonzero(present.any(axis=1))
        seen = {
            SignalSeen(a, s, u) for (s, a, u) in (list(plan.value_columns.values())[j] for j in seen_cols)
        }
        return _Converted(tables, seen)

    def _unpivot(self, values: np.ndarray, present: np.ndarray, ts: np.ndarray) -> pa.Table | None:
        """Wide rows -> long readings, signal-major (each signal's run stays time-ordered)."""
        k, n = values.shape
        if present.all():
            flat_values = values.ravel()
            flat_ts = np.tile(ts, k)
            sig_codes = np.repeat(self.col_signal, n)
            asset_codes = np.repeat(self.col_asset, n)
        else:
            flat_values = values[present]
            flat_ts = np.broadcast_to(ts, (k, n))[present]
            counts = present.sum(axis=1)
            sig_codes = np.repeat(self.col_signal, counts)
            asset_codes = np.repeat(self.col_asset, counts)
        if len(flat_values) == 0:
            return None
        return pa.table(
            {
                "asset": pa.DictionaryArray.from_arrays(pa.array(asset_codes), self.asset_names),
                "signal": pa.DictionaryArray.from_arrays(pa.array(sig_codes), self.signal_names),
                "ts": pa.array(flat_ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "value": pa.array(flat_values, pa.float64()),
                "quality": pa.array(np.zeros(len(flat_values), dtype=np.uint8)),
            }
        )

    def long(self, batch: pa.RecordBatch, lines: Callable[[np.ndarray], np.ndarray]) -> _Converted:
        plan, mapping, n = self.plan, self.mapping, batch.num_rows
        assert plan.signal_column and plan.value_column
        raw_time = batch.column(plan.time_column)
        ts, parsed = parse_times(raw_time, mapping.time_format, mapping.timezone)
        time_ok = parsed & (ts >= MIN_TS_US) & (ts < MAX_TS_US)
        values, present, bad_value = parse_numbers(batch.column(plan.value_column), mapping.decimal)
        not_finite = present & ~np.isfinite(values)  # NaN and infinity are refused like text
        present &= ~not_finite
        bad_value |= not_finite
        sig_raw = pc.cast(batch.column(plan.signal_column), pa.string())
        sig_ok = np.asarray(pc.is_valid(sig_raw).to_numpy(zero_copy_only=False), dtype=bool)
        time_present = np.asarray(pc.is_valid(raw_time).to_numpy(zero_copy_only=False), dtype=bool)
        blank = ~time_present & ~sig_ok & ~present & ~bad_value
        nonblank = ~blank
        self._check_first_times(parsed, nonblank & time_present, raw_time)
        self.first_batch = False
        self.report.rows_read += int(nonblank.sum())
        rejected = nonblank & ~time_ok
        self._reject_times(rejected, raw_time, lines, ts, parsed)

        def reject(mask: np.ndarray, column: str, reason: str) -> None:
            nonlocal rejected
            mask = mask & ~rejected & nonblank
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                return
            texts = batch.column(column).take(pa.array(idx)).to_pylist()
            for line, text in zip(lines(idx).tolist(), texts, strict=True):
                self.rejects.add(int(line), column, reason, text)
            self.report.rows_rejected += len(idx)
            rejected = rejected | mask

        reject(~sig_ok, plan.signal_column, "missing signal name")
        # Signal names (after renaming) follow the one naming rule; each distinct name checked once.
        sig_codes = _one(pc.dictionary_encode(sig_raw))
        for code, raw_name in enumerate(sig_codes.dictionary.to_pylist()):
            problem = signal_name_problem(mapping.signal_for(str(raw_name))[0])
            if problem is not None:
                codes_np = sig_codes.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                reject(codes_np == code, plan.signal_column, problem.en)
        self.report.values_rejected += int((bad_value & ~rejected & nonblank).sum())
        reject(not_finite, plan.value_column, _NOT_FINITE)
        reject(bad_value, plan.value_column, _NOT_A_NUMBER)
        # Assets: a column (checked to be path-safe) or the default.
        if plan.asset_column:
            asset_raw = pc.cast(batch.column(plan.asset_column), pa.string())
            if mapping.asset is not None:
                asset_raw = pc.fill_null(asset_raw, mapping.asset)
            asset_dict = _one(pc.dictionary_encode(asset_raw))
            reject(
                ~np.asarray(pc.is_valid(asset_raw).to_numpy(zero_copy_only=False), bool),
                plan.asset_column,
                "missing asset",
            )
            bad_names = [i for i, a in enumerate(asset_dict.dictionary.to_pylist()) if not _path_safe(a)]
            if bad_names:
                codes = asset_dict.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                reject(
                    np.isin(codes, bad_names),
                    plan.asset_column,
                    "asset name may only hold letters, digits, '_', '.' and '-'",
                )
        else:
            assert mapping.asset is not None
            asset_dict = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([mapping.asset])
            )
        quality = np.zeros(n, dtype=np.uint8)
        if plan.quality_column:
            q, bad_q = _parse_quality(batch.column(plan.quality_column))
            reject(bad_q, plan.quality_column, "quality must be 0-255 or good/uncertain/bad")
            quality = q
        keep = nonblank & ~rejected & present
        self.report.empty_cells += int((nonblank & ~rejected & ~present).sum())
        if not keep.any():
            return _Converted([], set())
        keep_arr = pa.array(keep)
        # Tag renaming (mapping 'columns') on the dictionary, then make names unique.
        sig_dict = _one(pc.dictionary_encode(sig_raw.filter(keep_arr)))
        renamed = [mapping.signal_for(str(s))[0] for s in sig_dict.dictionary.to_pylist()]
        unique, inverse = np.unique(np.array(renamed, dtype=object), return_inverse=True)
        codes = inverse.astype(np.int32)[sig_dict.indices.to_numpy(zero_copy_only=False)]
        signal = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(list(unique), pa.string()))
        asset = asset_dict.filter(keep_arr)
        table = pa.table(
            {
                "asset": asset,
                "signal": signal,
                "ts": pa.array(ts[keep], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "value": pa.array(values[keep], pa.float64()),
                "quality": pa.array(quality[keep]),
            }
        )
        units: dict[tuple[str, str], str | None] = {}
        unit_col = (
            pc.cast(batch.column(plan.unit_column), pa.string()).filter(keep_arr).to_pylist()
            if plan.unit_column
            else None
        )
        pairs = pa.table({"a": pc.cast(asset, pa.string()), "s": pc.cast(signal, pa.string())})
        if unit_col is not None:
            pairs = pairs.append_column("u", pa.array(unit_col, pa.string()))
            for row in pairs.group_by(["a", "s"]).aggregate([("u", "max")]).to_pylist():
                units[(row["a"], row["s"])] = row["u_max"]
        else:
            for row in pairs.group_by(["a", "s"]).aggregate([]).to_pylist():
                units[(row["a"], row["s"])] = None
        seen = set()
        for (a, s), u in units.items():
            raw_name = next((k for k, v in mapping.columns.items() if (v.signal or k) == s), None)
            unit = u or (mapping.columns[raw_name].unit if raw_name else None)
            seen.add(SignalSeen(a, s, unit))
        return _Converted([table], seen)


def _one(arr: pa.Array | pa.ChunkedArray) -> Any:
    """A single array (record batches give arrays, tables chunked arrays)."""
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _path_safe(name: object) -> bool:
    try:
        check_path_safe(str(name), "asset")
    except AxHubError:
        return False
    return True


def _parse_quality(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    strings = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(arr, pa.string())))
    named = pc.index_in(strings, value_set=pa.array(list(_QUALITY_NAMES)))
    name_codes = np.array(list(_QUALITY_NAMES.values()), dtype=np.float64)
    idx = named.fill_null(-1).to_numpy(zero_copy_only=False)
    numbers, present, _bad = parse_numbers(strings)
    q = np.where(idx >= 0, name_codes[np.maximum(idx, 0)], np.where(present, numbers, 0.0))
    missing = ~np.asarray(pc.is_valid(strings).to_numpy(zero_copy_only=False), bool)
    ok = missing | (idx >= 0) | (present & (q >= 0) & (q <= 255) & (q == np.floor(q)))
    return np.where(ok & ~missing, q, 0).astype(np.uint8), ~ok


# ---------------------------------------------------------------------- entry point
def default_rejects_path(directory: Path, source: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{source.name}.{stamp}.rejects.csv"


def ingest_file(
    path: Path | str,
    store: ReadingSink,
    org: str,
    mapping: FileMapping | None = None,
    *,
    rejects_path: Path | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: bool = False,
    console: Console | None = None,
) -> IngestReport:
    """Ingest one CSV or Parquet file into ``store`` for ``org``; see the module docstring.

    Rejects go to ``rejects_path`` (default: ``<store root>/../rejects/<file>.<utc>.rejects.csv``,
    or beside the input when the store has no root); the file is only created if needed.
    """
    started = time.perf_counter()
    path = Path(path)
    mapping = mapping or FileMapping()
    label = str(path)
    if not path.is_file():
        raise InputValidationError(InputProblem(label, None, None, "file not found"), hint="check the path")
    if rejects_path is None:
        root = getattr(store, "root", None)
        rejects_dir = Path(root).parent / "rejects" if root is not None else path.parent
        rejects_path = default_rejects_path(rejects_dir, path)
    report = IngestReport(file=label)
    rejects = _Rejects(rejects_path, label)
    is_parquet = path.suffix.lower() in {".parquet", ".pq"}
    if is_parquet:
        header = pq.ParquetFile(path).schema_arrow.names
        delimiter = ""
    else:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            sample = fh.read(64 * 1024)
        delimiter = mapping.delimiter or sniff_delimiter(sample)
        header = _csv_header(path, delimiter)
    plan = _plan(header, mapping, label)
    converter = _Converter(plan, mapping, rejects, report)
    row_numbers = _RowNumbers(first_line=1 if is_parquet else 2)
    native = _is_native_store(store)
    seen: set[SignalSeen] = set()
    size = path.stat().st_size
    bar = Progress(
        TextColumn(f"[bold]ingest[/] {path.name}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )
    with bar:
        task = bar.add_task("ingest", total=size)

        def on_progress(done: int) -> None:
            bar.update(task, completed=min(done, size))

        if is_parquet:
            batches = _parquet_batches(path, plan, max(block_bytes // 256, 1024), on_progress)
        else:
            batches = _csv_batches(
                path, plan, delimiter, row_numbers, block_bytes, rejects, report, on_progress
            )
        parsed_rows = 0
        try:
            for batch in batches:
                base = parsed_rows

                def lines(idx: np.ndarray, base: int = base) -> np.ndarray:
                    return row_numbers.lines(idx.astype(np.int64) + base)

                converted = (converter.wide if plan.layout == "wide" else converter.long)(batch, lines)
                parsed_rows += batch.num_rows
                for table in converted.tables:
                    result = store.write(org, table if native else table.cast(READINGS_SCHEMA))
                    report.points_written += result.written
                    report.duplicates += result.duplicates
                seen |= converted.signals
            bar.update(task, completed=size)
        finally:
            rejects.close()
    report.rejects_path = rejects.written_path
    report.first_rejects = rejects.first
    report.signals = sorted(seen, key=lambda s: (s.asset, s.signal))
    report.elapsed_s = time.perf_counter() - started
    return report


def _is_native_store(store: ReadingSink) -> bool:
    """Our store takes dictionary-encoded names (no string copies); other sinks get the schema."""
    from axhub.store.timeseries import TimeSeriesStore

    return isinstance(store, TimeSeriesStore)

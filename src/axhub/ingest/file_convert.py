"""Parsed batches -> readings tables: times and values parsed, wide rows unpivoted, bad cells
sent to the rejects file.

* **What counts**: an empty cell (or NA/NaN/null) is a missing reading, neither stored nor
  rejected. A bad time rejects its whole row; a non-numeric value rejects that one reading.
* **Whole-file refusals**: when the first block shows that no time can be read, or that a
  signal column holds text, the file is refused before anything is written.
* Vectorised: Arrow casts and numpy; wide rows are unpivoted signal-major, so each signal's
  run is already time-ordered for the store.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from axhub.core.domain import Quality
from axhub.core.errors import AxHubError, InputValidationError, problem
from axhub.core.ids import check_path_safe
from axhub.core.reading_rules import MAX_TS_US, MIN_TS_US, signal_name_problem
from axhub.core.readings import VALUE_INT_FIELD
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.file_plan import Plan
from axhub.ingest.file_report import IngestReport, Rejects, SignalSeen
from axhub.ingest.file_values import ExactInts, exact_integers, parse_numbers, parse_times

_QUALITY_NAMES = {q.name.lower(): int(q) for q in Quality}


@dataclass
class Converted:
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


class Converter:
    """Turns parsed batches into readings tables; reports bad cells to the rejects file."""

    def __init__(self, plan: Plan, mapping: FileMapping, rejects: Rejects, report: IngestReport) -> None:
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

    @property
    def timezone(self) -> str:
        return self.mapping.timezone or "UTC"

    def _check_first_times(self, ok: np.ndarray, nonblank: np.ndarray, raw: pa.Array) -> None:
        if self.first_batch and nonblank.sum() >= 2 and not ok[nonblank].any():
            example = raw.filter(pa.array(nonblank))[0].as_py()
            raise InputValidationError(
                problem(
                    self.report.file, None, self.plan.time_column, "no_time_values", example=str(example)
                ),
                whole_file=True,
            )

    def _reject_times(
        self,
        bad: np.ndarray,
        raw: pa.Array,
        lines: Callable[[np.ndarray], np.ndarray],
        parsed: np.ndarray | None = None,
    ) -> None:
        idx = np.flatnonzero(bad)
        if len(idx) == 0:
            return
        texts = raw.take(pa.array(idx)).to_pylist()
        for i, line, text in zip(idx.tolist(), lines(idx).tolist(), texts, strict=True):
            if text is None:
                code = "missing_time"
            elif parsed is not None and parsed[i]:
                code = "time_range"  # read, but outside the window of the one reading rule
            else:
                code = "bad_time"
            self.rejects.add(int(line), self.plan.time_column, code, text)
        self.report.rows_rejected += len(idx)

    def wide(self, batch: pa.RecordBatch, lines: Callable[[np.ndarray], np.ndarray]) -> Converted:
        plan, n = self.plan, batch.num_rows
        raw_time = batch.column(plan.time_column)
        ts, parsed = parse_times(raw_time, self.mapping.time_format, self.timezone)
        time_ok = parsed & (ts >= MIN_TS_US) & (ts < MAX_TS_US)
        k = len(plan.value_columns)
        values = np.empty((k, n), dtype=np.float64)
        present = np.empty((k, n), dtype=bool)
        # Integers float64 rounds, kept exactly: allocated only when a column has one.
        exact: tuple[np.ndarray, np.ndarray] | None = None
        bad_cells: list[tuple[int, np.ndarray]] = []
        nan_cells: list[np.ndarray] = []
        range_cells: list[np.ndarray | None] = []
        for j, col in enumerate(plan.value_columns):
            v, p, bad = parse_numbers(batch.column(col), self.mapping.decimal, self.mapping.thousands)
            not_finite = p & ~np.isfinite(v)  # NaN and infinity are refused like text
            p &= ~not_finite
            bad |= not_finite
            nan_cells.append(not_finite)
            ints = exact_integers(batch.column(col), v, p, self.mapping.thousands)
            range_cells.append(None if ints is None else ints.out_of_range)
            if ints is not None:
                if exact is None:
                    exact = (np.zeros((k, n), dtype=np.int64), np.zeros((k, n), dtype=bool))
                exact[0][j, ints.rows], exact[1][j, ints.rows] = ints.ints, True
                p &= ~ints.out_of_range  # refused, never stored rounded
                bad |= ints.out_of_range
            values[j], present[j] = v, p
            if bad.any():
                texty = bad if ints is None else bad & ~ints.out_of_range
                if self.first_batch and texty.sum() >= 2 and not p.any():
                    raise InputValidationError(
                        problem(self.report.file, None, col, "text_column"), whole_file=True
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
        self._reject_times(nonblank & ~time_ok, raw_time, lines, parsed)
        row_rejected = np.zeros(n, dtype=bool)
        cols = list(plan.value_columns)
        for j, bad in bad_cells:
            bad &= time_ok
            idx = np.flatnonzero(bad)
            row_rejected[idx] = True
            texts = batch.column(cols[j]).take(pa.array(idx)).to_pylist()
            codes = np.where(nan_cells[j][idx], "value_not_finite", "not_a_number")
            out_of_range = range_cells[j]
            if out_of_range is not None:
                codes = np.where(out_of_range[idx], "value_int_range", codes)
            for line, text, code in zip(lines(idx).tolist(), texts, codes.tolist(), strict=True):
                self.rejects.add(int(line), cols[j], code, text)
            self.report.values_rejected += len(idx)
        self.report.rows_rejected += int(row_rejected.sum())
        present &= time_ok[None, :]
        bad_in_good_rows = sum(int(b.sum()) for _j, b in bad_cells)
        self.report.empty_cells += k * int(time_ok.sum()) - int(present.sum()) - bad_in_good_rows
        tables = [
            t
            for a, b in _day_slices(ts, time_ok)
            if (
                t := self._unpivot(
                    values[:, a:b],
                    present[:, a:b],
                    ts[a:b],
                    None if exact is None else (exact[0][:, a:b], exact[1][:, a:b]),
                )
            )
            is not None
        ]
        seen_cols = np.flatnonzero(present.any(axis=1))
        seen = {
            SignalSeen(a, s, u) for (s, a, u) in (list(plan.value_columns.values())[j] for j in seen_cols)
        }
        return Converted(tables, seen)

    def _unpivot(
        self,
        values: np.ndarray,
        present: np.ndarray,
        ts: np.ndarray,
        exact: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> pa.Table | None:
        """Wide rows -> long readings, signal-major (each signal's run stays time-ordered);
        ``exact`` (integers, where given) becomes the ``value_int`` column."""
        k, n = values.shape
        flat_exact = None
        if present.all():
            if exact is not None:
                flat_exact = (exact[0].ravel(), exact[1].ravel())
            flat_values = values.ravel()
            flat_ts = np.tile(ts, k)
            sig_codes = np.repeat(self.col_signal, n)
            asset_codes = np.repeat(self.col_asset, n)
        else:
            if exact is not None:
                flat_exact = (exact[0][present], exact[1][present])
            flat_values = values[present]
            flat_ts = np.broadcast_to(ts, (k, n))[present]
            counts = present.sum(axis=1)
            sig_codes = np.repeat(self.col_signal, counts)
            asset_codes = np.repeat(self.col_asset, counts)
        if len(flat_values) == 0:
            return None
        table = pa.table(
            {
                "asset": pa.DictionaryArray.from_arrays(pa.array(asset_codes), self.asset_names),
                "signal": pa.DictionaryArray.from_arrays(pa.array(sig_codes), self.signal_names),
                "ts": pa.array(flat_ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "value": pa.array(flat_values, pa.float64()),
                "quality": pa.array(np.zeros(len(flat_values), dtype=np.uint8)),
            }
        )
        return _with_value_int(table, flat_exact)

    def long(self, batch: pa.RecordBatch, lines: Callable[[np.ndarray], np.ndarray]) -> Converted:
        plan, mapping, n = self.plan, self.mapping, batch.num_rows
        assert plan.signal_column and plan.value_column
        raw_time = batch.column(plan.time_column)
        ts, parsed = parse_times(raw_time, mapping.time_format, self.timezone)
        time_ok = parsed & (ts >= MIN_TS_US) & (ts < MAX_TS_US)
        values, present, bad_value = parse_numbers(
            batch.column(plan.value_column), mapping.decimal, mapping.thousands
        )
        not_finite = present & ~np.isfinite(values)  # NaN and infinity are refused like text
        present &= ~not_finite
        bad_value |= not_finite
        ints = exact_integers(batch.column(plan.value_column), values, present, mapping.thousands)
        if ints is not None:  # an integer no int64 holds is refused, never stored rounded
            present &= ~ints.out_of_range
            bad_value |= ints.out_of_range
        sig_raw = pc.cast(batch.column(plan.signal_column), pa.string())
        sig_ok = np.asarray(pc.is_valid(sig_raw).to_numpy(zero_copy_only=False), dtype=bool)
        time_present = np.asarray(pc.is_valid(raw_time).to_numpy(zero_copy_only=False), dtype=bool)
        blank = ~time_present & ~sig_ok & ~present & ~bad_value
        nonblank = ~blank
        self._check_first_times(parsed, nonblank & time_present, raw_time)
        self.first_batch = False
        self.report.rows_read += int(nonblank.sum())
        rejected = nonblank & ~time_ok
        self._reject_times(rejected, raw_time, lines, parsed)

        def reject(mask: np.ndarray, column: str, code: str, **params: str) -> None:
            nonlocal rejected
            mask = mask & ~rejected & nonblank
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                return
            texts = batch.column(column).take(pa.array(idx)).to_pylist()
            for line, text in zip(lines(idx).tolist(), texts, strict=True):
                self.rejects.add(int(line), column, code, text, **params)
            self.report.rows_rejected += len(idx)
            rejected = rejected | mask

        reject(~sig_ok, plan.signal_column, "missing_signal_name")
        # Signal names (after renaming) follow the one naming rule; each distinct name checked once.
        sig_codes = _one(pc.dictionary_encode(sig_raw))
        for code, raw_name in enumerate(sig_codes.dictionary.to_pylist()):
            bad_name = signal_name_problem(mapping.signal_for(str(raw_name))[0])
            if bad_name is not None:
                codes_np = sig_codes.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                reject(
                    codes_np == code,
                    plan.signal_column,
                    "signal_name_bad",
                    reason_en=bad_name.en,
                    reason_ko=bad_name.ko,
                )
        self.report.values_rejected += int((bad_value & ~rejected & nonblank).sum())
        reject(not_finite, plan.value_column, "value_not_finite")
        if ints is not None:
            reject(ints.out_of_range, plan.value_column, "value_int_range")
        reject(bad_value, plan.value_column, "not_a_number")
        # Assets: a column (checked to be path-safe) or the default.
        if plan.asset_column:
            asset_raw = pc.cast(batch.column(plan.asset_column), pa.string())
            if mapping.asset is not None:
                asset_raw = pc.fill_null(asset_raw, mapping.asset)
            asset_dict = _one(pc.dictionary_encode(asset_raw))
            reject(
                ~np.asarray(pc.is_valid(asset_raw).to_numpy(zero_copy_only=False), bool),
                plan.asset_column,
                "missing_asset",
            )
            bad_names = [i for i, a in enumerate(asset_dict.dictionary.to_pylist()) if not _path_safe(a)]
            if bad_names:
                codes = asset_dict.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                reject(
                    np.isin(codes, bad_names),
                    plan.asset_column,
                    "asset_name_bad",
                )
        else:
            assert mapping.asset is not None
            asset_dict = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([mapping.asset])
            )
        quality = np.zeros(n, dtype=np.uint8)
        if plan.quality_column:
            q, bad_q = _parse_quality(batch.column(plan.quality_column))
            reject(bad_q, plan.quality_column, "quality_bad")
            quality = q
        keep = nonblank & ~rejected & present
        self.report.empty_cells += int((nonblank & ~rejected & ~present).sum())
        if not keep.any():
            return Converted([], set())
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
        table = _with_value_int(table, None if ints is None else _exact_rows(ints, n, keep))
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
        return Converted([table], seen)


def _exact_rows(ints: ExactInts, n: int, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(integers, given) over the ``n`` rows of a batch, then only the rows kept."""
    whole = np.zeros(n, dtype=np.int64)
    given = np.zeros(n, dtype=bool)
    whole[ints.rows], given[ints.rows] = ints.ints, True
    return whole[keep], given[keep]


def _with_value_int(table: pa.Table, exact: tuple[np.ndarray, np.ndarray] | None) -> pa.Table:
    """``table`` with a ``value_int`` column where some rows hold an exact integer."""
    if exact is None or not exact[1].any():
        return table
    return table.append_column(VALUE_INT_FIELD, pa.array(exact[0], pa.int64(), mask=~exact[1]))


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

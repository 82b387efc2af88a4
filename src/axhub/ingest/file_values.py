"""Vectorised parsing of time and value columns, with a mask of what could not be parsed.

The fast path is one Arrow cast per column; only when it fails (a bad cell somewhere) do we
fall back to pandas with ``errors='coerce'`` to find which cells are bad. No per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from axhub.core.reading_rules import INT64_MAX, INT64_MIN
from axhub.core.readings import FLOAT_EXACT_INT
from axhub.ingest.file_mapping import EPOCH_FORMATS
from axhub.ingest.file_timeformats import parse_local_formats

# A time of day followed by an explicit offset ('...08:00:00+09:00', '...Z').
_OFFSET_RE = r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"
_UTC_US = pa.timestamp("us", tz="UTC")


def _as_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _valid(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)


def _localize(naive: pa.Array, timezone: str) -> pa.Array:
    """Naive local times -> UTC instants (DST: ambiguous/nonexistent take the earlier offset)."""
    if timezone in {"UTC", "Etc/UTC", "Z"}:
        return pc.cast(naive, pa.timestamp("us")).cast(_UTC_US)
    local = pc.assume_timezone(
        pc.cast(naive, pa.timestamp("us")), timezone=timezone, ambiguous="earliest", nonexistent="earliest"
    )
    return pc.cast(local, _UTC_US)


def _timestamps_to_us(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    ok = _valid(arr)
    us = pc.cast(arr, _UTC_US).cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    return np.asarray(us, dtype=np.int64), ok


def _iso_naive(arr: pa.Array) -> pa.Array:
    try:
        return pc.cast(arr, pa.timestamp("us"))
    except pa.ArrowInvalid:
        strings = pd.Series(pc.utf8_trim_whitespace(arr).to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_datetime(strings, format="ISO8601", errors="coerce")
        missing = parsed.isna() & strings.notna()
        if missing.any():  # Korean Excel / PLC logger forms: '2026-03-02 오후 2:15:00', '2026. 3. 2.'
            parsed[missing] = parse_local_formats(strings[missing])
        return pa.array(parsed.astype("datetime64[us]"), type=pa.timestamp("us"), from_pandas=True)


def _iso_aware(arr: pa.Array) -> pa.Array:
    try:
        return pc.cast(arr, _UTC_US)
    except pa.ArrowInvalid:
        strings = pd.Series(pc.utf8_trim_whitespace(arr).to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_datetime(strings, format="ISO8601", errors="coerce", utc=True)
        return pa.array(parsed.astype("datetime64[us, UTC]"), type=_UTC_US, from_pandas=True)


def _strptime(arr: pa.Array, fmt: str, timezone: str) -> pa.Array:
    if "%f" in fmt:  # Arrow's strptime has no fractional seconds; pandas has.
        strings = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_datetime(strings, format=fmt, errors="coerce", utc="%z" in fmt)
        if "%z" in fmt:
            return pa.array(parsed.astype("datetime64[us, UTC]"), type=_UTC_US, from_pandas=True)
        naive = pa.array(parsed.astype("datetime64[us]"), type=pa.timestamp("us"), from_pandas=True)
        return _localize(naive, timezone)
    parsed = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
    return pc.cast(parsed, _UTC_US) if "%z" in fmt else _localize(parsed, timezone)


def parse_times(
    column: pa.Array | pa.ChunkedArray, time_format: str | None, timezone: str
) -> tuple[np.ndarray, np.ndarray]:
    """Epoch microseconds (UTC) and a mask of the cells that held a usable time."""
    arr = _as_array(column)
    kind = arr.type
    if pa.types.is_timestamp(kind):
        return _timestamps_to_us(arr if kind.tz is not None else _localize(arr, timezone))
    if pa.types.is_date(kind):
        return _timestamps_to_us(_localize(pc.cast(arr, pa.timestamp("us")), timezone))
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or time_format in EPOCH_FORMATS
        or (time_format is None and _looks_like_epoch(arr))
    ):
        values, present, _bad = parse_numbers(arr, ".")
        scale = EPOCH_FORMATS.get(time_format or "", 0) or _guess_epoch_scale(values[present])
        us = np.round(np.nan_to_num(values) * scale).astype(np.int64)
        return us, present
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        arr = pc.cast(arr, pa.string())
    if time_format:
        return _timestamps_to_us(_strptime(arr, time_format, timezone))
    has_offset = np.asarray(
        pc.fill_null(pc.match_substring_regex(arr, _OFFSET_RE), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    if not has_offset.any():
        return _timestamps_to_us(_localize(_iso_naive(arr), timezone))
    if has_offset.all():
        return _timestamps_to_us(_iso_aware(arr))
    out = np.zeros(len(arr), dtype=np.int64)
    ok = np.zeros(len(arr), dtype=bool)
    for mask, parse in ((has_offset, _iso_aware), (~has_offset, None)):
        part = arr.filter(pa.array(mask))
        parsed = parse(part) if parse is not None else _localize(_iso_naive(part), timezone)
        us, good = _timestamps_to_us(parsed)
        out[mask], ok[mask] = us, good
    return out, ok


def _looks_like_epoch(arr: pa.Array) -> bool:
    """Digits only (e.g. 1709280000): epoch numbers written as text."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return False
    first = pc.drop_null(arr[:100])
    if len(first) == 0:
        return False
    return bool(pc.all(pc.match_substring_regex(first, r"^\s*\d{9,19}(\.\d+)?\s*$")).as_py())


def _guess_epoch_scale(values: np.ndarray) -> int:
    """Seconds, milliseconds or microseconds since 1970, from the magnitude (years 2001-2286)."""
    if len(values) == 0:
        return 1_000_000
    magnitude = float(np.nanmedian(np.abs(values)))
    if magnitude > 1e14:
        return 1
    if magnitude > 1e11:
        return 1_000
    return 1_000_000


def parse_numbers(
    column: pa.Array | pa.ChunkedArray, decimal: str | None = ".", thousands: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 values, present mask, bad mask): empty cells are neither present nor bad.

    ``thousands`` is removed first, then a decimal comma becomes a point ('1.234,5' -> 1234.5).
    """
    arr = _as_array(column)
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    present = _valid(arr)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        # Unsafe: an integer beyond +-2^53 becomes its nearest float64 here (the safe cast
        # refuses it); ``exact_integers`` gives the exact one.
        values = pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float64), present, np.zeros(len(arr), dtype=bool)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        arr = pc.cast(arr, pa.string())
    if thousands:
        arr = pc.replace_substring(arr, thousands, "")
    if decimal == ",":
        arr = pc.replace_substring(arr, ",", ".")
    try:
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float64), present, np.zeros(len(arr), dtype=bool)
    except pa.ArrowInvalid:
        pass
    strings = pd.Series(pc.utf8_trim_whitespace(arr).to_numpy(zero_copy_only=False), dtype=object)
    numbers = pd.to_numeric(strings, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = present & np.isnan(numbers) & ~strings.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy()
    return numbers, present & ~bad, bad


# An integer as written: optional sign, digits only (after trimming and dropping thousands).
_INTEGER_TEXT = r"^[+-]?[0-9]+$"


@dataclass(frozen=True)
class ExactInts:
    """The cells of a value column that hold an integer float64 cannot hold (beyond +-2^53)."""

    rows: np.ndarray  # positions (int64) of the cells kept exactly ...
    ints: np.ndarray  # ... and their integers (int64)
    out_of_range: np.ndarray  # bool per cell: an integer no int64 holds (refused, not rounded)


def exact_integers(
    column: pa.Array | pa.ChunkedArray, values: np.ndarray, present: np.ndarray, thousands: str | None = None
) -> ExactInts | None:
    """The exact integers behind ``values`` (``parse_numbers``' floats of ``column``) where
    float64 rounds them: integer columns (Parquet int64/uint64) and integer text ('9007199254740993',
    '9.007.199.254.740.993' with thousands '.'). None when there are none: one vectorised
    comparison, as every rounded integer has a float64 of magnitude >= 2^53. Text written as a
    decimal or with an exponent ('1e20') is a float and stays one."""
    candidates = np.flatnonzero(present & (np.abs(values) >= FLOAT_EXACT_INT))
    if len(candidates) == 0:
        return None
    arr = _as_array(column)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    picked = arr.take(pa.array(candidates))
    kind = picked.type
    if pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return None
    if pa.types.is_integer(kind):
        whole = np.ones(len(picked), dtype=bool)
        fits = whole
        if pa.types.is_unsigned_integer(kind):  # a UInt64 above 2^63 - 1
            fits = np.asarray(
                pc.less_equal(picked, pa.scalar(INT64_MAX, kind)).to_numpy(zero_copy_only=False), dtype=bool
            )
        ints = np.asarray(pc.cast(picked.filter(pa.array(fits)), pa.int64()).to_numpy(), dtype=np.int64)
    else:
        text = pc.cast(picked, pa.string()) if not pa.types.is_string(kind) else picked
        if thousands:
            text = pc.replace_substring(text, thousands, "")
        text = pc.utf8_trim_whitespace(text)
        whole = np.asarray(
            pc.fill_null(pc.match_substring_regex(text, _INTEGER_TEXT), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        digits = pc.replace_substring_regex(text.filter(pa.array(whole)), r"^\+", "")
        try:  # vectorised; only a cell beyond int64 makes it fail
            ints = np.asarray(pc.cast(digits, pa.int64()).to_numpy(), dtype=np.int64)
            fits = np.ones(len(digits), dtype=bool)
        except pa.ArrowInvalid:
            numbers = [int(d) for d in digits.to_pylist()]  # rare: only cells with such integers
            fits = np.array([INT64_MIN <= x <= INT64_MAX for x in numbers], dtype=bool)
            ints = np.array([x for x, ok in zip(numbers, fits, strict=True) if ok], dtype=np.int64)
    at = candidates[whole]
    out_of_range = np.zeros(len(values), dtype=bool)
    out_of_range[at[~fits]] = True
    return ExactInts(at[fits], ints, out_of_range)

"""How a part file stores its ``value`` column, losslessly (``PartFile.value_type``).

* ``dec<k>``: every value is an integer ``m`` divided by ``10**k`` *exactly in float64*
  (``m / 10**k`` gives back the very same bits), with ``|m| <= 2**53``. The file stores
  ``m`` as int64, DELTA_BINARY_PACKED + zstd. Sensor readings usually are such decimals (a
  tag with 0.01 resolution, a counter with k = 0); rows sorted by signal then time make
  neighbouring ``m`` close, so the deltas are small: ~1.2 bytes per value on simulator data
  against ~4.6 for float64 BYTE_STREAM_SPLIT. Decoding is one IEEE division, which numpy and
  DuckDB round the same way, so every reader gets identical bits.
* ``float64``: anything else (full-precision floats), BYTE_STREAM_SPLIT + zstd.
* ``float32``: files of the earlier store, read as the float64 of the float32's shortest
  decimal form (``49.71``, not ``49.709999084``), as they always were.

The scale is chosen per file, so one odd value only costs its own file the compact form.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FLOAT64 = "float64"
LEGACY_FLOAT32 = "float32"
DECIMAL_PREFIX = "dec"
MAX_SCALE = 9
_EXACT_INT = float(2**53)


def _exact_at(values: np.ndarray, scale: float) -> np.ndarray | None:
    """The integers ``m`` with ``m / scale`` bit-identical to ``values``, else None."""
    m = np.rint(values * scale)
    if len(m) and float(np.max(np.abs(m))) > _EXACT_INT:
        return None
    back = m / scale
    if not np.array_equal(back.view(np.int64), values.view(np.int64)):  # bits: keeps -0.0 apart
        return None
    return m.astype(np.int64)


def encode(values: pa.Array) -> tuple[str, pa.Array]:
    """(value_type, column to store) for a float64 array (nulls allowed)."""
    valid = values.drop_null() if values.null_count else values
    v = np.asarray(valid.to_numpy(zero_copy_only=False), dtype=np.float64)
    if not np.all(np.isfinite(v)):
        return FLOAT64, values
    # A sample rejects unsuitable scales cheaply before the full check.
    sample = v[:: max(1, len(v) // 2048)]
    for k in range(MAX_SCALE + 1):
        scale = 10.0**k
        if _exact_at(sample, scale) is None:
            continue
        m = _exact_at(v, scale)
        if m is None:
            continue
        if not values.null_count:
            return f"{DECIMAL_PREFIX}{k}", pa.array(m, pa.int64())
        full = np.zeros(len(values), dtype=np.int64)
        full[np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))] = m
        return f"{DECIMAL_PREFIX}{k}", pa.array(
            full, pa.int64(), mask=values.is_null().to_numpy(zero_copy_only=False)
        )
    return FLOAT64, values


def scale_of(value_type: str) -> int | None:
    return int(value_type[len(DECIMAL_PREFIX) :]) if value_type.startswith(DECIMAL_PREFIX) else None


def decode(value_type: str, column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The float64 values a stored column stands for."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    k = scale_of(value_type)
    if k is not None:
        return pc.divide(pc.cast(arr, pa.float64()), pa.scalar(10.0**k, pa.float64()))
    if value_type == LEGACY_FLOAT32:
        return pc.cast(pc.cast(arr, pa.string()), pa.float64())
    return pc.cast(arr, pa.float64())


def sql(value_type: str, column: str = "value") -> str:
    """DuckDB expression for the float64 values of ``column`` (aliased to its name)."""
    k = scale_of(value_type)
    if k is not None:
        return f"CAST({column} AS DOUBLE) / CAST({10**k} AS DOUBLE) AS {column}"
    if value_type == LEGACY_FLOAT32:
        return f"CAST(CAST({column} AS VARCHAR) AS DOUBLE) AS {column}"
    return column


def physical_type(value_type: str) -> pa.DataType:
    if scale_of(value_type) is not None:
        return pa.int64()
    return pa.float32() if value_type == LEGACY_FLOAT32 else pa.float64()

"""The one in-memory form of sensor readings that every source produces and every sink takes.

A batch is an Arrow table with ``READINGS_SCHEMA``: one row per (asset, signal, time).
Connectors, file ingestion and the simulator emit it; the time-series store writes it.

**Exact integers.** ``value`` is a float64, which holds every integer up to 2^53 exactly but
rounds larger ones (2^53 + 1 becomes 2^53). A source whose value is an integer (a 64-bit
counter from Modbus, an OPC UA or Sparkplug Int64/UInt64, a JSON integer) may add the optional
column ``value_int`` (int64, ``VALUE_INT_FIELD``): where it is not null it is the reading's exact
value and ``value`` its nearest float64. Sinks keep it for integers beyond +-2^53 and give it
back (``TimeSeriesStore.query(..., exact=True)``). An integer outside int64 (a UInt64 above
2^63 - 1) fits no column exactly: sources dead-letter it (``reading_rules.integer_problem``)
rather than store a rounded number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa

from axhub.core.domain import Quality

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

READINGS_SCHEMA = pa.schema(
    [
        pa.field("asset", pa.string(), nullable=False),
        pa.field("signal", pa.string(), nullable=False),
        pa.field("ts", TIMESTAMP_TYPE, nullable=False),
        pa.field("value", pa.float64(), nullable=True),
        pa.field("quality", pa.uint8(), nullable=False),
    ]
)


# The optional exact-integer column (see the module docstring).
VALUE_INT_FIELD = pa.field("value_int", pa.int64(), nullable=True)
# float64 holds every integer in [-2^53, 2^53]; beyond, only ``value_int`` keeps it exactly.
FLOAT_EXACT_INT = 2**53


def exact_int_column(n: int, exact: dict[int, int]) -> pa.Array:
    """A ``value_int`` column of ``n`` rows: ``exact`` maps row -> integer, other rows null."""
    data = np.zeros(n, dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    if exact:
        rows = np.fromiter(exact.keys(), dtype=np.int64, count=len(exact))
        data[rows] = np.fromiter(exact.values(), dtype=np.int64, count=len(exact))
        mask[rows] = False
    return pa.array(data, pa.int64(), mask=mask)


def split_exact(values: list[float | int | None]) -> tuple[list[float | None], dict[int, int]]:
    """Values as floats and the rows that hold an exact integer (a Python ``int`` in ``values``:
    sources put an int there only for an integer float64 cannot hold, see ``exact_value``)."""
    exact = {i: v for i, v in enumerate(values) if type(v) is int}
    if not exact:
        return values, exact  # no ints: the list holds floats and None only
    return [float(v) if type(v) is int else v for v in values], exact


def with_exact_ints(batch: pa.Table, exact: dict[int, int]) -> pa.Table:
    """``batch`` with a ``value_int`` column for the rows in ``exact`` (unchanged if empty)."""
    if not exact:
        return batch
    return batch.append_column(VALUE_INT_FIELD, exact_int_column(batch.num_rows, exact))


def concat_readings(tables: list[pa.Table]) -> pa.Table:
    """Batches as one, in order; ``value_int`` (null where a batch had none) if any has it."""
    if not tables:
        return READINGS_SCHEMA.empty_table()
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


@dataclass(frozen=True)
class WriteResult:
    """What a sink did with a batch: rows written and rows dropped as already stored."""

    written: int
    duplicates: int = 0


class ReadingSink(Protocol):
    """Anything that durably stores reading batches for one organisation.

    ``write`` returns only after the batch is durable (fsync'ed), so a source may
    acknowledge its upstream (MQTT PUBACK, file offset) once it returns: at-least-once
    delivery with idempotent writes gives no loss and no duplicates.
    """

    def write(self, org: str, batch: pa.Table) -> WriteResult: ...


def make_batch(
    asset: str | list[str] | np.ndarray,
    signal: str | list[str] | np.ndarray,
    ts: np.ndarray | list[int],
    value: np.ndarray | list[float],
    quality: np.ndarray | list[int] | None = None,
) -> pa.Table:
    """Build a readings batch; ``ts`` is epoch microseconds (int64) or datetime64.

    Scalar ``asset``/``signal`` are broadcast to every row.
    """
    ts_arr = np.asarray(ts)
    if np.issubdtype(ts_arr.dtype, np.datetime64):
        ts_arr = ts_arr.astype("datetime64[us]").astype(np.int64)
    n = len(ts_arr)
    values = np.asarray(value, dtype=np.float64)
    qual = (
        np.full(n, int(Quality.GOOD), dtype=np.uint8)
        if quality is None
        else np.asarray(quality, dtype=np.uint8)
    )

    def _strings(v: str | list[str] | np.ndarray) -> pa.Array:
        if isinstance(v, str):
            return pa.array([v], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))
        return pa.array(v, pa.string())

    return pa.table(
        {
            "asset": _strings(asset),
            "signal": _strings(signal),
            "ts": pa.array(ts_arr.astype(np.int64), pa.int64()).cast(TIMESTAMP_TYPE),
            "value": pa.array(values, pa.float64()),
            "quality": pa.array(qual, pa.uint8()),
        },
        schema=READINGS_SCHEMA,
    )

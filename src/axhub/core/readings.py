"""The one in-memory form of sensor readings that every source produces and every sink takes.

A batch is an Arrow table with ``READINGS_SCHEMA``: one row per (asset, signal, time).
Connectors, file ingestion and the simulator emit it; the time-series store writes it.
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

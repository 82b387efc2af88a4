"""1-minute partial aggregates of a part file, computed from the rows compaction has in memory.

A merged file's rows are already in memory, sorted by (signal, ts) with one row per key, so
each (signal, minute) is a contiguous run and the partials are a few numpy reductions. They
used to be a DuckDB query over the file just written: that re-read the file and, in the ingest
worker (which never queries), loaded DuckDB for it alone; its first query kept ~40 MB of RSS
for the life of the process, a step 8 minutes into every worker life (issue 11).

Columns and their meaning are those the query side combines (``timeseries._PARTIAL_SQL``):
``n`` non-null values, their sum ``s``, ``lo``, ``hi``, and the value and time of the latest
non-null reading (``last_v``, ``last_ts``); all but ``n`` are null in a minute without a value.
Buckets truncate toward zero like DuckDB's integer ``//`` that queries use.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROLLUP_US = 60_000_000

ROLLUP_SCHEMA = pa.schema(
    [
        pa.field("signal", pa.string()),
        pa.field("bucket_us", pa.int64()),
        pa.field("n", pa.int64()),
        pa.field("s", pa.float64()),
        pa.field("lo", pa.float64()),
        pa.field("hi", pa.float64()),
        pa.field("last_v", pa.float64()),
        pa.field("last_ts", pa.timestamp("us", tz="UTC")),
    ]
)


def rollup(table: pa.Table) -> pa.Table:
    """Partials per (signal, minute) of ``signal``/``ts``/``value`` rows with unique keys,
    ordered by signal then bucket."""
    if table.num_rows == 0:
        return ROLLUP_SCHEMA.empty_table()
    names = pc.cast(table.column("signal"), pa.string()).combine_chunks()
    sig = pc.dictionary_encode(names)
    codes = sig.indices.to_numpy().astype(np.int64)
    ts = table.column("ts").cast(pa.int64()).combine_chunks().to_numpy()
    values = table.column("value").combine_chunks()
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    v = np.asarray(values.fill_null(0.0).to_numpy(), dtype=np.float64)
    bucket = np.where(ts >= 0, ts // ROLLUP_US, -(-ts // ROLLUP_US)) * ROLLUP_US
    ascending = (codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (ts[1:] > ts[:-1]))
    if not ascending.all():
        order = np.lexsort((ts, codes))  # callers pass sorted rows; this keeps others right
        codes, ts, valid, v, bucket = codes[order], ts[order], valid[order], v[order], bucket[order]
    new_group = np.ones(len(ts), dtype=bool)
    new_group[1:] = (codes[1:] != codes[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(new_group)
    gid = np.cumsum(new_group) - 1
    groups = len(starts)
    n = np.bincount(gid[valid], minlength=groups).astype(np.int64)
    s = np.zeros(groups)
    lo = np.zeros(groups)
    hi = np.zeros(groups)
    last_v = np.zeros(groups)
    last_ts = np.zeros(groups, dtype=np.int64)
    if valid.any():
        # Over the non-null rows only (a null must not turn a -0.0 sum into 0.0).
        gv, vv, tv = gid[valid], v[valid], ts[valid]
        first = np.flatnonzero(np.r_[True, gv[1:] != gv[:-1]])
        last = np.r_[first[1:], len(gv)] - 1
        have = gv[first]
        s[have] = np.add.reduceat(vv, first)
        lo[have] = np.minimum.reduceat(vv, first)
        hi[have] = np.maximum.reduceat(vv, first)
        last_v[have] = vv[last]  # keys are unique and ts ascending within a group
        last_ts[have] = tv[last]
    empty = n == 0
    out = pa.table(
        {
            "signal": sig.dictionary.take(pa.array(codes[starts].astype(np.int32))),
            "bucket_us": pa.array(bucket[starts]),
            "n": pa.array(n),
            "s": pa.array(s, mask=empty),
            "lo": pa.array(lo, mask=empty),
            "hi": pa.array(hi, mask=empty),
            "last_v": pa.array(last_v, mask=empty),
            "last_ts": pa.array(last_ts, mask=empty).cast(pa.timestamp("us", tz="UTC")),
        },
        schema=ROLLUP_SCHEMA,
    )
    return out.take(pc.sort_indices(out, [("signal", "ascending"), ("bucket_us", "ascending")]))

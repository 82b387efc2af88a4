"""Rollups computed in memory (``ts_rollups``) equal the DuckDB query that used to compute them."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from axhub.store.ts_rollups import ROLLUP_SCHEMA, ROLLUP_US, rollup

# The query compaction ran over each merged file before (issue 11: it loaded DuckDB into the
# ingest worker for this alone).
_SQL = (
    f"SELECT signal, (epoch_us(ts) // {ROLLUP_US}) * {ROLLUP_US} AS bucket_us, "
    "count(value) AS n, sum(value) AS s, min(value) AS lo, max(value) AS hi, "
    "arg_max(value, ts) FILTER (WHERE value IS NOT NULL) AS last_v, "
    "max(ts) FILTER (WHERE value IS NOT NULL) AS last_ts "
    "FROM rows GROUP BY ALL ORDER BY signal, bucket_us"
)


def _rows(seed: int, *, shuffled: bool, t0_us: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    signals, per = ["vib", "temp", "b", "가속도"], 700
    ts = t0_us + np.sort(rng.choice(np.arange(10 * per) * 250_000, per, replace=False))
    names = np.repeat(signals, per)
    all_ts = np.tile(ts, len(signals))
    values = np.round(rng.normal(0, 5, len(all_ts)), 3)
    values[rng.random(len(values)) < 0.05] = -0.0
    null = rng.random(len(values)) < 0.2
    null[np.flatnonzero(names == "b")[:400]] = True  # whole minutes without a value
    table = pa.table(
        {
            "signal": pa.array(names).dictionary_encode(),
            "ts": pa.array(all_ts).cast(pa.timestamp("us", tz="UTC")),
            "value": pa.array(values, mask=null),
        }
    )
    if shuffled:
        table = table.take(pa.array(rng.permutation(len(all_ts))))
    return table


@pytest.mark.parametrize(
    ("shuffled", "t0_us"),
    [(False, 1_709_330_400_000_000), (True, 1_709_330_400_000_000), (False, -1_000_000_000)],
)
def test_rollups_equal_the_sql_partials(shuffled: bool, t0_us: int) -> None:
    rows = _rows(3, shuffled=shuffled, t0_us=t0_us)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("rows", rows)
    want = con.sql(_SQL).to_arrow_table()
    got = rollup(rows)
    assert got.schema == ROLLUP_SCHEMA
    assert got.column("signal").to_pylist() == want.column("signal").to_pylist()
    for name in ("bucket_us", "n", "lo", "hi", "last_v"):
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    last_ts = [t.column("last_ts").cast(pa.int64()).to_pylist() for t in (got, want)]
    assert last_ts[0] == last_ts[1]
    np.testing.assert_allclose(
        got.column("s").to_numpy(zero_copy_only=False).astype(float),
        want.column("s").to_numpy(zero_copy_only=False).astype(float),
        rtol=1e-12,
        atol=1e-12,
    )  # a sum's last bit depends on the order of the additions
    assert got.column("s").null_count == want.column("s").null_count > 0  # minutes without a value
    # -0.0 partials keep their sign (a null in the minute adds nothing, not +0.0).
    signs = np.signbit(got.column("lo").to_numpy(zero_copy_only=False).astype(float))
    assert np.array_equal(signs, np.signbit(want.column("lo").to_numpy(zero_copy_only=False).astype(float)))


def test_rollup_of_no_rows_is_empty() -> None:
    assert rollup(_rows(1, shuffled=False, t0_us=0).slice(0, 0)).num_rows == 0

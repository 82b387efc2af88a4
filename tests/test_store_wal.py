"""The store's write-ahead log: visible before compaction, first copy wins, torn tails, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq

from axhub.core.readings import make_batch
from axhub.store import ts_files, wal
from axhub.store.timeseries import TimeSeriesStore

T0_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z


def _values(store: TimeSeriesStore, org: str, asset: str) -> dict[tuple[str, int], float]:
    frame = store.query(org, asset)
    ts = frame["ts"].dt.tz_convert("UTC").dt.as_unit("us").astype("int64")
    return {(s, int(t)): float(v) for s, t, v in zip(frame["signal"], ts, frame["value"], strict=True)}


def _parquet_duplicates(store: TimeSeriesStore, org: str, asset: str) -> int:
    files = [str(f) for f in store.files_for(org, asset)]
    if not files:
        return 0
    sql = "SELECT count(*) FROM (SELECT signal, ts FROM read_parquet(?) GROUP BY ALL HAVING count(*) > 1)"
    return int(duckdb.sql(sql, params=[files]).fetchall()[0][0])


def _batch(asset: str, start_s: int, n: int, value: float) -> object:
    ts = T0_US + (start_s + np.arange(n, dtype=np.int64)) * 1_000_000
    return make_batch(asset, "temp", ts, np.full(n, value))


def test_log_rows_are_queryable_and_the_first_copy_wins(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=3600)
    store.write("acme", _batch("m1", 0, 10, 1.0))  # already in Parquet: wins over the log
    assert store.append("acme", _batch("m1", 5, 10, 2.0)).written == 10  # 5..14
    store.append("acme", _batch("m1", 10, 10, 3.0))  # 10..19: a redelivery with new values
    store.append("acme", _batch("m2", 0, 3, 4.0))
    want = {("temp", T0_US + s * 1_000_000): (1.0 if s < 10 else 2.0 if s < 15 else 3.0) for s in range(20)}
    assert _values(store, "acme", "m1") == want
    assert store.count("acme") == 23 and store.count("acme", "m1") == 20
    assert store.list_assets("acme") == ["m1", "m2"] and store.list_signals("acme", "m2") == ["temp"]
    lo, hi = store.time_range("acme", "m1")
    assert lo is not None and hi is not None and (hi - lo).total_seconds() == 19
    # Aggregates over log + Parquet: bucket of 20 s -> mean of the winning values.
    mean = store.query("acme", "m1", interval="20s")
    assert float(mean["value"].iloc[0]) == np.mean(list(want.values()))
    # Another process's view (a fresh store) reads the same log.
    other = TimeSeriesStore(tmp_path)
    assert _values(other, "acme", "m1") == want
    # Compaction moves the log into Parquet: same answer, no duplicate, log emptied.
    assert store.flush_wal("acme") == 23
    assert _values(other, "acme", "m1") == want
    assert _parquet_duplicates(store, "acme", "m1") == 0
    assert store.count("acme") == 23
    assert wal.list_segments(tmp_path / "org=acme" / wal.WAL_DIR)[:-1] == []
    store.close()


def test_a_torn_tail_is_ignored_then_cut_off(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=3600)
    store.append("acme", _batch("m1", 0, 5, 1.0))
    store.append("acme", _batch("m1", 5, 5, 1.0))
    store.close()
    directory = tmp_path / "org=acme" / wal.WAL_DIR
    segment = directory / wal.segment_name(wal.list_segments(directory)[-1])
    whole = segment.stat().st_size
    record = wal.encode(_batch("m1", 10, 5, 9.0))  # type: ignore[arg-type]
    with open(segment, "ab") as fh:
        fh.write(record[: len(record) // 2])  # a writer killed half-way through a record
    fresh = TimeSeriesStore(tmp_path, wal_max_age_s=3600)
    assert fresh.count("acme") == 10  # the torn record is not data
    fresh.append("acme", _batch("m1", 20, 5, 2.0))  # cuts the torn bytes, then appends
    assert segment.stat().st_size == whole + len(wal.encode(_batch("m1", 20, 5, 2.0)))  # type: ignore[arg-type]
    assert fresh.count("acme") == 15
    # A flipped bit in a record is caught by its checksum: reading stops before it.
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert TimeSeriesStore(tmp_path).count("acme") == 10
    fresh.close()


CHILD = textwrap.dedent(
    """
    import sys, numpy as np
    from axhub.core.readings import make_batch
    from axhub.store.timeseries import TimeSeriesStore
    root, first, last, final = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    # Tiny segments and a short age: seals and compactions happen all the time.
    store = TimeSeriesStore(root, wal_max_age_s=0.05, wal_segment_bytes=4096, merge_files=4)
    T0 = 1_735_689_600_000_000
    print("ready", flush=True)
    for i in range(first, last):
        asset = f"m{i % 5}"
        ts = T0 + (i * 10 + np.arange(10, dtype=np.int64)) * 1_000_000
        store.append("acme", make_batch(asset, ["a", "b"] * 5, ts, ts / 1e6 + 0.25))
        print(i, flush=True)  # acknowledged: durable
    if final:
        store.compact("acme")
        print("done", flush=True)
    """
)


def _run_child(root: Path, first: int, last: int, final: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(first), str(last), "1" if final else "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_anywhere_loses_nothing_acknowledged_and_duplicates_nothing(tmp_path: Path) -> None:
    """A writer is SIGKILLed repeatedly mid-append and mid-compaction; each restart resends
    from a little before its last acknowledged batch (as a broker redelivers)."""
    total = 400
    acked = -1
    rng = np.random.default_rng(3)
    for _ in range(5):
        child = _run_child(tmp_path, max(0, acked - 3), total, final=False)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.1, 0.8)))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        lines = [ln for ln in out.split() if ln.isdigit()]
        if lines:
            acked = max(acked, int(lines[-1]))
        # Everything acknowledged so far is readable right now, exactly once.
        store = TimeSeriesStore(tmp_path)
        assert store.count("acme") >= (acked + 1) * 10
        for asset in store.list_assets("acme"):
            assert _parquet_duplicates(store, "acme", asset) == 0
            for f in store.files_for("acme", asset):
                pq.read_metadata(f)  # every committed file is whole
        store.close()
    assert acked > 0, "the writer never got going; the machine may be overloaded"
    child = _run_child(tmp_path, max(0, acked - 3), total, final=True)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and out.split()[-1] == "done"
    store = TimeSeriesStore(tmp_path)
    assert store.count("acme") == total * 10
    for k in range(5):
        got = _values(store, "acme", f"m{k}")
        assert len(got) == total * 10 // 5
        assert all(v == t / 1e6 + 0.25 for (_, t), v in got.items())
        assert _parquet_duplicates(store, "acme", f"m{k}") == 0


def test_the_background_compactor_moves_an_old_log_into_parquet(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=0.2, merge_files=3)
    for k in range(4):
        store.append("acme", _batch("m1", k * 10, 10, float(k)))
        time.sleep(0.35)  # each append lands in a new segment once the previous one aged
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        store.count("acme") != 40
        or len(wal.list_segments(tmp_path / "org=acme" / wal.WAL_DIR)) > 1
        or not store.files_for("acme", "m1")
    ):
        time.sleep(0.1)
    store.close()
    assert len(wal.list_segments(tmp_path / "org=acme" / wal.WAL_DIR)) <= 1  # only the active one
    files = store.files_for("acme", "m1")
    assert files and len(files) < 3  # compacted, and small files merged (merge_files=3)
    assert _values(TimeSeriesStore(tmp_path), "acme", "m1") == {
        ("temp", T0_US + s * 1_000_000): float(s // 10) for s in range(40)
    }


def test_deleting_an_asset_also_drops_its_rows_still_in_the_log(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=3600)
    store.write("acme", _batch("m1", 0, 5, 1.0))
    store.append("acme", _batch("m1", 5, 5, 2.0))  # still in the log
    store.append("acme", _batch("m2", 0, 5, 3.0))
    assert store.delete_asset("acme", "m1")
    assert store.count("acme", "m1") == 0 and store.query("acme", "m1").empty
    store.compact("acme")  # nothing comes back from the log
    assert store.count("acme", "m1") == 0 and store.count("acme", "m2") == 5
    store.append("acme", _batch("m1", 100, 3, 4.0))  # a new asset with the same slug starts empty
    assert store.count("acme", "m1") == 3
    store.close()


def test_small_files_merge_size_tiered_and_keep_every_reading(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, merge_files=4)
    store.write("acme", _batch("m1", 0, 1000, 1.0))  # a big file (e.g. the day so far)
    for k in range(7):
        store.append("acme", _batch("m1", 1000 + k * 10, 10, 2.0))
        store.flush_wal("acme")  # one small file per log compaction
    partition = tmp_path / "org=acme" / "asset=m1" / "date=2025-01-01"
    files = ts_files.read_manifest(partition).files
    assert len(files) < 4
    assert max(f.rows for f in files) == 1000  # the big file was never rewritten
    assert store.count("acme") == 1070 and _parquet_duplicates(store, "acme", "m1") == 0
    got = _values(store, "acme", "m1")
    assert len(got) == 1070 and sum(got.values()) == 1000 * 1.0 + 70 * 2.0
    store.close()


def test_a_partition_that_grows_all_day_is_merged_in_bounded_files(tmp_path: Path) -> None:
    # The ingest worker's RSS grew with the day (issue 11): a size-tiered merge ended up
    # rewriting the whole partition. Here no merge may produce (so read) more than 120 rows,
    # while a partition of 100 log compactions keeps few files and every reading.
    store = TimeSeriesStore(tmp_path, merge_files=4, merge_max_rows=120)
    for k in range(100):
        store.append("acme", _batch("m1", k * 10, 10, float(k % 7)))
        store.flush_wal("acme")  # one small file per log compaction, merged as the worker does
    partition = tmp_path / "org=acme" / "asset=m1" / "date=2025-01-01"
    files = ts_files.read_manifest(partition).files
    assert max(f.rows for f in files) <= 120  # no merge rewrote the day
    assert sum(f.rows >= 60 for f in files) >= 6  # the day is a series of final files ...
    assert sum(f.rows < 60 for f in files) < 4  # ... plus fewer than merge_files small ones
    assert all(f.rollup for f in files if f.rows > 10)  # merged files carry their rollups
    assert store._con is None  # writing and merging never loaded DuckDB (only queries do)
    assert store.count("acme") == 1000 and _parquet_duplicates(store, "acme", "m1") == 0
    assert _values(store, "acme", "m1") == {
        ("temp", T0_US + s * 1_000_000): float((s // 10) % 7) for s in range(1000)
    }
    hourly = store.query("acme", "m1", interval="1h", agg="max")  # rollups across many files
    assert hourly["value"].tolist() == [6.0]
    store.close()

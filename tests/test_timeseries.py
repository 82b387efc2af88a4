"""Time-series store: round trip, resampling, idempotency, crash safety, compaction, concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from axhub.core.errors import AxHubError
from axhub.core.readings import make_batch
from axhub.store import ts_files
from axhub.store.timeseries import TimeSeriesStore

T0 = pd.Timestamp("2024-03-01T22:00:00Z")  # batches below cross UTC midnight


def _batch(
    start: pd.Timestamp, seconds: int, signals: list[str], asset: str = "cnc-01", seed: int = 0
) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = (start.value // 1000) + np.arange(seconds, dtype=np.int64) * 1_000_000
    all_ts = np.tile(ts, len(signals))
    names = np.repeat(np.array(signals), seconds)
    # Sensor resolution: 2 decimals, like a real tag (stored as exact decimals, returned as sent).
    values = np.round(rng.normal(50, 5, len(all_ts)), 2)
    return make_batch(asset, names, all_ts, values)


def _frame(batch: pa.Table) -> pd.DataFrame:
    df = batch.to_pandas()
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def _duplicates(store: TimeSeriesStore, org: str, asset: str) -> int:
    files = [str(f) for f in store.files_for(org, asset)]
    if not files:
        return 0
    sql = "SELECT count(*) FROM (SELECT signal, ts FROM read_parquet(?) GROUP BY ALL HAVING count(*) > 1)"
    return int(duckdb.sql(sql, params=[files]).fetchall()[0][0])


def test_round_trip_across_midnight_and_assets(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    a = _batch(T0 + pd.Timedelta("1h50min"), 1200, ["load", "temp"], "cnc-01", seed=1)
    b = _batch(T0, 300, ["flow"], "pump-01", seed=2)
    result = store.write("acme", pa.concat_tables([a, b]))
    assert result.written == 2 * 1200 + 300 and result.duplicates == 0
    # The CNC batch spans 23:50-00:10 UTC: two date partitions.
    dates = sorted(p.name for p in (tmp_path / "org=acme" / "asset=cnc-01").iterdir())
    assert dates == ["date=2024-03-01", "date=2024-03-02"]

    got = store.query("acme", "cnc-01").sort_values(["signal", "ts"]).reset_index(drop=True)
    want = _frame(a).sort_values(["signal", "ts"]).reset_index(drop=True)
    pd.testing.assert_series_equal(got["ts"], want["ts"], check_dtype=False)
    assert got["signal"].tolist() == want["signal"].tolist()
    np.testing.assert_array_equal(got["value"].to_numpy(), want["value"].to_numpy())
    assert (got["quality"] == 0).all()
    assert store.count("acme") == 2700 and store.count("acme", "pump-01") == 300
    assert store.list_signals("acme", "cnc-01") == ["load", "temp"]
    assert store.list_assets("acme") == ["cnc-01", "pump-01"]
    first, last = store.time_range("acme", "pump-01")
    assert first == T0.to_pydatetime() and last == (T0 + pd.Timedelta(seconds=299)).to_pydatetime()
    stats = store.stats("acme")
    assert stats.points == 2700 and stats.bytes > 0 and stats["bytes"] == stats.bytes


def test_query_window_signals_and_wide(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    store.write("acme", _batch(T0, 600, ["a", "b", "c"]))
    start, end = T0 + pd.Timedelta(seconds=100), T0 + pd.Timedelta(seconds=160)
    got = store.query("acme", "cnc-01", ["b", "c"], start, end)
    assert set(got["signal"]) == {"b", "c"} and len(got) == 120
    assert got["ts"].min() == start and got["ts"].max() == end - pd.Timedelta(seconds=1)
    wide = store.query_wide("acme", "cnc-01", ["c", "a"], start, end)
    assert list(wide.columns) == ["ts", "c", "a"] and len(wide) == 60
    assert store.query("acme", "cnc-01", start=T0 - pd.Timedelta("1D"), end=T0).empty
    assert store.query("acme", "no-such-asset").empty


@pytest.mark.parametrize("agg", ["mean", "min", "max", "last"])
def test_resampling_matches_pandas(tmp_path: Path, agg: str) -> None:
    store = TimeSeriesStore(tmp_path)
    batch = _batch(T0 + pd.Timedelta(seconds=17), 900, ["x", "y"], seed=3)
    store.write("acme", batch)
    got = store.query("acme", "cnc-01", interval="1min", agg=agg)  # type: ignore[arg-type]
    df = _frame(batch)
    how = {"mean": "mean", "min": "min", "max": "max", "last": "last"}[agg]
    want = (
        df.set_index("ts")
        .groupby("signal")["value"]
        .resample("1min")
        .agg(how)
        .dropna()
        .reset_index()
        .sort_values(["ts", "signal"])
        .reset_index(drop=True)
    )
    assert len(got) == len(want)
    assert got["ts"].tolist() == want["ts"].tolist() and got["signal"].tolist() == want["signal"].tolist()
    # mean is computed over float32 values; min/max/last return the stored value exactly.
    tol = 1e-5 if agg == "mean" else 0
    np.testing.assert_allclose(got["value"], want["value"], rtol=tol, atol=tol)


def test_rewrite_and_overlap_never_duplicate_first_write_wins(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    first = _batch(T0, 600, ["a", "b"], seed=1)
    assert store.write("acme", first).written == 1200
    again = store.write("acme", first)
    assert (again.written, again.duplicates) == (0, 1200)
    # Overlapping batch with other values: only the new seconds land, stored values stay.
    overlap = _batch(T0 + pd.Timedelta(seconds=300), 600, ["a", "b"], seed=2)
    res = store.write("acme", overlap)
    assert (res.written, res.duplicates) == (600, 600)
    assert store.count("acme") == 1800 and _duplicates(store, "acme", "cnc-01") == 0
    got = store.query("acme", "cnc-01", ["a"], T0, T0 + pd.Timedelta(seconds=300))
    stored_a = _frame(first).query("signal == 'a'")["value"].to_numpy()
    np.testing.assert_array_equal(got["value"], stored_a[:300])
    # Duplicates inside one batch (unsorted): the first occurrence is kept.
    ts = np.array([5, 1, 5, 3, 1], dtype=np.int64) * 1_000_000 + T0.value // 1000 + 10**9
    res = store.write("acme", make_batch("cnc-01", "c", ts, [1.0, 2.0, 3.0, 4.0, 5.0]))
    assert (res.written, res.duplicates) == (3, 2)
    got = store.query("acme", "cnc-01", ["c"])
    assert got["value"].tolist() == [2.0, 4.0, 1.0]


def test_timezones(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    store.write("acme", _batch(T0, 3600, ["a"]))
    # 07:10 in Seoul (+09:00) is 22:10 UTC.
    got = store.query("acme", "cnc-01", ["a"], "2024-03-02T07:10:00+09:00", "2024-03-02T07:11:00+09:00")
    assert len(got) == 60 and got["ts"].iloc[0] == T0 + pd.Timedelta("10min")
    assert str(got["ts"].dt.tz) == "UTC"
    naive = store.query("acme", "cnc-01", ["a"], "2024-03-01 22:10:00", "2024-03-01 22:11:00")
    assert naive["ts"].tolist() == got["ts"].tolist()  # naive bounds are UTC
    with pytest.raises(AxHubError, match="UTC timestamp"):
        store.write("acme", _batch(T0, 5, ["a"]).set_column(2, "ts", pa.array(np.zeros(5, "datetime64[us]"))))


def test_names_are_path_checked(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    with pytest.raises(AxHubError):
        store.write("../evil", _batch(T0, 5, ["a"]))
    with pytest.raises(AxHubError):
        store.write("acme", _batch(T0, 5, ["a"], asset="../../etc"))
    assert not any(tmp_path.iterdir())


def test_compaction_preserves_and_dedupes(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    for i in range(4):
        store.write("acme", _batch(T0 + pd.Timedelta(minutes=10 * i), 600, ["a", "b"], seed=i))
    before = store.query("acme", "cnc-01")
    # A legacy duplicate file (as written by an older tool) committed beside the others.
    part = tmp_path / "org=acme" / "asset=cnc-01" / "date=2024-03-01"
    manifest = ts_files.read_manifest(part)
    dup = store._write_file(part, pa.parquet.read_table(part / manifest.files[0].name))
    ts_files.commit_manifest(part, ts_files.Manifest(files=[*manifest.files, dup]))
    assert _duplicates(store, "acme", "cnc-01") > 0
    result = store.compact("acme")
    assert result.files_before == 5 and result.files_after == 1 and result.duplicates_removed == 1200
    assert _duplicates(store, "acme", "cnc-01") == 0
    after = store.query("acme", "cnc-01")
    pd.testing.assert_frame_equal(before, after)
    assert len(list(part.glob("part-*.parquet"))) == 1
    assert store.compact("acme").partitions == 0  # nothing left to merge


def test_compaction_crash_before_and_after_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TimeSeriesStore(tmp_path)
    for i in range(3):
        store.write("acme", _batch(T0 + pd.Timedelta(minutes=10 * i), 600, ["a"], seed=i))
    part = tmp_path / "org=acme" / "asset=cnc-01" / "date=2024-03-01"
    before = store.query("acme", "cnc-01")

    # Crash before the manifest swap: the merged file is an orphan, old files stay visible.
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr("axhub.store.timeseries.commit_manifest", boom)
    with pytest.raises(RuntimeError):
        store.compact("acme")
    monkeypatch.undo()
    assert len(list(part.glob("part-*.parquet"))) == 4  # 3 committed + 1 orphan
    pd.testing.assert_frame_equal(store.query("acme", "cnc-01"), before)

    # Crash after the swap, before old files are deleted: only the new file is visible.
    def commit_then_die(partition: Path, manifest: ts_files.Manifest) -> None:
        ts_files.commit_manifest(partition, manifest)
        raise RuntimeError("killed")

    monkeypatch.setattr("axhub.store.timeseries.commit_manifest", commit_then_die)
    with pytest.raises(RuntimeError):
        store.compact("acme")
    monkeypatch.undo()
    assert len(ts_files.read_manifest(part).files) == 1
    pd.testing.assert_frame_equal(store.query("acme", "cnc-01"), before)
    # The next writer of the partition removes what the dead compaction left.
    store.write("acme", _batch(T0, 10, ["a"]))
    assert len(list(part.glob("part-*.parquet"))) == 1
    assert len(list(part.glob("rollup-*.parquet"))) == 1  # the committed file's rollup only
    assert store.count("acme") == 1800


def test_concurrent_writers_one_partition(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    batches = [_batch(T0 + pd.Timedelta(seconds=100 * i), 300, ["a", "b"], seed=i) for i in range(6)]
    errors: list[BaseException] = []

    def writer(order: list[int]) -> None:
        try:
            for i in order:
                TimeSeriesStore(tmp_path).write("acme", batches[i])
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(o,)) for o in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # Seconds 0..799 for two signals, each exactly once.
    assert store.count("acme") == 2 * 800 and _duplicates(store, "acme", "cnc-01") == 0


_KILL_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pathlib import Path
    from axhub.core.readings import make_batch
    from axhub.store.timeseries import TimeSeriesStore

    store = TimeSeriesStore(Path(sys.argv[1]))
    t0 = 1_709_330_400_000_000  # 2024-03-01T22:00Z; batches cross midnight
    for i in range(int(sys.argv[2])):
        ts = t0 + (i * 500 + np.arange(1000)) * 1_000_000  # each batch overlaps the previous one
        store.write("acme", make_batch("cnc-01", np.repeat(["a", "b", "c"], 1000), np.tile(ts, 3),
                                       np.tile(np.arange(1000.0), 3)))
        print(i, flush=True)
    """
)


def test_sigkill_mid_write_leaves_store_consistent_and_rerun_is_exact(tmp_path: Path) -> None:
    root = tmp_path / "ts"
    script = tmp_path / "writer.py"
    script.write_text(_KILL_WRITER)
    batches = 40
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(batches)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    for _ in range(3):  # let a few batches commit, then kill while it is writing
        proc.stdout.readline()
    time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = TimeSeriesStore(root)
    # Every committed file is readable Parquet; nothing half-written is listed.
    for partition in (root / "org=acme" / "asset=cnc-01").iterdir():
        for f in ts_files.read_manifest(partition).files:
            assert pa.parquet.ParquetFile(partition / f.name).metadata.num_rows == f.rows
    partial = store.count("acme")
    assert 0 < partial < 3 * (batches * 500 + 500)
    assert len(store.query("acme", "cnc-01")) == partial
    assert _duplicates(store, "acme", "cnc-01") == 0

    rerun = subprocess.run([sys.executable, str(script), str(root), str(batches)], capture_output=True)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert store.count("acme") == 3 * (batches * 500 + 500)
    assert _duplicates(store, "acme", "cnc-01") == 0
    leftovers = [p for p in root.rglob("*") if p.name.startswith(ts_files.TMP_PREFIX)]
    assert not leftovers


@pytest.mark.parametrize("agg", ["mean", "min", "max", "last"])
def test_rollups_after_compaction_match_raw_resampling(tmp_path: Path, agg: str) -> None:
    store = TimeSeriesStore(tmp_path)
    batches = [_batch(T0 + pd.Timedelta(seconds=17 + 400 * i), 400, ["x", "y"], seed=i) for i in range(3)]
    for b in batches:
        store.write("acme", b)
    raw = {iv: store.query("acme", "cnc-01", interval=iv, agg=agg) for iv in ("1min", "5min")}  # type: ignore[arg-type]
    store.compact("acme")
    part = tmp_path / "org=acme" / "asset=cnc-01" / "date=2024-03-01"
    assert ts_files.read_manifest(part).files[0].rollup is not None
    # A later raw file in the same partition: the query combines rollup and raw partials.
    late = _batch(T0 + pd.Timedelta(seconds=1217), 300, ["x", "y"], seed=9)
    store.write("acme", late)
    df = pd.concat([_frame(b) for b in [*batches, late]])
    start, end = T0, T0 + pd.Timedelta("1h")
    for iv in ("1min", "5min"):
        got = store.query("acme", "cnc-01", start=start, end=end, interval=iv, agg=agg)  # type: ignore[arg-type]
        want = (
            df.set_index("ts").groupby("signal")["value"].resample(iv).agg(agg).dropna().reset_index()
            .sort_values(["ts", "signal"]).reset_index(drop=True)
        )  # fmt: skip
        assert got["ts"].tolist() == want["ts"].tolist() and got["signal"].tolist() == want["signal"].tolist()
        tol = 1e-5 if agg == "mean" else 0
        np.testing.assert_allclose(got["value"], want["value"], rtol=tol, atol=tol)
        # Before the late write, the same query gave the same figures for the earlier buckets.
        early = raw[iv][raw[iv]["ts"] < T0 + pd.Timedelta(seconds=1200)]
        merged = got[got["ts"] < T0 + pd.Timedelta(seconds=1200)]
        np.testing.assert_allclose(merged["value"].to_numpy(), early["value"].to_numpy(), rtol=tol, atol=tol)
    # A window that is not minute-aligned falls back to raw rows and stays exact.
    odd = store.query("acme", "cnc-01", ["x"], T0 + pd.Timedelta(seconds=30), end, "1min", agg)  # type: ignore[arg-type]
    first = df[
        (df["signal"] == "x")
        & (df["ts"] >= T0 + pd.Timedelta(seconds=30))
        & (df["ts"] < T0 + pd.Timedelta("1min"))
    ]
    expected = first["value"].iloc[-1] if agg == "last" else first["value"].agg(agg)
    assert odd["value"].iloc[0] == pytest.approx(float(expected), rel=1e-6)

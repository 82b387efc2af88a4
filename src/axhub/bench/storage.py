"""``axhub bench storage``: file-ingest throughput and memory, query latency, bytes per point.

1. Generates a wide CSV of simulator-like data (smooth process signals + sensor noise,
   quantised to 0.01 like a real tag) at 1 Hz: ``--points`` readings over ``--signals``
   columns.
2. Ingests it with ``axhub.ingest.files.ingest_file`` in a *subprocess*, so the peak
   resident memory (ru_maxrss of the child) is the ingest's alone.
3. Bytes per stored point (timestamps included), before and after compaction.
4. Query latency, warm: 24 h of 20 signals at 1 Hz resampled to 1 min (median of N runs).

Everything lives in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

TARGET_POINTS_PER_S = 2_000_000
TARGET_RSS_MB = 1024
TARGET_QUERY_MS = 100
TARGET_BYTES_PER_POINT = 4.0
START = "2024-03-01T00:00:00"

_INGEST_CHILD = """
import json, sys
from pathlib import Path
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.files import ingest_file
from axhub.store.timeseries import TimeSeriesStore

store = TimeSeriesStore(Path(sys.argv[2]))
r = ingest_file(Path(sys.argv[1]), store, "bench", FileMapping(asset="sim-01"))
print(json.dumps({"points": r.points_written, "rows": r.rows_read, "rejected": r.rows_rejected,
                  "elapsed_s": r.elapsed_s}))
"""


def generate_wide_csv(path: Path, points: int, signals: int, seed: int = 0) -> int:
    """Write the benchmark CSV in row chunks (bounded memory); returns the number of rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pv

    rows = points // signals
    rng = np.random.default_rng(seed)
    # Per signal: a level, a slow daily swing, a faster process cycle and sensor noise.
    level = rng.uniform(10, 500, signals)
    swing = level * rng.uniform(0.02, 0.1, signals)
    cycle = level * rng.uniform(0.005, 0.03, signals)
    period = rng.uniform(300, 3600, signals)
    noise = level * rng.uniform(0.001, 0.005, signals)
    t0 = np.datetime64(START, "s")
    chunk = 100_000
    names = [f"sig_{j:02d}" for j in range(signals)]
    with pv.CSVWriter(
        str(path),
        pa.schema([("time", pa.timestamp("s")), *[(n, pa.float64()) for n in names]]),
        write_options=pv.WriteOptions(quoting_style="none"),
    ) as writer:
        for first in range(0, rows, chunk):
            t = np.arange(first, min(first + chunk, rows), dtype=np.float64)
            cols = {"time": pa.array(t0 + t.astype("timedelta64[s]"))}
            for j, name in enumerate(names):
                value = (
                    level[j]
                    + swing[j] * np.sin(2 * np.pi * t / 86_400)
                    + cycle[j] * np.sin(2 * np.pi * t / period[j])
                    + rng.normal(0.0, noise[j], len(t))
                )
                cols[name] = pa.array(np.round(value, 2))
            writer.write_table(pa.table(cols))
    return rows


def _time_query(store: object, runs: int) -> tuple[float, float, int]:
    """Warm median wall time and CPU time (all threads of this process) of the query, in ms.

    CPU time shows what the query costs on an idle machine; wall time is what a user waits on
    this (shared) one.
    """
    import pandas as pd

    start = pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=1)
    signals = [f"sig_{j:02d}" for j in range(20)]

    def once() -> int:
        frame = store.query(  # type: ignore[attr-defined]
            "bench", "sim-01", signals, start, start + pd.Timedelta(days=1), interval="1min", agg="mean"
        )
        return len(frame)

    rows = once()  # warm-up: file footers cached, pages in the OS cache
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        once()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus), rows


def plain_parquet_bytes(store: object, org: str) -> tuple[int, int]:
    """(bytes, rows) of the same committed rows written the plain way: pyarrow defaults with
    zstd, float64 values, one file per partition (the baseline for bytes per point)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from axhub.store import ts_files, ts_values
    from axhub.store.timeseries import TimeSeriesStore

    assert isinstance(store, TimeSeriesStore)
    total = rows = 0
    with tempfile.TemporaryDirectory(prefix="axhub-bench-plain-") as tmp:
        for asset in store.list_assets(org):
            for i, path in enumerate(store.files_for(org, asset)):
                value_type = {f.name: f.value_type for f in ts_files.read_manifest(path.parent).files}[
                    path.name
                ]
                table = pq.read_table(path)
                table = table.set_column(0, "signal", table.column("signal").cast(pa.string()))
                table = table.set_column(2, "value", ts_values.decode(value_type, table.column("value")))
                out = Path(tmp) / f"{asset}-{i}.parquet"
                pq.write_table(table, out, compression="zstd")
                total += out.stat().st_size
                rows += table.num_rows
                out.unlink()
    return total, rows


def run(
    points: int, signals: int, query_runs: int, keep: Path | None = None, update_docs: bool = False
) -> None:
    from axhub.bench.report import BenchResult, save_run
    from axhub.store.timeseries import TimeSeriesStore

    if points < signals * 2 * 86_400:
        raise typer.BadParameter(
            f"need at least {signals * 2 * 86_400:,} points (2 days) for the 24 h query",
            param_hint="--points",
        )
    workdir = Path(tempfile.mkdtemp(prefix="axhub-bench-storage-"))
    try:
        csv_path = workdir / "wide.csv"
        t = time.perf_counter()
        rows = generate_wide_csv(csv_path, points, signals)
        gen_s = time.perf_counter() - t
        csv_mb = csv_path.stat().st_size / 1e6
        print(f"generated {rows:,} rows x {signals} signals ({csv_mb:,.0f} MB) in {gen_s:.1f} s", flush=True)

        root = workdir / "ts"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-c", _INGEST_CHILD, str(csv_path), str(root)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall_s = time.perf_counter() - t
        if child.returncode != 0:
            raise RuntimeError(f"ingest subprocess failed: {child.stderr[-2000:]}")
        ingest = json.loads(child.stdout.strip().splitlines()[-1])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        rate = ingest["points"] / ingest["elapsed_s"]
        took = ingest["elapsed_s"]
        print(f"ingested {ingest['points']:,} points in {took:.1f} s ({rate:,.0f}/s)", flush=True)

        store = TimeSeriesStore(root)
        before = store.stats("bench")
        q_before_ms, _cpu, _rows = _time_query(store, query_runs)
        t = time.perf_counter()
        compacted = store.compact("bench")
        compact_s = time.perf_counter() - t
        after = store.stats("bench")
        raw_bytes = sum(
            f.stat().st_size for a in store.list_assets("bench") for f in store.files_for("bench", a)
        )
        plain_bytes, plain_rows = plain_parquet_bytes(store, "bench")
        q_ms, q_cpu_ms, q_rows = _time_query(store, query_runs)
        load = os.getloadavg()[0]

        def met(ok: bool) -> str:
            return "yes" if ok else "NO"

        figures = [
            {
                "measure": "ingest throughput (wide CSV)",
                "value": round(rate),
                "unit": "points/s",
                "target": f">= {TARGET_POINTS_PER_S:,}",
                "met": met(rate >= TARGET_POINTS_PER_S),
            },
            {
                "measure": "peak RSS of the ingest process",
                "value": round(peak_mb),
                "unit": "MB",
                "target": f"< {TARGET_RSS_MB}",
                "met": met(peak_mb < TARGET_RSS_MB),
            },
            {
                "measure": "query 24 h x 20 signals @1 Hz -> 1 min (warm median)",
                "value": round(q_ms, 1),
                "unit": "ms",
                "target": f"< {TARGET_QUERY_MS}",
                "met": met(q_ms < TARGET_QUERY_MS),
            },
            {
                "measure": "same query, CPU time (all threads)",
                "value": round(q_cpu_ms, 1),
                "unit": "ms",
                "target": f"< {TARGET_QUERY_MS}",
                "met": met(q_cpu_ms < TARGET_QUERY_MS),
            },
            {
                "measure": "same query before compaction",
                "value": round(q_before_ms, 1),
                "unit": "ms",
                "target": f"< {TARGET_QUERY_MS}",
                "met": met(q_before_ms < TARGET_QUERY_MS),
            },
            {
                "measure": "bytes per point after compaction",
                "value": round(after.bytes_per_point, 3),
                "unit": "B/point",
                "target": f"<= {TARGET_BYTES_PER_POINT:g}",
                "met": met(after.bytes_per_point <= TARGET_BYTES_PER_POINT),
            },
            {
                "measure": "bytes per point after compaction, raw files only (no rollups)",
                "value": round(raw_bytes / after.points, 3),
                "unit": "B/point",
                "target": f"<= {TARGET_BYTES_PER_POINT:g}",
                "met": met(raw_bytes / after.points <= TARGET_BYTES_PER_POINT),
            },
            {
                "measure": "same rows as plain float64 + zstd Parquet (pyarrow defaults), measured",
                "value": round(plain_bytes / plain_rows, 3),
                "unit": "B/point",
                "target": "",
                "met": "",
            },
            {
                "measure": "bytes per point as ingested",
                "value": round(before.bytes_per_point, 3),
                "unit": "B/point",
                "target": f"<= {TARGET_BYTES_PER_POINT:g}",
                "met": met(before.bytes_per_point <= TARGET_BYTES_PER_POINT),
            },
        ]
        result = BenchResult(
            name="storage",
            title="Time-series storage: file ingest, query latency, bytes per point",
            dataset=f"synthetic wide CSV, {rows:,} rows x {signals} signals at 1 Hz ({csv_mb:,.0f} MB)",
            split=f"{ingest['points']:,} points",
            rows=figures,
            references=[
                {
                    "measure": "bytes per point, raw float64 value + int64 timestamp",
                    "value": 16,
                    "unit": "B/point",
                },
            ],
            notes=[
                f"Ingest wall time incl. interpreter start {wall_s:.1f} s; ingest_file itself "
                f"{ingest['elapsed_s']:.1f} s; {ingest['rejected']} rows rejected.",
                f"Compaction: {compacted.files_before} -> {compacted.files_after} files in "
                f"{compacted.partitions} partitions, {compact_s:.1f} s; {after.points:,} points, "
                f"{after.bytes / 1e6:,.1f} MB on disk; the query returns {q_rows:,} rows.",
                "Values stored losslessly: per file, exact decimals as int64 multiples of 10^-k "
                "(DELTA_BINARY_PACKED + zstd), other doubles as float64 (BYTE_STREAM_SPLIT + zstd); "
                "timestamps delta-encoded, signal dictionary/RLE, rows sorted by signal then time; "
                "after compaction the bytes include the 1-minute rollups that the resampled query "
                "reads (before compaction it reads raw rows). The plain baseline rewrites the same "
                "compacted rows with pyarrow's defaults (dictionary, then plain, float64 + zstd).",
                f"Machine shared with other jobs: 1-min load average {load:.1f} on "
                f"{os.cpu_count()} cores during the run.",
            ],
            extra={
                "generate_s": gen_s,
                "compact_s": compact_s,
                "load_avg_1m": load,
                "raw_bytes": raw_bytes,
                "plain_float64_zstd_bytes": plain_bytes,
            },
        )
        save_run(result, update_docs=update_docs)
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("storage")
    def storage(
        points: int = typer.Option(50_000_000, "--points", help="Readings in the generated CSV."),
        signals: int = typer.Option(50, "--signals", help="Signal columns in the CSV."),
        query_runs: int = typer.Option(20, "--query-runs", help="Timed query repetitions (median)."),
        update_docs: bool = typer.Option(
            False, "--update-docs", help="Write bench-results/ and docs/benchmarks.md."
        ),
    ) -> None:
        """Ingest throughput, peak memory, query latency and bytes per point. / 저장소 성능 측정."""
        run(points, signals, query_runs, update_docs=update_docs)

"""Drive ``TimeSeriesStore.append`` + log compaction the way the soak's ingest worker does, in
simulated time, and sample the process's RSS and Arrow's allocated bytes.

Why: the soak (``axhub bench soak``) takes 20 minutes and judges RSS through broker and server
restarts; this isolates the store. Per simulated second: 10 flushes (the worker's 100 ms) of
one tick of ``--assets`` machines x ``--signals`` signals (20 x 10 at 10 Hz = 2,000 readings/s),
and every ``--seal-s`` simulated seconds the log is sealed and compacted (the compactor's
``wal_max_age_s``), including the size-tiered merge of small files.

    PYTHONPATH=src python scripts/store_rss_repro.py --minutes 60 --csv /tmp/rss.csv

The worker's allocators (two glibc arenas; Arrow on the system allocator, see
``core/malloc_arenas``) are used unless ``--default-allocators``; Arrow's choice is made here
before pyarrow is imported, as ``axhub run ingest`` does.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

if "--default-allocators" not in sys.argv:  # before pyarrow is imported, as the worker does
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import numpy as np
import pyarrow as pa

from axhub.core.malloc_arenas import limit_malloc_arenas
from axhub.store.timeseries import TimeSeriesStore


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slope_per_10min(minutes: np.ndarray, mb: np.ndarray) -> float:
    if len(minutes) < 3:
        return float("nan")
    return float(np.polyfit(minutes, mb, 1)[0] * 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="Simulated minutes.")
    parser.add_argument("--assets", type=int, default=20)
    parser.add_argument("--signals", type=int, default=10)
    parser.add_argument("--hz", type=int, default=10, help="Ticks per second per signal.")
    parser.add_argument("--seal-s", type=float, default=30.0, help="Simulated seconds between seals.")
    parser.add_argument("--warm-min", type=float, default=2.0, help="Minutes left out of the slope.")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument(
        "--default-allocators", action="store_true", help="Arrow's mimalloc and glibc's many arenas."
    )
    args = parser.parse_args()
    if not args.default_allocators:
        limit_malloc_arenas()
    print(f"Arrow allocator: {pa.default_memory_pool().backend_name}", flush=True)

    root = args.root or Path(tempfile.mkdtemp(prefix="rss-repro-"))
    # The compactor never seals on its own (age 1e9 s): this script seals in simulated time.
    store = TimeSeriesStore(root, wal_max_age_s=1e9)
    org = "org1"
    assets = [f"line-{i:02d}" for i in range(args.assets)]
    signals = [f"s{j}" for j in range(args.signals)]
    asset_col = pa.array(np.repeat(assets, args.signals)).dictionary_encode()
    signal_col = pa.array(np.tile(signals, args.assets)).dictionary_encode()
    rng = np.random.default_rng(5)
    t0_us = int(time.time() // 86_400) * 86_400 * 1_000_000 + 3_600_000_000  # 01:00 UTC today
    step_us = 1_000_000 // args.hz
    ticks = int(args.minutes * 60 * args.hz)
    seal_every = int(args.seal_s * args.hz)
    rows: list[tuple[float, float, float, float, int]] = []
    started = time.monotonic()
    for k in range(ticks):
        ts = pa.array(np.full(len(asset_col), t0_us + k * step_us), pa.timestamp("us", tz="UTC"))
        values = pa.array(np.round(rng.normal(50, 5, len(asset_col)), 3))
        store.append(org, pa.table({"asset": asset_col, "signal": signal_col, "ts": ts, "value": values}))
        if (k + 1) % seal_every == 0:
            store.flush_wal(org)  # seal + compact + size-tiered merge, as the compactor does
            gc.collect()
            sim_min = (k + 1) / args.hz / 60
            files = store.stats(org, assets[0]).files
            arrow_mb = pa.total_allocated_bytes() / 2**20
            rows.append((sim_min, rss_mb(), arrow_mb, time.monotonic() - started, files))
            print(
                f"sim {sim_min:6.1f} min  rss {rows[-1][1]:7.1f} MB  arrow {rows[-1][2]:6.1f} MB  "
                f"files/partition {files:3d}  wall {rows[-1][3]:6.1f} s",
                flush=True,
            )
    store.close()
    data = np.array([r[:3] for r in rows])
    warm = data[:, 0] >= args.warm_min
    print(
        f"RSS slope from {args.warm_min} min: "
        f"{slope_per_10min(data[warm, 0], data[warm, 1]):+.2f} MB/10 min; "
        f"first {data[warm, 1][0]:.1f} -> last {data[-1, 1]:.1f} (max {data[:, 1].max():.1f}) MB; "
        f"store rows {store.count(org):,}"
    )
    if args.csv is not None:
        args.csv.write_text(
            "sim_min,rss_mb,arrow_mb,wall_s,files\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
        )


if __name__ == "__main__":
    main()

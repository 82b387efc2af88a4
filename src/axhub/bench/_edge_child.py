"""The scoring loop of ``axhub bench edge``, run in its own process: it imports only what the
edge agent imports (no typer, pandas or the hub), so its RSS is the agent's."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SIGNALS = 50
HZ = 10
_HEAVY = ("pandas", "torch", "sklearn", "fastapi", "sqlalchemy", "typer")


def _names() -> list[str]:
    return [f"신호_{i:02d}" for i in range(SIGNALS)]


def child_main(argv: list[str]) -> None:
    """The scoring loop (runs in its own process; imports only what the agent imports)."""
    from axhub.edge.buffer import Buffer, readings_table
    from axhub.edge.scoring import LocalScorer
    from axhub.registry.bundle import BundleRunner

    bundle, home, seconds, public = Path(argv[0]), Path(argv[1]), float(argv[2]), Path(argv[3]).read_bytes()
    runner = BundleRunner(bundle, public_key=public)
    buffer = Buffer(home / "buffer.db", quota_bytes=2 << 30)
    alerts: list[dict[str, Any]] = []
    scorer = LocalScorer(runner, ["press-01"], on_alert=alerts.append)
    names = _names()
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((5, SIGNALS))
    state = np.zeros(5)
    tick_ms: list[float] = []
    t0_us = int(time.time() * 1e6)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        due = start + i / HZ
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        state += rng.standard_normal(5) / 30
        values = state @ mix + 0.1 * rng.standard_normal(SIGNALS)
        ts = t0_us + i * 100_000
        batch = readings_table(["press-01"] * SIGNALS, names, [ts] * SIGNALS, values.tolist(), [0] * SIGNALS)
        began = time.perf_counter()
        buffer.add_readings(batch)
        scorer.feed(batch)
        tick_ms.append((time.perf_counter() - began) * 1000)
        i += 1
    run_ms = list(scorer.stats.latencies_ms)
    # throughput: 20,000 rows as fast as possible, 100 rows per batch, no buffer
    fast = LocalScorer(runner, ["press-02"])
    n_rows, per = 20_000, 100
    data = rng.standard_normal((n_rows, SIGNALS))
    began = time.perf_counter()
    for b in range(0, n_rows, per):
        ts_list = [t0_us + (b + r) * 100_000 for r in range(per) for _ in range(SIGNALS)]
        batch = readings_table(
            ["press-02"] * (per * SIGNALS),
            names * per,
            ts_list,
            data[b : b + per].reshape(-1).tolist(),
            [0] * (per * SIGNALS),
        )
        fast.feed(batch)
    took = time.perf_counter() - began
    # a file, not stdout: a long run's figures overflow the pipe while the parent only samples
    (home / "result.json").write_text(
        json.dumps(
            {
                "ticks": len(tick_ms),
                "tick_ms": tick_ms,
                "run_ms": run_ms,
                "alerts": len(alerts),
                "throughput_rows_s": fast.stats.rows / took,
                "heavy_modules": sorted(
                    m
                    for m in _HEAVY
                    if sys.modules.get(m) is not None  # a None entry is a blocked import, not a load
                ),
            }
        )
    )

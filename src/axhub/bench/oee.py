"""``axhub bench oee``: OEE for a whole industrial complex, computed by DuckDB over Parquet.

Generates ``--companies`` x ``--machines`` machines x ``--days`` of states at 1-minute resolution,
stored the way PLC state tags report them (one row per change: breakdowns, micro-stoppages,
setups and planned nights), part counts once an hour, and two shifts a day; then computes
availability, performance, quality and OEE per company and day with the same SQL the hub runs
for one machine (``production.engine``), and the complex's OEE distribution. Reports the time
and peak memory of the computation alone (the data is generated before the clock starts). The
figures themselves are checked against hand-computed examples and the simulator's minute counts
in the tests, not here.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pandas as pd
import typer

TARGET_S = 10.0
SHIFTS = ((6, 14), (14, 22))  # local hours (UTC here: the bench needs no time zone)


def _generate(root: Path, companies: int, machines: int, days: int, seed: int) -> dict[str, int]:
    """Write states, counts and windows as Parquet (in company chunks; bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    minutes = days * 1440
    day_min = np.arange(minutes) % 1440
    in_shift = np.zeros(minutes, dtype=bool)
    for s, e in SHIFTS:
        in_shift |= (day_min >= s * 60) & (day_min < e * 60)
    base = np.where(in_shift, 1, 4).astype(np.int8)  # running in shifts, planned stop at night
    starts = np.flatnonzero(
        np.r_[False, in_shift[1:] & ~in_shift[:-1]] | (in_shift & (day_min == SHIFTS[0][0] * 60))
    )
    t0 = np.datetime64("2025-01-01T00:00", "m").astype("int64") * 60_000_000
    names = np.array(["down", "running", "idle", "setup", "planned_stop"])
    n_states = n_counts = 0
    windows = []
    for d in range(days):
        for i, (s, e) in enumerate(SHIFTS):
            windows.append(
                (
                    t0 + ((d * 1440 + s * 60) * 60_000_000),
                    t0 + ((d * 1440 + e * 60) * 60_000_000),
                    f"{d:03d}/{i}",
                )
            )
    w_start = np.array([w[0] for w in windows], dtype=np.int64)
    w_end = np.array([w[1] for w in windows], dtype=np.int64)
    w_name = np.array([w[2] for w in windows])
    state_writer = count_writer = window_writer = None
    from rich.progress import track

    for c in track(range(companies), description="generating companies"):
        st_asset, st_ts, st_state, ct_asset, ct_ts, ct_good, ct_scrap = [], [], [], [], [], [], []
        for m in range(machines):
            asset = c * machines + m
            state = base.copy()
            state[starts[:, None] + np.arange(15)] = 3  # 15-minute setup at every shift start
            running = np.flatnonzero(state == 1)
            for _ in range(rng.poisson(0.8 * days)):  # breakdowns of 10-90 minutes
                k = running[rng.integers(len(running))]
                span = slice(k, min(k + int(rng.integers(10, 90)), minutes))
                state[span] = np.where(state[span] == 1, 0, state[span])
            micro = running[rng.integers(0, len(running), rng.poisson(6 * days))]
            state[micro] = np.where(state[micro] == 1, 2, state[micro])
            change = np.flatnonzero(np.r_[True, state[1:] != state[:-1]])
            st_asset.append(np.full(len(change), asset, dtype=np.int32))
            st_ts.append(t0 + change.astype(np.int64) * 60_000_000)
            st_state.append(state[change])
            produced = np.add.reduceat(
                (state == 1).astype(np.int64) * rng.poisson(0.9, minutes), np.arange(0, minutes, 60)
            )
            scrap = rng.binomial(produced, 0.02)
            ct_asset.append(np.full(len(produced), asset, dtype=np.int32))
            ct_ts.append(t0 + np.arange(0, minutes, 60, dtype=np.int64) * 60_000_000 + 59 * 60_000_000)
            ct_good.append((produced - scrap).astype(np.float64))
            ct_scrap.append(scrap.astype(np.float64))
        states = pa.table(
            {
                "asset": np.concatenate(st_asset),
                "ts_us": np.concatenate(st_ts),
                "state": pa.DictionaryArray.from_arrays(np.concatenate(st_state).astype(np.int32), names),
            }
        )
        counts = pa.table(
            {
                "asset": np.concatenate(ct_asset),
                "ts_us": np.concatenate(ct_ts),
                "good": np.concatenate(ct_good),
                "scrap": np.concatenate(ct_scrap),
                "ideal_s": np.full(sum(len(a) for a in ct_asset), 60.0),
            }
        )
        assets = np.arange(c * machines, (c + 1) * machines, dtype=np.int32)
        win = pa.table(
            {
                "asset": np.repeat(assets, len(windows)),
                "start_us": np.tile(w_start, machines),
                "end_us": np.tile(w_end, machines),
                "period": np.tile(w_name, machines),
            }
        )
        if state_writer is None:
            state_writer = pq.ParquetWriter(root / "states.parquet", states.schema, compression="zstd")
            count_writer = pq.ParquetWriter(root / "counts.parquet", counts.schema, compression="zstd")
            window_writer = pq.ParquetWriter(root / "windows.parquet", win.schema, compression="zstd")
        state_writer.write_table(states)
        assert count_writer is not None and window_writer is not None
        count_writer.write_table(counts)
        window_writer.write_table(win)
        n_states += states.num_rows
        n_counts += counts.num_rows
    for writer in (state_writer, count_writer, window_writer):
        assert writer is not None
        writer.close()
    return {"state_changes": n_states, "counts": n_counts, "windows": companies * machines * len(windows)}


def _compute(root: Path, machines: int, threads: int | None) -> tuple[pd.DataFrame, float]:
    import duckdb

    from axhub.production import engine, kpi

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    con.execute(
        f"CREATE VIEW states AS SELECT asset, ts_us, state::VARCHAR AS state FROM '{root / 'states.parquet'}'"
    )
    con.execute(f"CREATE VIEW counts AS SELECT * FROM '{root / 'counts.parquet'}'")
    con.execute(f"CREATE VIEW windows AS SELECT * FROM '{root / 'windows.parquet'}'")
    no_rows = "0::INTEGER AS asset, 0::BIGINT AS start_us, 0::BIGINT AS end_us"
    con.execute(f"CREATE VIEW planned AS SELECT {no_rows} WHERE FALSE")
    con.execute(f"CREATE VIEW reasons AS SELECT {no_rows}, ''::VARCHAR AS reason WHERE FALSE")
    con.execute(f"CREATE VIEW machines AS SELECT DISTINCT asset, asset // {machines} AS company FROM windows")
    started = time.perf_counter()
    sums = engine.totals(con, ["company", "period"], join="JOIN machines USING (asset)")
    # Sums add up: shifts -> days (the period is 'day/shift').
    sums["day"] = sums["period"].str.split("/").str[0]
    daily = sums.drop(columns="period").groupby(["company", "day"], as_index=False).sum()
    figures = kpi.ratios(daily)
    elapsed = time.perf_counter() - started
    return figures, elapsed


def run(
    companies: int = typer.Option(100, help="Companies in the complex."),
    machines: int = typer.Option(50, help="Machines per company."),
    days: int = typer.Option(365, help="Days of 1-minute states."),
    seed: int = typer.Option(0, help="Generator seed."),
    threads: int | None = typer.Option(None, help="DuckDB threads (default: all cores)."),
    work: Path | None = typer.Option(
        None, "--work", help="Where to generate the data (default: a temp dir)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Save the JSON here (default: $AXHUB_HOME/bench)."),
    update_docs: bool = typer.Option(
        False, "--update-docs", help="Also update docs/benchmarks.md and bench-results/."
    ),
) -> None:
    """OEE for companies x machines x days of 1-minute states in DuckDB; target < 10 s on this machine."""
    import json
    import shutil
    import tempfile

    from axhub.bench.report import BenchResult, save_run

    tmp = Path(tempfile.mkdtemp(prefix="axhub-bench-oee-")) if work is None else work
    try:
        t = time.perf_counter()
        meta = tmp / "meta.json"
        params = {"companies": companies, "machines": machines, "days": days, "seed": seed}
        if work is not None and meta.is_file() and json.loads(meta.read_text())["params"] == params:
            sizes = json.loads(meta.read_text())["sizes"]  # the same data as last time: reuse it
        else:
            sizes = _generate(tmp, companies, machines, days, seed)
            meta.write_text(json.dumps({"params": params, "sizes": sizes}))
        gen_s = time.perf_counter() - t
        typer.echo(f"generated {sizes} in {gen_s:.1f} s; computing ...")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        figures, elapsed = _compute(tmp, machines, threads)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        disk_mb = sum(p.stat().st_size for p in tmp.glob("*.parquet")) / 1e6
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    frame = figures
    per_company = frame.groupby("company")[["oee"]].mean()
    minutes = companies * machines * days * 1440
    generated = "reused from --work" if gen_s < 1 else f"{gen_s:.0f} s"
    result = BenchResult(
        name="oee",
        title="OEE over an industrial complex (ISO 22400, DuckDB)",
        dataset=f"generated: {companies} companies x {machines} machines x {days} days of 1-minute states",
        split="-",
        rows=[
            {
                "machine-minutes": minutes,
                "state changes": sizes["state_changes"],
                "hourly counts": sizes["counts"],
                "company-days": len(frame),
                "compute s": round(elapsed, 2),
                "target s": TARGET_S,
                "met": elapsed < TARGET_S,
                "peak RSS MB": round(peak_mb),
                "Parquet MB": round(disk_mb, 1),
                "median company OEE": round(float(per_company["oee"].median()), 3),
            }
        ],
        notes=[
            "States are stored as PLC state tags report them: one row per change (1-minute resolution), "
            f"{sizes['state_changes'] / (companies * machines * days):.1f} changes per machine-day.",
            f"Data generation ({generated}) is outside the timed part; peak RSS is the whole process "
            f"(before computing: {rss_before / 1024:.0f} MB).",
            "The same SQL (production.engine) computes one machine's OEE in the hub; its figures are "
            "checked against hand-computed ISO 22400 examples and the simulator's minute counts in tests.",
        ],
        extra={"sizes": sizes, "generate_s": gen_s},
    )
    if elapsed >= TARGET_S:
        result.notes.append(
            "Where the time goes (profile on a tenth of the data): ~75 % in the event sweep, one "
            "window pass over the state changes and shift edges carrying state, shift, planned "
            "downtime and reason forward; ~15 % placing counts by the as-of join. Two other "
            "carry-forward forms were slower on the same data (count() groups + first_value 5x, "
            "arg_max over a running frame 2x). Next: keep state runs at ingest and place them in "
            "shifts by as-of joins, sweeping only machines with planned downtime or reasons."
        )
    save_run(result, update_docs=update_docs, out=out)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("oee")(run)

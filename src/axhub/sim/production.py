"""Production of the simulated plant: machine states and part counts whose OEE truth is known.

Each machine works the shifts it is given (local hours, every day) and sits in planned stop
outside them. Within a shift it starts with a setup, then runs with breakdowns (long stops with
a known cause), micro-stoppages (a minute or two of idle) and a speed below the ideal cycle, and
scraps a small fraction of parts. Everything happens on whole minutes, so the truth can be
counted minute by minute, independently of the OEE engine that tests compare with it.

Readings: a ``state`` tag reported on change (PackML-like codes: 0 down, 1 running, 2 idle,
3 setup, 4 planned stop) and ``good_count`` / ``scrap_count`` increments once a minute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from axhub.sim._common import asset_rng

STATE_CODES = {"down": 0, "running": 1, "idle": 2, "setup": 3, "planned_stop": 4}
BREAKDOWN_CAUSES = ("breakdown", "tool_change", "material_wait")


@dataclass(frozen=True)
class ProductionSpec:
    shifts: tuple[tuple[int, int], ...] = ((6, 14), (14, 22))  # local hours; end <= start crosses midnight
    timezone: str = "Asia/Seoul"
    ideal_cycle_s: float = 60.0
    speed: float = 0.9  # parts per ideal cycle while running
    scrap_rate: float = 0.03
    setup_min: int = 15
    breakdowns_per_shift: float = 0.6
    micro_stops_per_shift: float = 4.0


@dataclass(frozen=True)
class ProductionRun:
    readings: dict[str, pd.DataFrame]  # machine -> long frame (ts, signal, value)
    minutes: dict[str, pd.DataFrame]  # machine -> per-minute truth (ts, state, in_shift, good, scrap)
    stops: pd.DataFrame  # machine, start, end, cause (the breakdowns' true causes)


def simulate_production(
    machines: list[str],
    start: pd.Timestamp | str,
    days: int,
    *,
    seed: int = 7,
    spec: ProductionSpec | None = None,
) -> ProductionRun:
    spec = spec or ProductionSpec()
    t0 = pd.Timestamp(start)
    t0 = (t0.tz_localize(spec.timezone) if t0.tzinfo is None else t0.tz_convert(spec.timezone)).floor("D")
    index = pd.date_range(t0, periods=days * 1440, freq="1min")
    minute_of_day = index.hour * 60 + index.minute
    in_shift = np.zeros(len(index), dtype=bool)
    shift_start = np.zeros(len(index), dtype=bool)
    for s, e in spec.shifts:
        lo, hi = s * 60, e * 60
        inside = (
            (minute_of_day >= lo) & (minute_of_day < hi)
            if hi > lo
            else (minute_of_day >= lo) | (minute_of_day < hi)
        )
        in_shift |= inside
        shift_start |= minute_of_day == lo
    readings, minutes, stops = {}, {}, []
    for machine in machines:
        rng = asset_rng(seed, f"production/{machine}")
        state = np.where(in_shift, "running", "planned_stop").astype(object)
        for i in np.flatnonzero(shift_start):
            state[i : i + spec.setup_min] = "setup"
        n_shifts = int(shift_start.sum())
        n_break = rng.poisson(spec.breakdowns_per_shift * n_shifts)
        for i in rng.choice(np.flatnonzero(in_shift & (state == "running")), size=n_break, replace=False):
            length = int(rng.integers(10, 60))
            span = slice(i, min(i + length, len(index)))
            mask = in_shift[span] & (state[span] == "running")
            state[span][mask] = "down"
            stops.append(
                (
                    machine,
                    index[i],
                    index[span.stop - 1] + pd.Timedelta(minutes=1),
                    str(rng.choice(BREAKDOWN_CAUSES)),
                )
            )
        n_micro = rng.poisson(spec.micro_stops_per_shift * n_shifts)
        for i in rng.choice(np.flatnonzero(in_shift & (state == "running")), size=n_micro, replace=False):
            state[i] = "idle"
        running = state == "running"
        produced = np.where(running, rng.poisson(spec.speed * 60.0 / spec.ideal_cycle_s, len(index)), 0)
        scrap = rng.binomial(produced, spec.scrap_rate)
        good = produced - scrap
        codes = np.array([STATE_CODES[s] for s in state], dtype=float)
        change = np.r_[True, codes[1:] != codes[:-1]]
        ts_utc = index.tz_convert("UTC")
        long = pd.concat(
            [
                pd.DataFrame({"ts": ts_utc[change], "signal": "state", "value": codes[change]}),
                pd.DataFrame({"ts": ts_utc, "signal": "good_count", "value": good.astype(float)}),
                pd.DataFrame({"ts": ts_utc, "signal": "scrap_count", "value": scrap.astype(float)}),
            ],
            ignore_index=True,
        ).sort_values(["ts", "signal"], kind="stable", ignore_index=True)
        readings[machine] = long
        minutes[machine] = pd.DataFrame(
            {"ts": ts_utc, "state": state.astype(str), "in_shift": in_shift, "good": good, "scrap": scrap}
        )
    stops_frame = pd.DataFrame(stops, columns=["machine", "start", "end", "cause"])
    return ProductionRun(readings=readings, minutes=minutes, stops=stops_frame)


def true_oee(minutes: pd.DataFrame, ideal_cycle_s: float) -> dict[str, float]:
    """ISO 22400 figures counted minute by minute (the simulator's truth, no interval arithmetic)."""
    shift = minutes[minutes["in_shift"]]
    busy = shift[shift["state"] != "planned_stop"]
    pbt = len(busy) * 60.0
    apt = float((busy["state"] == "running").sum()) * 60.0
    good, scrap = float(shift["good"].sum()), float(shift["scrap"].sum())
    produced = good + scrap
    a, p, q = apt / pbt, produced * ideal_cycle_s / apt, good / produced
    return {"availability": a, "performance": p, "quality": q, "oee": a * p * q}

"""ISO 22400-2 OEE figures from the time accounting of ``engine.segments``.

Definitions (ISO 22400-2:2014, KPIs for manufacturing operations management):

- POT planned operation time: the shift windows.
- PDT planned down time: planned downtime in the calendar and ``planned_stop`` states.
- PBT planned busy time = POT - PDT.
- APT actual production time: ``running`` within PBT.
- ADOT / ASUT / ADET: ``down`` / ``setup`` / ``idle`` within PBT (``unknown``, no data, is a loss too).
- PQ produced quantity = good + scrap; GQ good quantity; PRI planned run time per item (ideal cycle).
- Availability = APT / PBT; Effectiveness (performance) = PRI x PQ / APT; Quality ratio = GQ / PQ;
  OEE index = Availability x Effectiveness x Quality ratio.

Aggregating over machines, shifts or days sums the times and quantities first and divides
afterwards (a machine idle for a whole shift weighs what it lost, not one vote among many).
Micro-stoppages (stops shorter than a threshold) are counted and listed among the losses; by the
standard their time is still outside APT, so it lowers availability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from axhub.production.states import MachineState

_US = 1_000_000.0


@dataclass(frozen=True)
class OeeFigures:
    planned_operation_s: float
    planned_down_s: float
    planned_busy_s: float
    production_s: float
    down_s: float
    setup_s: float
    idle_s: float
    unknown_s: float
    produced: float
    good: float
    scrap: float
    ideal_time_s: float
    micro_stops: int
    micro_stop_s: float
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


SUM_COLUMNS = (
    "planned_operation_s",
    "planned_down_s",
    "production_s",
    "down_s",
    "setup_s",
    "idle_s",
    "unknown_s",
    "micro_stop_s",
    "micro_stops",
    "good",
    "scrap",
    "ideal_time_s",
)


def sums(seg: pd.DataFrame, keys: Sequence[str] = ()) -> pd.DataFrame:
    """The time and count sums of a segments frame per group (the same sums ``engine.totals``
    computes in SQL): one row per group, or one row in all without keys."""
    if seg.empty:
        return (
            pd.DataFrame([dict.fromkeys(SUM_COLUMNS, 0.0)])
            if not keys
            else pd.DataFrame(columns=[*keys, *SUM_COLUMNS])
        )
    dur = seg["duration_us"].astype(float) / _US
    planned = seg["planned"].astype(bool)
    state = seg["state"].astype(str)
    busy = ~planned
    parts = pd.DataFrame(
        {
            "planned_operation_s": dur,
            "planned_down_s": dur.where(planned, 0.0),
            "production_s": dur.where(busy & (state == MachineState.RUNNING.value), 0.0),
            "down_s": dur.where(busy & (state == MachineState.DOWN.value), 0.0),
            "setup_s": dur.where(busy & (state == MachineState.SETUP.value), 0.0),
            "idle_s": dur.where(busy & (state == MachineState.IDLE.value), 0.0),
            "unknown_s": dur.where(busy & (state == MachineState.UNKNOWN.value), 0.0),
            "micro_stop_s": dur.where(busy & seg["micro"].astype(bool), 0.0),
            "micro_stops": seg["micro_stops"].astype(float),
            "good": seg["good"].astype(float),
            "scrap": seg["scrap"].astype(float),
            "ideal_time_s": seg["ideal_time_s"].astype(float),
        }
    )
    if not keys:
        return parts.sum().to_frame().T
    for key in keys:
        parts[key] = seg[key].to_numpy()
    return parts.groupby(list(keys), sort=True, dropna=False, as_index=False).sum()


def ratios(totals: pd.DataFrame) -> pd.DataFrame:
    """ISO 22400 figures from sums (any grouping): adds planned busy time, produced, A, P, Q, OEE."""
    out = totals.copy()
    out["planned_busy_s"] = out["planned_operation_s"] - out["planned_down_s"]
    out["produced"] = out["good"] + out["scrap"]
    pbt, apt, produced = out["planned_busy_s"], out["production_s"], out["produced"]
    out["availability"] = (apt / pbt).where(pbt > 0)
    out["performance"] = (out["ideal_time_s"] / apt).where(apt > 0)
    out["quality"] = (out["good"] / produced).where(produced > 0)
    oee = out["availability"] * out["performance"] * out["quality"]
    # A machine that never ran in its planned time has OEE 0 even with nothing produced.
    out["oee"] = oee.where(oee.notna(), pd.Series(0.0, index=out.index).where((pbt > 0) & (apt == 0)))
    out["micro_stops"] = out["micro_stops"].astype(int)
    return out.astype(object).where(out.notna(), None)


def figures(seg: pd.DataFrame) -> OeeFigures:
    """OEE figures over all rows of a segments frame (one machine-shift or a whole complex)."""
    row = ratios(sums(seg)).iloc[0].to_dict()
    return OeeFigures(**{f: row[f] for f in OeeFigures.__dataclass_fields__})


def figures_by(seg: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row of figures per group of ``keys`` (e.g. ``['asset', 'day']``)."""
    return ratios(sums(seg, keys))


def losses(seg: pd.DataFrame) -> pd.DataFrame:
    """The loss Pareto: time lost per cause, largest first (columns cause, kind, seconds, share).

    Downtime is split by the reason an operator gave (or by state where none was given); speed loss
    is APT beyond the ideal time of what was produced; quality loss is the ideal time of scrap.
    """
    fig = figures(seg)
    rows: list[tuple[str, str, float]] = []
    if not seg.empty:
        stopped = seg[~seg["planned"].astype(bool) & (seg["state"] != MachineState.RUNNING.value)]
        for (state, reason, micro), group in stopped.groupby(["state", "reason", "micro"], sort=False):
            seconds = float(group["duration_us"].sum()) / _US
            if seconds <= 0:
                continue
            # A reason an operator gave wins; else a short stop is a micro-stoppage; else its state.
            if reason:
                rows.append((str(reason), "downtime", seconds))
            elif micro:
                rows.append(("micro_stops", "micro_stops", seconds))
            else:
                rows.append((f"state:{state}", "downtime", seconds))
    speed = fig.production_s - fig.ideal_time_s
    if speed > 0 and fig.produced > 0:
        rows.append(("speed", "speed", speed))
    scrap_time = float(seg["scrap_ideal_s"].sum()) if not seg.empty else 0.0
    if scrap_time > 0:
        rows.append(("scrap", "quality", scrap_time))
    listed = pd.DataFrame(rows, columns=["cause", "kind", "seconds"])
    frame: pd.DataFrame = listed.groupby(["cause", "kind"], as_index=False).agg(seconds=("seconds", "sum"))
    frame = frame.sort_values("seconds", ascending=False, kind="stable").reset_index(drop=True)
    total = float(frame["seconds"].sum())
    frame["share"] = frame["seconds"] / total if total > 0 else 0.0
    return frame

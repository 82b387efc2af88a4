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


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def figures(seg: pd.DataFrame) -> OeeFigures:
    """OEE figures over all rows of a segments frame (one machine-shift or a whole complex)."""
    if seg.empty:
        return _zero()
    dur = seg["duration_us"].astype(float) / _US
    planned = seg["planned"].astype(bool)
    state = seg["state"].astype(str)
    busy = ~planned

    def in_state(s: MachineState) -> float:
        return float(dur[busy & (state == s.value)].sum())

    pot = float(dur.sum())
    pdt = float(dur[planned].sum())
    pbt = pot - pdt
    apt = in_state(MachineState.RUNNING)
    good, scrap = float(seg["good"].sum()), float(seg["scrap"].sum())
    produced = good + scrap
    ideal = float(seg["ideal_time_s"].sum())
    availability = _ratio(apt, pbt)
    performance = _ratio(ideal, apt)
    quality = _ratio(good, produced)
    oee = (
        availability * performance * quality
        if availability is not None and performance is not None and quality is not None
        else (0.0 if pbt > 0 and apt == 0 else None)
    )
    return OeeFigures(
        planned_operation_s=pot,
        planned_down_s=pdt,
        planned_busy_s=pbt,
        production_s=apt,
        down_s=in_state(MachineState.DOWN),
        setup_s=in_state(MachineState.SETUP),
        idle_s=in_state(MachineState.IDLE),
        unknown_s=in_state(MachineState.UNKNOWN),
        produced=produced,
        good=good,
        scrap=scrap,
        ideal_time_s=ideal,
        micro_stops=int(seg["micro_stops"].sum()),
        micro_stop_s=float(seg.loc[seg["micro"].astype(bool) & busy, "duration_us"].sum()) / _US,
        availability=availability,
        performance=performance,
        quality=quality,
        oee=oee,
    )


def _zero() -> OeeFigures:
    return OeeFigures(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, None, None, None)


def figures_by(seg: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row of figures per group of ``keys`` (e.g. ``['asset', 'day']``)."""
    rows = []
    for key, group in seg.groupby(list(keys), sort=True, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, values, strict=True)), **figures(group).as_dict()})
    return pd.DataFrame(rows)


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

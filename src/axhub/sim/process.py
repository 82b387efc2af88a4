"""A machining process with a hidden true response, for closing the quality loop.

Settings (feed per tooth, spindle speed, clamp pressure) and the material lot decide each part's
measured dimension, its defect probability, cycle time and energy. The optimiser never sees the
formulas: it only sees parts. The response has what real cells have:

* an interaction: the feed that is best depends on the spindle speed (chip load vs heat);
* a material effect: harder lots deflect the tool more (dimension offset, more defects);
* drift: the tool wears batch after batch, the dimension walks and the best feed moves;
* noise: per-part dimension scatter and Bernoulli defects (a batch's yield is binomial).

``true_yield`` and ``optimum`` exist for benchmarks and tests only (regret against the truth).
``ProcessCell`` runs parts at whatever setpoints its OPC UA nodes / Modbus registers hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

ArrayOrFloat = Any  # a float, or a numpy array of them (the response is vectorised)

# The engineer's envelope for each setpoint (the machine refuses nothing inside it).
BOUNDS: dict[str, tuple[float, float]] = {
    "feed_per_tooth_mm": (0.04, 0.16),
    "spindle_speed_rpm": (6000.0, 12000.0),
    "clamp_pressure_bar": (2.5, 6.0),
}
UNITS = {"feed_per_tooth_mm": "mm", "spindle_speed_rpm": "rpm", "clamp_pressure_bar": "bar"}
# Today's plant recipe: it runs, with too much scrap.
BASELINE: dict[str, float] = {
    "feed_per_tooth_mm": 0.10,
    "spindle_speed_rpm": 7000.0,
    "clamp_pressure_bar": 3.6,
}
# Largest change per batch an engineer accepts (a cell is never jumped across its envelope).
MAX_STEP: dict[str, float] = {
    "feed_per_tooth_mm": 0.02,
    "spindle_speed_rpm": 800.0,
    "clamp_pressure_bar": 0.6,
}
# Forbidden boxes: the spindle's chatter band, and high feed on a weak clamp (the part slips).
FORBIDDEN: list[dict[str, tuple[float, float]]] = [
    {"spindle_speed_rpm": (9200.0, 9700.0)},
    {"feed_per_tooth_mm": (0.13, 0.16), "clamp_pressure_bar": (2.5, 3.0)},
]
# Material lots and their hardness relative to nominal.
LOTS: dict[str, float] = {"LOT-A": 1.0, "LOT-B": 1.08, "LOT-C": 0.95}
TOLERANCE_MM = 0.030  # |dimension deviation| above this is scrap
NOMINAL_MM = 25.000


@dataclass(frozen=True)
class Part:
    """One finished part as the measuring station reports it."""

    batch: int
    index: int
    lot: str
    settings: dict[str, float]
    dimension_mm: float
    defect: str  # "" when good, else "dimension" | "burr" | "chatter"
    cycle_time_s: float
    energy_kwh: float
    started_at: datetime
    finished_at: datetime

    @property
    def passed(self) -> bool:
        return self.defect == ""


def _norm(settings: Mapping[str, ArrayOrFloat]) -> tuple[ArrayOrFloat, ArrayOrFloat, ArrayOrFloat]:
    """Settings on [0, 1] (the response is written in these coordinates)."""
    f = (settings["feed_per_tooth_mm"] - 0.04) / 0.12
    s = (settings["spindle_speed_rpm"] - 6000.0) / 6000.0
    c = (settings["clamp_pressure_bar"] - 2.5) / 3.5
    return f, s, c


def _mechanics(
    settings: Mapping[str, ArrayOrFloat], hardness: float, wear: float
) -> tuple[ArrayOrFloat, ArrayOrFloat, ArrayOrFloat]:
    """(mean dimension offset mm, dimension scatter mm, probability of a burr/chatter defect).

    Works on scalars and on arrays of settings alike (the optimum is found on a dense grid).
    """
    f, s, c = _norm(settings)
    # Interaction: the best feed rises with spindle speed (chip load at constant heat).
    f_best = 0.28 + 0.5 * s - 0.25 * wear
    soft = (hardness - 1.0) / 0.08
    offset = 0.016 * soft + 0.010 * wear + 0.035 * (f - f_best) * (1 + 0.5 * s)
    scatter = 0.006 + 0.030 * (f - f_best) ** 2 + 0.020 * (c - 0.7) ** 2 + 0.006 * (1 - c) * f
    logit = -4.2 + 25.0 * (f - f_best) ** 2 + 20.0 * (s - 0.42) ** 2 + 12.0 * (c - 0.7) ** 2
    logit = logit + 2.0 * soft * np.maximum(0.0, f - 0.5)
    return offset, scatter, 1.0 / (1.0 + np.exp(-logit))


def _pass_probability(offset: ArrayOrFloat, scatter: ArrayOrFloat, p_defect: ArrayOrFloat) -> ArrayOrFloat:
    from scipy.special import ndtr

    within = ndtr((TOLERANCE_MM - offset) / scatter) - ndtr((-TOLERANCE_MM - offset) / scatter)
    return within * (1.0 - p_defect)


def lot_for(batch: int) -> str:
    """Material lots change every three batches, in turn."""
    return list(LOTS)[(batch // 3) % len(LOTS)]


def wear_at(batch: int) -> float:
    """Tool wear after ``batch`` batches (0..1; a tool change at 60 batches)."""
    return (batch % 60) / 60.0


def true_yield(settings: Mapping[str, float], lot: str = "LOT-A", batch: int = 0) -> float:
    """The hidden truth: probability that a part made with these settings passes."""
    offset, scatter, p = _mechanics(settings, LOTS[lot], wear_at(batch))
    return float(_pass_probability(offset, scatter, p))


def cycle_time_s(settings: Mapping[str, float]) -> float:
    """Machining time: material removal rate ∝ feed per tooth x spindle speed."""
    mrr = settings["feed_per_tooth_mm"] * settings["spindle_speed_rpm"]
    return 20.0 + 48_000.0 / mrr


def energy_kwh(settings: Mapping[str, float]) -> float:
    """Spindle energy per part: power rises with speed, time falls with removal rate."""
    power_kw = 2.0 + 0.0006 * settings["spindle_speed_rpm"] + 3.0 * settings["clamp_pressure_bar"] / 6
    return power_kw * cycle_time_s(settings) / 3600.0


def in_forbidden(settings: Mapping[str, float]) -> bool:
    return any(all(lo <= settings[name] <= hi for name, (lo, hi) in box.items()) for box in FORBIDDEN)


def forbidden_mask(grid: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which points of a grid of settings fall in a forbidden box."""
    first = next(iter(grid.values()))
    mask = np.zeros(first.shape, dtype=bool)
    for box in FORBIDDEN:
        inside = np.ones(first.shape, dtype=bool)
        for name, (lo, hi) in box.items():
            inside &= (grid[name] >= lo) & (grid[name] <= hi)
        mask |= inside
    return mask


def optimum(lot: str = "LOT-A", batch: int = 0, grid: int = 61) -> tuple[dict[str, float], float]:
    """The best allowed settings and their yield (dense grid + local polish; benchmarks only)."""
    from scipy.optimize import minimize

    names = list(BOUNDS)
    mesh = np.meshgrid(*[np.linspace(*BOUNDS[n], grid) for n in names], indexing="ij")
    points = {n: m.ravel() for n, m in zip(names, mesh, strict=True)}
    offset, scatter, p = _mechanics(points, LOTS[lot], wear_at(batch))
    y = np.where(forbidden_mask(points), -1.0, _pass_probability(offset, scatter, p))
    k = int(np.argmax(y))
    best = ({n: float(points[n][k]) for n in names}, float(y[k]))

    def negative(x: np.ndarray) -> float:
        cand = dict(zip(names, map(float, x), strict=True))
        return 1.0 if in_forbidden(cand) else -true_yield(cand, lot, batch)

    res = minimize(
        negative, [best[0][n] for n in names], method="Nelder-Mead", bounds=[BOUNDS[n] for n in names]
    )
    if -res.fun > best[1]:
        best = (dict(zip(names, map(float, res.x), strict=True)), -float(res.fun))
    return best


@dataclass
class ProcessSim:
    """Runs batches of parts; keeps its own clock, tool wear and random stream."""

    seed: int = 0
    parts_per_batch: int = 40
    start: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    batch: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._clock = self.start

    def next_lot(self) -> str:
        """The lot the next batch will be cut from (known before the batch, from the lot card)."""
        return lot_for(self.batch)

    def run_batch(self, settings: Mapping[str, float], n_parts: int | None = None) -> list[Part]:
        """Machine one batch with ``settings``; returns its measured parts."""
        lot = self.next_lot()
        offset, scatter, p_defect = _mechanics(settings, LOTS[lot], wear_at(self.batch))
        cycle = cycle_time_s(settings)
        energy = energy_kwh(settings)
        parts = []
        for i in range(n_parts or self.parts_per_batch):
            dim = float(self._rng.normal(NOMINAL_MM + offset, scatter))
            defect = ""
            if abs(dim - NOMINAL_MM) > TOLERANCE_MM:
                defect = "dimension"
            elif self._rng.random() < p_defect:
                defect = "chatter" if _norm(settings)[1] > 0.62 else "burr"
            began = self._clock
            self._clock = began + timedelta(seconds=cycle)
            parts.append(
                Part(
                    self.batch, i, lot, {k: float(v) for k, v in settings.items()}, round(dim, 4),
                    defect, round(cycle, 2), round(energy, 4), began, self._clock,
                )
            )  # fmt: skip
        self.batch += 1
        return parts

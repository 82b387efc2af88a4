"""Synthetic run-to-failure fleets for tests and examples (no dataset needed).

Each unit runs in one of ``n_regimes`` operating conditions per cycle (which shift every sensor
by a regime offset far larger than wear), starts with its own initial wear and degrades
exponentially until failure; two sensors carry the degradation, one is pure noise, one constant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SYNTH_SENSORS = ["temp", "pressure", "vibration", "noise", "const"]
SYNTH_SETTINGS = ["altitude", "throttle"]


def synthetic_fleet(
    n_units: int = 20, seed: int = 0, n_regimes: int = 2, min_life: int = 80, max_life: int = 160
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    regime_settings = np.array([[0.0, 100.0], [20.0, 80.0], [35.0, 60.0]])[:n_regimes]
    regime_offsets = np.array([[0.0, 0.0, 0.0, 0.0], [15.0, -8.0, 5.0, 3.0], [30.0, -16.0, 10.0, 6.0]])[
        :n_regimes
    ]
    frames = []
    for unit in range(1, n_units + 1):
        life = int(rng.integers(min_life, max_life + 1))
        cycles = np.arange(1, life + 1)
        wear0 = rng.uniform(0.0, 0.1)
        health = wear0 + np.exp((cycles - life) / 25.0)  # ~1 at failure, ~0 early
        regime = rng.integers(0, n_regimes, size=life)
        settings = regime_settings[regime] + rng.normal(0, 0.05, size=(life, 2))
        base = np.column_stack([
            500 + 8.0 * health,
            40 - 3.0 * health,
            1.0 + 0.6 * health,
            np.zeros(life),
        ])  # fmt: skip
        noise = rng.normal(0, [0.5, 0.2, 0.05, 1.0], size=(life, 4))
        sensors = base + regime_offsets[regime] + noise
        frame = pd.DataFrame(sensors, columns=SYNTH_SENSORS[:4])
        frame["const"] = 7.0
        frame.insert(0, "cycle", cycles)
        frame.insert(0, "unit", unit)
        for j, name in enumerate(SYNTH_SETTINGS):
            frame[name] = settings[:, j]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def truncate_fleet(fleet: pd.DataFrame, seed: int = 0, min_keep: int = 40) -> tuple[pd.DataFrame, np.ndarray]:
    """Cut each unit at a random cycle (like C-MAPSS test sets); returns the cut fleet and the
    true RUL at each unit's last kept cycle (unit order)."""
    rng = np.random.default_rng(seed)
    parts, truth = [], []
    for _, unit in fleet.groupby("unit", sort=True):
        life = len(unit)
        keep = int(rng.integers(min(min_keep, life - 1), life))
        parts.append(unit.iloc[:keep])
        truth.append(life - keep)
    return pd.concat(parts, ignore_index=True), np.asarray(truth, dtype=np.float64)

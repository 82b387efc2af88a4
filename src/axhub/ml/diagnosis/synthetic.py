"""Synthetic bearing vibration with known physics, for tests and examples.

A shaft tone and noise, plus for a fault a 3 kHz resonance struck once per defect passage, at
the defect order of a 6205 bearing (outer race 3.5848, inner race 5.4152, ball 2.357 x shaft).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FAULT_ORDERS: dict[str, float | None] = {"Normal": None, "OR": 3.5848, "IR": 5.4152, "B": 2.357}


def bearing_signal(
    rpm: float, fault_order: float | None, seconds: float, fs: float = 12_000.0, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    shaft = rpm / 60.0
    x = 0.3 * np.sin(2 * np.pi * shaft * t) + 0.2 * rng.normal(size=t.size)
    if fault_order is not None:
        since = np.mod(t, 1.0 / (fault_order * shaft))
        x += 1.5 * np.exp(-since * 800.0) * np.sin(2 * np.pi * 3000.0 * since)
    return x


def synthetic_vibration_frame(
    rpm: float, seconds: float, seed: int = 0, fs: float = 12_000.0
) -> pd.DataFrame:
    """One recording per class: columns ``vibration``, ``rpm``, ``fault``, ``recording``."""
    frames = []
    for k, (label, order) in enumerate(FAULT_ORDERS.items()):
        signal = bearing_signal(rpm, order, seconds, fs, seed + k)
        frames.append(
            pd.DataFrame(
                {"vibration": signal, "rpm": rpm, "fault": label, "recording": f"{label}-{int(rpm)}"}
            )
        )
    return pd.concat(frames, ignore_index=True)

"""Piecewise-linear RUL target: flat at ``cap`` while the machine is healthy, then linear.

Early in life there is no degradation signal to learn from, so a capped target (125 cycles is
the common choice for C-MAPSS) is what a model can actually predict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def run_to_failure_rul(units: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """True RUL of each row of run-to-failure data: last cycle of its unit minus this cycle."""
    frame = pd.DataFrame({"unit": units, "cycle": cycles})
    last = frame.groupby("unit")["cycle"].transform("max").to_numpy()
    return (last - frame["cycle"].to_numpy()).astype(np.float64)


def piecewise_rul(true_rul: np.ndarray, cap: float) -> np.ndarray:
    """``min(true_rul, cap)``; ``cap`` must be positive."""
    if cap <= 0:
        raise ValueError(f"RUL cap must be positive, got {cap}")
    return np.minimum(np.asarray(true_rul, dtype=np.float64), cap)


def phm08_score(predicted: np.ndarray, true: np.ndarray) -> float:
    """PHM08 asymmetric score: late predictions (d > 0) cost more than early ones."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d**2)))

"""The trivial baseline beside every model's figure, and whether the model beats it.

A model that does not beat the answer a constant would give is not working, however good its
figure looks alone. Each family's ``evaluate`` adds ``baseline_<metric>`` (the best constant
answer on the same data: the majority class, the mean remaining life, always alarming) and
``beats_baseline`` (1.0 or 0.0); the registry reads that flag and refuses to deploy a version
that does not beat its baseline unless the caller overrides it explicitly.
"""

from __future__ import annotations

import numpy as np

BEATS_BASELINE = "beats_baseline"


def with_baseline(
    metrics: dict[str, float], metric: str, baseline: float, *, higher_is_better: bool
) -> dict[str, float]:
    """``metrics`` plus ``baseline_<metric>`` and ``beats_baseline`` (strictly better)."""
    value = float(metrics[metric])
    better = value > baseline if higher_is_better else value < baseline
    return {**metrics, f"baseline_{metric}": float(baseline), BEATS_BASELINE: 1.0 if better else 0.0}


def majority_accuracy(truth: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class."""
    _, counts = np.unique(np.asarray(truth), return_counts=True)
    return float(counts.max() / counts.sum()) if counts.size else 0.0


def always_alarm_f1(truth: np.ndarray) -> float:
    """F1 of the better constant detector: always alarming (always-normal has F1 0)."""
    positives = float(np.mean(np.asarray(truth) > 0)) if len(truth) else 0.0
    return 2 * positives / (1 + positives) if positives > 0 else 0.0


def constant_rmse(truth: np.ndarray) -> float:
    """RMSE of the best constant answer (the mean)."""
    values = np.asarray(truth, dtype=np.float64)
    return float(np.sqrt(np.mean((values - values.mean()) ** 2))) if values.size else 0.0

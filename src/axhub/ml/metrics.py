"""Metrics shared by the model families (plain numpy, no scikit-learn needed)."""

from __future__ import annotations

import numpy as np


def binary_detection_metrics(labels: np.ndarray, alarms: np.ndarray) -> dict[str, float]:
    """F1, FAR and MAR as the SKAB leaderboard reports them (FAR/MAR in percent).

    FAR = false alarms / normal rows; MAR = missed anomalies / anomalous rows.
    """
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(alarms).astype(bool).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.shape}) and alarms ({p.shape}) differ in length")
    tp = float(np.sum(y & p))
    fp = float(np.sum(~y & p))
    fn = float(np.sum(y & ~p))
    tn = float(np.sum(~y & ~p))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "far": 100.0 * fp / (fp + tn) if fp + tn else 0.0,
        "mar": 100.0 * fn / (fn + tp) if fn + tp else 0.0,
        "n": float(y.size),
    }


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    diff = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))

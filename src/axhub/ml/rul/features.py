"""Window features as one linear map: ``flattened window @ W``.

Every feature of the gradient-boosting RUL model is linear in the (standardised) window:
trailing means and least-squares slopes over several sub-window lengths, truncated exponential
smoothing and its drift from the window's first rows, and the last value of the age column.
Writing them as one matrix makes the Python model and its ONNX graph (a single MatMul before
the trees) compute exactly the same thing.
Windows are flattened row-major, so element ``(lag l, signal f)`` sits at ``l * F + f``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def window_feature_matrix(
    n_signals: int,
    window: int,
    sub_windows: Sequence[int],
    alphas: Sequence[float],
    sensor_idx: Sequence[int],
    age_idx: int | None,
    baseline_rows: int = 0,
    health_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """``W`` of shape ``(window * n_signals, n_features)`` and, per feature, (kind, signal index).

    ``health_weights`` (one weight per signal) adds every per-signal kernel once more, applied to
    the health index ``sum_f weights[f] * signal_f`` (signal index -1): averaging many noisy
    sensors with weights that track degradation gives a far less noisy trend than any one sensor.
    """
    columns: list[np.ndarray] = []
    meta: list[tuple[str, int]] = []
    lengths = sorted({min(int(w), window) for w in sub_windows} | {window})

    def put(weights_over_lags: np.ndarray, signal: int, kind: str) -> None:
        col = np.zeros(window * n_signals)
        col[np.arange(window) * n_signals + signal] = weights_over_lags
        columns.append(col)
        meta.append((kind, signal))

    def put_health(weights_over_lags: np.ndarray, kind: str) -> None:
        if health_weights is not None:
            columns.append(np.outer(weights_over_lags, health_weights).ravel())  # row-major (lag, f)
            meta.append((f"health_{kind}", -1))

    for w in lengths:
        mean_w = np.zeros(window)
        mean_w[window - w :] = 1.0 / w
        slope_w = np.zeros(window)
        if w >= 2:
            t = np.arange(w, dtype=np.float64)
            centred = t - t.mean()
            slope_w[window - w :] = centred / np.sum(centred**2)
        for f in sensor_idx:
            put(mean_w, f, f"mean{w}")
            put(slope_w, f, f"slope{w}")
        put_health(mean_w, f"mean{w}")
        put_health(slope_w, f"slope{w}")
    for a in alphas:
        ew = (1.0 - a) ** np.arange(window - 1, -1, -1, dtype=np.float64)
        ew /= ew.sum()
        for f in sensor_idx:
            put(ew, f, f"ewm{a}")
        put_health(ew, f"ewm{a}")
        if baseline_rows > 0:
            # drift of the smoothed value from the start of the window: with windows longer than
            # a unit's healthy life this is the change from the unit's own initial state, which
            # removes the unit-to-unit spread of initial wear and manufacturing variation
            drift = ew.copy()
            drift[: min(baseline_rows, window)] -= 1.0 / min(baseline_rows, window)
            for f in sensor_idx:
                put(drift, f, f"drift{a}")
            put_health(drift, f"drift{a}")
    if age_idx is not None:
        last = np.zeros(window)
        last[-1] = 1.0
        put(last, age_idx, "age")
    if not columns:
        raise ValueError("no features: every signal is constant")
    return np.column_stack(columns), meta


def padded_windows(x: np.ndarray, length: int) -> np.ndarray:
    """(T, length, F) windows ending at every row; the first rows are padded with row 0."""
    padded = np.vstack([np.repeat(x[:1], length - 1, axis=0), x])
    idx = np.arange(x.shape[0])[:, None] + np.arange(length)[None, :]
    return np.asarray(padded[idx])


def health_weights(
    z: np.ndarray, capped_rul: np.ndarray, sensor_idx: Sequence[int], cap: float
) -> np.ndarray:
    """Least-squares weights (one per signal, 0 for non-sensors) of the capped RUL on the
    standardised sensors, fitted on the degrading rows (capped RUL below the cap) only: on the
    flat part the target carries no trend to follow."""
    degrading = capped_rul < cap
    weights = np.zeros(z.shape[1])
    if degrading.sum() <= len(sensor_idx) + 1:
        return weights
    design = np.column_stack([z[degrading][:, list(sensor_idx)], np.ones(int(degrading.sum()))])
    coef = np.linalg.lstsq(design, capped_rul[degrading], rcond=None)[0][:-1]
    weights[list(sensor_idx)] = coef
    return weights

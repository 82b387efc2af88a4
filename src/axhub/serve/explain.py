"""Why an alert fired, in the machine's own units, and how severe it is.

The normal ranges and the per-row explanation ("4.40 mm/s, normal 1.80 ± 0.10") live in
``registry.normal_ranges`` so the edge agent computes the same on the device; they are
re-exported here for the hub's callers. What stays here needs the hub: fitting the operating
states at training (scikit-learn), severity and the noise rule of alert episodes.

* **Severity** grows with how far past the threshold the score went.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from axhub.core.domain import Severity
from axhub.registry.normal_ranges import MIN_Z, TOP_K, NormalState, NormalStats, describe, explain_row

__all__ = [
    "MIN_Z",
    "TOP_K",
    "NormalState",
    "NormalStats",
    "describe",
    "explain_row",
    "fit_normal_states",
    "is_noise",
    "severity_for",
]

# score / threshold at which an alert becomes a warning and critical (below: info).
WARNING_RATIO = 1.5
CRITICAL_RATIO = 3.0
# A lone row only just past the threshold (fewer rows, under WARNING_RATIO) is noise: a model
# calibrated to a 1 % false-alarm rate produces such rows many times a day.
MIN_EPISODE_ROWS = 2


def is_noise(rows: int, score: float, threshold: float) -> bool:
    return rows < MIN_EPISODE_ROWS and score < WARNING_RATIO * threshold


def fit_normal_states(
    frame: Any, columns: list[str], max_states: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """Operating states of normal training data (k-means on standardised rows, k by silhouette;
    one state unless the data clearly fall into groups), with each state's mean and std."""
    x = np.asarray(frame[columns], dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) == 0:
        return []
    whole = [{"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "share": 1.0}]
    if len(x) < 60 or max_states < 2:
        return whole
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    scale = np.where(x.std(0) > 0, x.std(0), 1.0)
    z = (x - x.mean(0)) / scale
    sample = z[np.random.default_rng(seed).choice(len(z), size=min(len(z), 3000), replace=False)]
    best: tuple[float, Any] | None = None
    for k in range(2, max_states + 1):
        model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(sample)
        if len(set(model.labels_)) < 2:
            continue
        quality = float(silhouette_score(sample, model.labels_))
        if best is None or quality > best[0]:
            best = (quality, model)
    # Clearly separated groups only (e.g. idle vs cutting); noise around one mean stays one state.
    if best is None or best[0] < 0.6:
        return whole
    labels = best[1].predict(z)
    states = []
    for k in range(best[1].n_clusters):
        part = x[labels == k]
        if len(part) < 10:
            continue
        states.append(
            {"mean": part.mean(0).tolist(), "std": part.std(0).tolist(), "share": len(part) / len(x)}
        )
    return states or whole


def severity_for(score: float, threshold: float) -> Severity:
    ratio = score / threshold if threshold > 0 else float("inf")
    if ratio >= CRITICAL_RATIO:
        return Severity.CRITICAL
    if ratio >= WARNING_RATIO:
        return Severity.WARNING
    return Severity.INFO

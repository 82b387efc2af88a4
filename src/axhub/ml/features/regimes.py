"""Per-operating-regime normalisation for fleets that run in several conditions.

Operating settings (altitude, speed, load...) are clustered with k-means; every signal is then
standardised with the mean/std of its regime, which removes the regime's offset so one model
serves all conditions. The fitted normaliser exports itself as the bundle step
``regime_standardize`` and transforms with the very function the bundle runner uses.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd

from axhub.ml.base import standardisation_stats
from axhub.registry.bundle import apply_row_steps


class RegimeNormalizer:
    """Nearest-centroid regimes on ``regime_columns``; per-regime standardisation of ``columns``."""

    def __init__(self, regime_columns: list[str], n_regimes: int = 6, seed: int = 0) -> None:
        self.regime_columns = regime_columns
        self.n_regimes = n_regimes
        self.seed = seed

    def fit(self, frame: pd.DataFrame, columns: list[str]) -> Self:
        from sklearn.cluster import KMeans

        settings = frame[self.regime_columns].to_numpy(dtype=np.float64)
        self.settings_mean_, self.settings_scale_, _ = standardisation_stats(settings)
        k = min(int(self.n_regimes), len(np.unique(settings, axis=0)))
        kmeans = KMeans(n_clusters=k, n_init=10, random_state=self.seed)
        labels = kmeans.fit_predict((settings - self.settings_mean_) / self.settings_scale_)
        # distances in standardised settings units: altitude and Mach number weigh alike
        self.centroids_ = kmeans.cluster_centers_
        x = frame[columns].to_numpy(dtype=np.float64)
        overall_mean, overall_scale, _ = standardisation_stats(x)
        means, scales = [], []
        for regime in range(k):
            rows = x[labels == regime]
            if len(rows) < 2:  # a regime seen once: fall back to fleet statistics
                means.append(overall_mean)
                scales.append(overall_scale)
                continue
            mean, scale, _ = standardisation_stats(rows)
            means.append(mean)
            scales.append(scale)
        self.columns_ = list(columns)
        self.means_ = np.array(means)
        self.scales_ = np.array(scales)
        return self

    def step(self) -> dict[str, Any]:
        """The ``regime_standardize`` bundle step (see :mod:`axhub.registry.bundle`)."""
        return {
            "op": "regime_standardize",
            "regime_columns": list(self.regime_columns),
            "centroids": self.centroids_.tolist(),
            "settings_mean": self.settings_mean_.tolist(),
            "settings_scale": self.settings_scale_.tolist(),
            "mean": self.means_.tolist(),
            "scale": self.scales_.tolist(),
        }

    def regimes(self, frame: pd.DataFrame) -> np.ndarray:
        settings = frame[self.regime_columns].to_numpy(dtype=np.float64)
        settings = (settings - self.settings_mean_) / self.settings_scale_
        distance = ((settings[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(distance, axis=1)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = frame[self.columns_].to_numpy(dtype=np.float64)
        extra = {c: frame[c].to_numpy(dtype=np.float64) for c in self.regime_columns}
        z = apply_row_steps(x, [self.step()], extra)
        return pd.DataFrame(z, columns=self.columns_, index=frame.index)

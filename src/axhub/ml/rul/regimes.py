"""Operating-regime detection and per-regime sensor normalisation for fleets.

Sensor readings depend on the operating condition (altitude, Mach, throttle) far more than on
wear. Clustering the operating settings and standardising each sensor within its regime removes
that offset, so that one model sees the degradation alone. The number of regimes is learned:
the settings are clustered for k = 2..max and k is kept only if the clusters are clearly
separated (silhouette); otherwise the fleet runs in one regime (e.g. C-MAPSS FD001/FD003, whose
settings are noise around one point).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score


class RegimeNormalizer:
    """Cluster operating settings, drop constant sensors, standardise sensors per regime."""

    def __init__(
        self,
        max_regimes: int = 8,
        min_silhouette: float = 0.8,
        min_distinct: int = 3,
        seed: int = 0,
    ) -> None:
        self.max_regimes = max_regimes
        self.min_silhouette = min_silhouette
        self.min_distinct = min_distinct
        self.seed = seed

    # -- fitting -------------------------------------------------------------------------
    def fit(self, settings: np.ndarray, sensors: np.ndarray, sensor_names: list[str]) -> RegimeNormalizer:
        settings = np.asarray(settings, dtype=np.float64)
        sensors = np.asarray(sensors, dtype=np.float64)
        self.setting_scale_ = np.where(settings.std(axis=0) > 0, settings.std(axis=0), 1.0)
        self.setting_mean_ = settings.mean(axis=0)
        z = (settings - self.setting_mean_) / self.setting_scale_
        self.centers_ = self._choose_regimes(z)
        regime = self.assign(settings)
        n_regimes = len(self.centers_)
        # A sensor carries information only if it varies within a regime in the training data;
        # judged in the most populated regime so rare regimes cannot keep noise alive.
        main = int(np.bincount(regime, minlength=n_regimes).argmax())
        keep = []
        for j in range(sensors.shape[1]):
            values = sensors[regime == main, j]
            if len(np.unique(values)) >= self.min_distinct and values.std() > 0:
                keep.append(j)
        self.keep_ = np.asarray(keep, dtype=np.int64)
        self.sensor_names_ = [sensor_names[j] for j in keep]
        self.mean_ = np.zeros((n_regimes, len(keep)))
        self.std_ = np.ones((n_regimes, len(keep)))
        for r in range(n_regimes):
            block = sensors[regime == r][:, self.keep_]
            if len(block):
                self.mean_[r] = block.mean(axis=0)
                std = block.std(axis=0)
                self.std_[r] = np.where(std > 1e-12, std, 1.0)
        return self

    def _choose_regimes(self, z: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        sample = z[rng.choice(len(z), size=min(len(z), 3000), replace=False)]
        best_k, best_centers, best_score = 1, sample.mean(axis=0, keepdims=True), -1.0
        if len(np.unique(sample.round(6), axis=0)) >= 2:
            for k in range(2, min(self.max_regimes, len(sample) - 1) + 1):
                km = KMeans(n_clusters=k, n_init=4, random_state=self.seed).fit(sample)
                if len(np.unique(km.labels_)) < 2:
                    continue
                score = float(
                    silhouette_score(
                        sample, km.labels_, sample_size=min(2000, len(sample)), random_state=self.seed
                    )
                )
                if score > best_score:
                    best_k, best_centers, best_score = k, km.cluster_centers_, score
        if best_score < self.min_silhouette:
            return np.asarray(sample.mean(axis=0, keepdims=True))
        del best_k
        return np.asarray(best_centers)

    # -- applying ------------------------------------------------------------------------
    @property
    def n_regimes(self) -> int:
        return len(self.centers_)

    def assign(self, settings: np.ndarray) -> np.ndarray:
        z = (np.asarray(settings, dtype=np.float64) - self.setting_mean_) / self.setting_scale_
        d = ((z[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(d.argmin(axis=1), dtype=np.int64)

    def transform(self, settings: np.ndarray, sensors: np.ndarray) -> np.ndarray:
        regime = self.assign(settings)
        kept = np.asarray(sensors, dtype=np.float64)[:, self.keep_]
        return (kept - self.mean_[regime]) / self.std_[regime]

    # -- persistence (JSON, no pickle) -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "params": {
                "max_regimes": self.max_regimes,
                "min_silhouette": self.min_silhouette,
                "min_distinct": self.min_distinct,
                "seed": self.seed,
            },
            "setting_mean": self.setting_mean_.tolist(),
            "setting_scale": self.setting_scale_.tolist(),
            "centers": self.centers_.tolist(),
            "keep": self.keep_.tolist(),
            "sensor_names": self.sensor_names_,
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RegimeNormalizer:
        self = cls(**state["params"])
        self.setting_mean_ = np.asarray(state["setting_mean"], dtype=np.float64)
        self.setting_scale_ = np.asarray(state["setting_scale"], dtype=np.float64)
        self.centers_ = np.asarray(state["centers"], dtype=np.float64)
        self.keep_ = np.asarray(state["keep"], dtype=np.int64)
        self.sensor_names_ = list(state["sensor_names"])
        self.mean_ = np.asarray(state["mean"], dtype=np.float64).reshape(len(self.centers_), len(self.keep_))
        self.std_ = np.asarray(state["std"], dtype=np.float64).reshape(len(self.centers_), len(self.keep_))
        return self

"""Envelope-family model for ``axhub bench cwru``: is the bearing faulty, and which defect repeats?

Two stages, each fitted on the training side only:

1. **Detection** (no fault labels): a window is faulty when its RMS level exceeds the healthy
   training windows' 99th percentile by one healthy spread (99th minus 1st percentile, in log
   units). Healthy data are the only input, so no fault size is learnt here.
2. **Type** (IR / B / OR): a logistic regression on :func:`defect_family_features` (log SNR of
   the BPFO, BPFI and ball line families in the envelope spectrum, on the order axis, and their
   log ratios), trained on the faulty training windows. The demodulation band and the
   regularisation come from a grid scored by leave-one-fault-size-out inside the training
   sizes (train on all training sizes but one, score on that one), which is the question the
   held-out size will ask; test windows are never looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from axhub.ml.features.bearing import defect_family_features

if TYPE_CHECKING:
    import pandas as pd

# Candidate demodulation bands: 1.5 kHz wide every 0.5 kHz below the 6 kHz Nyquist limit of the
# 12 kHz recordings, plus two wide ones; resonances that defects excite lie somewhere in there.
BANDS_HZ: tuple[tuple[float, float], ...] = (
    *((float(lo), float(lo) + 1500.0) for lo in range(500, 4501, 500)),
    (1000.0, 5500.0),
    (2000.0, 5500.0),
)
C_GRID = (0.1, 1.0, 10.0)
DEFAULT_BAND = (2000.0, 5500.0)  # used when fewer than two fault sizes leave nothing to compare


@dataclass
class _Group:
    windows: np.ndarray
    shaft_hz: float
    fault: str
    size: int


def _logistic(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))


def log_rms(windows: np.ndarray) -> np.ndarray:
    centred = windows - windows.mean(axis=1, keepdims=True)
    return np.asarray(np.log(np.sqrt(np.mean(centred**2, axis=1)) + 1e-12))


class EnvelopeFamilies:
    """Healthy-level detector + logistic regression on envelope line families (see module doc)."""

    def __init__(
        self,
        fs: float = 12_000.0,
        window: int = 4096,
        stride: int = 2048,
        bands: tuple[tuple[float, float], ...] = BANDS_HZ,
        c_grid: tuple[float, ...] = C_GRID,
        normal_class: str = "Normal",
    ) -> None:
        self.fs, self.window, self.stride = fs, window, stride
        self.bands, self.c_grid, self.normal_class = bands, c_grid, normal_class
        self._cache: dict[tuple[int, tuple[float, float]], np.ndarray] = {}

    # ------------------------------------------------------------------ data
    def _groups(self, frame: pd.DataFrame) -> list[_Group]:
        from axhub.ml.features.vibration import windows_of

        groups = []
        for _, rec in frame.groupby("recording", sort=False):
            groups.append(
                _Group(
                    windows_of(rec["DE"].to_numpy(), self.window, self.stride),
                    float(rec["rpm"].to_numpy(dtype=np.float64)[0]) / 60.0,
                    str(rec["fault"].iat[0]),
                    int(rec["size"].to_numpy()[0]) if "size" in rec else 0,
                )
            )
        return groups

    def _features(self, group: _Group, band: tuple[float, float]) -> np.ndarray:
        key = (id(group), band)
        if key not in self._cache:
            self._cache[key] = defect_family_features(group.windows, self.fs, group.shaft_hz, band)
        return self._cache[key]

    def _xy(self, groups: list[_Group], band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        x = np.vstack([self._features(g, band) for g in groups])
        y = np.concatenate([[g.fault] * len(g.windows) for g in groups])
        return x, y

    # ------------------------------------------------------------------ fit
    def fit(self, frame: pd.DataFrame) -> EnvelopeFamilies:
        groups = self._groups(frame)
        healthy = [g for g in groups if g.fault == self.normal_class]
        faulty = [g for g in groups if g.fault != self.normal_class]
        if not healthy or not faulty:
            raise ValueError("training needs healthy and faulty recordings")
        level = log_rms(np.vstack([g.windows for g in healthy]))
        q01, q99 = np.quantile(level, [0.01, 0.99])
        self.level_limit_ = float(q99 + (q99 - q01))
        sizes = sorted({g.size for g in faulty})
        self.cv_scores_: dict[str, float] = {}
        if len(sizes) >= 2:
            for band in self.bands:
                for c in self.c_grid:
                    self.cv_scores_[f"{band[0]:.0f}-{band[1]:.0f} Hz, C={c:g}"] = self._size_cv(
                        faulty, sizes, band, c
                    )
            best = max(self.cv_scores_, key=lambda k: self.cv_scores_[k])  # first of ties
            band_text, c_text = best.split(", C=")
            lo, hi = band_text.removesuffix(" Hz").split("-")
            self.band_, self.c_ = (float(lo), float(hi)), float(c_text)
        else:
            self.band_, self.c_ = DEFAULT_BAND, 1.0
        self.model_ = _logistic(self.c_).fit(*self._xy(faulty, self.band_))
        self._cache.clear()
        return self

    def _size_cv(self, faulty: list[_Group], sizes: list[int], band: tuple[float, float], c: float) -> float:
        scores = []
        for held in sizes:
            train = [g for g in faulty if g.size != held]
            test = [g for g in faulty if g.size == held]
            if len({g.fault for g in train}) < 2:
                continue
            x_test, y_test = self._xy(test, band)
            scores.append(float(np.mean(_logistic(c).fit(*self._xy(train, band)).predict(x_test) == y_test)))
        return float(np.mean(scores)) if scores else float("nan")

    # ------------------------------------------------------------------ predict
    def predict_truth(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        groups = self._groups(frame)
        windows = np.vstack([g.windows for g in groups])
        x, truth = self._xy(groups, self.band_)
        self._cache.clear()
        kind = np.asarray(self.model_.predict(x)).astype(str)
        return np.where(log_rms(windows) > self.level_limit_, kind, self.normal_class), truth

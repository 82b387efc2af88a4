"""PCA / MSPC learned exactly from aggregated sufficient statistics.

Each member sends only (n, Σx, Σxxᵀ) of its own rows; their sum is the pooled statistic, so
the mean, covariance, loadings and the T² / Q control limits are exactly those of training on
the pooled rows (up to floating-point rounding) without any row leaving a site. Limits are the
classical parametric ones (Hotelling T² through the F distribution, Q by Jackson-Mudholkar),
because a quantile of pooled scores would need the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SufficientStats:
    n: int
    total: np.ndarray  # Σ x, shape (d,)
    scatter: np.ndarray  # Σ x xᵀ, shape (d, d)

    @classmethod
    def of(cls, x: np.ndarray) -> SufficientStats:
        x = np.asarray(x, dtype=np.float64)
        return cls(n=len(x), total=x.sum(axis=0), scatter=x.T @ x)

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(self.n + other.n, self.total + other.total, self.scatter + other.scatter)

    def to_arrays(self) -> list[np.ndarray]:
        """What crosses the network: three aggregates, no rows."""
        return [np.array([self.n], dtype=np.float64), self.total, self.scatter]

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray]) -> SufficientStats:
        return cls(int(arrays[0][0]), np.asarray(arrays[1]), np.asarray(arrays[2]))

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased covariance (same as ``np.cov(rows, rowvar=False)``)."""
        centred = self.scatter - self.n * np.outer(self.mean, self.mean)
        return centred / max(self.n - 1, 1)


def pool(parts: list[SufficientStats]) -> SufficientStats:
    if not parts:
        raise ValueError("no member statistics to pool")
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


@dataclass(frozen=True)
class FederatedMSPC:
    """PCA monitoring model (standardised, k components) from pooled statistics."""

    mean: np.ndarray
    scale: np.ndarray
    loadings: np.ndarray  # (d, k)
    eigenvalues: np.ndarray  # all d, descending
    k: int
    n: int
    t2_limit: float
    q_limit: float

    @classmethod
    def from_stats(
        cls, stats: SufficientStats, *, n_components: int | float = 0.9, alpha: float = 0.01
    ) -> FederatedMSPC:
        from scipy import stats as st

        cov = stats.covariance
        scale = np.sqrt(np.maximum(np.diag(cov), 1e-12))
        corr = cov / np.outer(scale, scale)
        eigval, eigvec = np.linalg.eigh(corr)
        order = np.argsort(eigval)[::-1]
        eigval, eigvec = np.maximum(eigval[order], 0.0), eigvec[:, order]
        # Eigenvectors have no sign of their own: fix it so two fits compare equal.
        eigvec = eigvec * np.where(
            eigvec[np.argmax(np.abs(eigvec), axis=0), range(eigvec.shape[1])] < 0, -1.0, 1.0
        )
        d = len(eigval)
        if isinstance(n_components, float) and n_components < 1:
            ratio = np.cumsum(eigval) / max(eigval.sum(), 1e-12)
            k = int(np.searchsorted(ratio, n_components) + 1)
        else:
            k = int(n_components)
        k = max(1, min(k, d - 1))
        n = stats.n
        t2 = k * (n - 1) * (n + 1) / (n * (n - k)) * float(st.f.ppf(1 - alpha, k, n - k))
        rest = eigval[k:]
        th1, th2, th3 = (float(np.sum(rest**i)) for i in (1, 2, 3))
        if th1 <= 0:
            q = 1e-9
        else:
            h0 = 1 - 2 * th1 * th3 / (3 * th2**2)
            z = float(st.norm.ppf(1 - alpha))
            q = th1 * (z * np.sqrt(2 * th2 * h0**2) / th1 + 1 + th2 * h0 * (h0 - 1) / th1**2) ** (1 / h0)
        return cls(stats.mean, scale, eigvec[:, :k], eigval, k, n, float(t2), float(q))

    def scores(self, x: np.ndarray) -> dict[str, np.ndarray]:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        t = z @ self.loadings
        residual = z - t @ self.loadings.T
        t2 = np.sum(t**2 / np.maximum(self.eigenvalues[: self.k], 1e-12), axis=1)
        q = np.sum(residual**2, axis=1)
        return {"t2": t2, "q": q, "alarm": (t2 > self.t2_limit) | (q > self.q_limit)}

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "loadings": self.loadings.tolist(),
            "eigenvalues": self.eigenvalues.tolist(),
            "k": self.k,
            "n": self.n,
            "t2_limit": self.t2_limit,
            "q_limit": self.q_limit,
        }

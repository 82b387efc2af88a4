"""Multivariate statistical process control: PCA Hotelling T² + Q (squared prediction error).

Signals are standardised with the training statistics; a PCA keeps the components explaining
``n_components`` of the variance (or that many components when an int). Two classic statistics:
T² (distance inside the model plane, in units of each component's variance) and Q (the squared
residual off the plane). Each is divided by its 99th percentile on the training data and the
two are added: ``score = T²/T²_99 + Q/Q_99``. Contributions are the exact per-signal split of that
sum: Q contribution = squared residual of the signal; T² contribution = ``z_j * Σ_a t_a p_ja / λ_a``
(the "complete decomposition", which sums to T²). With ``window > 1`` the model is dynamic PCA
on lagged vectors and contributions are summed over lags per signal.
The whole computation, standardisation included, is one small ONNX graph of matrix ops.

``robust=True`` guards against anomalies inside the fitting window: the centre and covariance
come from the Minimum Covariance Determinant (scikit-learn ``MinCovDet``, the ``support``
fraction of the rows whose covariance is tightest), the components are that covariance's
eigenvectors, the T²/Q limits are taken over the rows that the MCD kept, and the threshold
quantile over the out-of-fold scores that are not outliers on a log scale, so a contaminated
stretch neither bends the model plane nor lifts the threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from onnx import helper

from axhub.ml.anomaly.base import AnomalyEstimator
from axhub.registry.export import build_model, const, float_input, float_output, save_model, standardize_nodes


class MSPC(AnomalyEstimator):
    """PCA T² + Q monitor with contribution plots."""

    name: ClassVar[str] = "mspc"

    def __init__(
        self,
        columns: list[str] | None = None,
        n_components: float | int = 0.9,
        window: int = 1,
        smooth: int = 1,
        quantile: float = 0.99,
        threshold_margin: float = 1.0,
        calibration_folds: int = 5,
        label: str = "anomaly",
        group: str | None = None,
        seed: int = 0,
        robust: bool = False,
        support: float = 0.75,
    ) -> None:
        self.columns = columns
        self.n_components = n_components
        self.window = window
        self.smooth = smooth
        self.quantile = quantile
        self.threshold_margin = threshold_margin
        self.calibration_folds = calibration_folds
        self.label = label
        self.group = group
        self.seed = seed
        self.robust = robust
        self.support = support

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"window": 3, "smooth": 3}

    # ------------------------------------------------------------- core
    def _fit_core(self, graph_input: np.ndarray) -> dict[str, np.ndarray]:
        mean, scale = self._tiled_stats()
        z = (graph_input - mean) / scale
        n, d = z.shape
        inlier = np.ones(n, dtype=bool)
        if self.robust:
            centre, variance, vt, inlier = self._robust_axes(z)
            zc = z - centre
        else:
            centre = z.mean(axis=0)  # ~0 on the full fit; not exactly on out-of-fold subsets
            zc = z - centre
            _, singular, vt = np.linalg.svd(zc, full_matrices=False)
            variance = singular**2 / max(n - 1, 1)
        ratio = np.cumsum(variance) / max(variance.sum(), 1e-12)
        if isinstance(self.n_components, float) and self.n_components < 1:
            k = int(np.searchsorted(ratio, self.n_components) + 1)
        else:
            k = int(self.n_components)
        # keep at least one residual direction so Q means something
        k = max(1, min(k, d - 1, len(variance)))
        loadings = vt[:k].T  # (d, k)
        lam = np.maximum(variance[:k], 1e-9)
        core = {
            "centre": centre,
            "loadings": loadings,
            "inv_lambda": 1.0 / lam,
            "t2_limit": np.ones(1),
            "q_limit": np.ones(1),
        }
        t2, q = self._t2_q(core, zc + centre)
        core["t2_limit"] = np.array([max(float(np.quantile(t2[inlier], 0.99)), 1e-9)])
        core["q_limit"] = np.array([max(float(np.quantile(q[inlier], 0.99)), 1e-9)])
        return core

    def _robust_axes(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """MCD centre, eigenvalues (descending), eigenvectors (rows) and the MCD support mask."""
        from sklearn.covariance import MinCovDet

        mcd = MinCovDet(support_fraction=float(self.support), random_state=int(self.seed)).fit(z)
        eigval, eigvec = np.linalg.eigh(mcd.covariance_)
        order = np.argsort(eigval)[::-1]
        return mcd.location_, np.maximum(eigval[order], 0.0), eigvec[:, order].T, mcd.support_

    def _threshold_scores(self, oof: np.ndarray) -> np.ndarray:
        """Robust models leave out the out-of-fold scores that are outliers on a log scale
        (beyond median + 4 x 1.4826 MAD: the rows most likely to be anomalies inside the
        fitting window) before placing the threshold; clean data lose almost nothing."""
        if not self.robust:
            return oof
        logs = np.log(np.maximum(oof, 1e-12))
        centre = float(np.median(logs))
        spread = 1.4826 * float(np.median(np.abs(logs - centre))) + 1e-12
        kept = oof[logs <= centre + 4.0 * spread]
        return kept if len(kept) else oof

    @staticmethod
    def _t2_q(core: dict[str, np.ndarray], z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zc = z - core["centre"]
        t = zc @ core["loadings"]
        residual = zc - t @ core["loadings"].T
        return (t**2 * core["inv_lambda"]).sum(axis=1), (residual**2).sum(axis=1)

    def _compute(self, core: dict[str, np.ndarray], graph_input: np.ndarray) -> dict[str, np.ndarray]:
        mean, scale = self._tiled_stats()
        zc = (graph_input - mean) / scale - core["centre"]
        p = core["loadings"]
        t = zc @ p
        t2_contrib = zc * ((t * core["inv_lambda"]) @ p.T)
        residual = zc - t @ p.T
        contrib = t2_contrib / core["t2_limit"][0] + residual**2 / core["q_limit"][0]
        per_signal = self._per_signal(contrib)
        return {"score": per_signal.sum(axis=1), "contributions": per_signal}

    def _core_state(self) -> dict[str, Any]:
        return {f"core_{k}": v for k, v in self.core_.items()}

    def _set_core_state(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        prefix = "core_"
        return {k[len(prefix) :]: np.asarray(v, np.float64) for k, v in state.items() if k.startswith(prefix)}

    # ------------------------------------------------------------- ONNX
    def _export_core(self, path: Path) -> Path:
        core = self.core_
        mean, scale = self._tiled_stats()
        d = mean.shape[0]
        n_features = len(self.feature_names_in_)
        nodes, inits = standardize_nodes("input", "z", mean, scale)
        p = core["loadings"]
        inits += [
            const("centre", core["centre"]),
            const("P", p),
            const("PT", p.T),
            const("inv_lambda", core["inv_lambda"]),
            const("inv_t2_limit", 1.0 / core["t2_limit"][0]),
            const("inv_q_limit", 1.0 / core["q_limit"][0]),
            const("lag_shape", [0, -1, n_features], np.int64),
            const("axis1", [1], np.int64),
        ]
        nodes += [
            helper.make_node("Sub", ["z", "centre"], ["zc"]),
            helper.make_node("MatMul", ["zc", "P"], ["t"]),
            helper.make_node("Mul", ["t", "inv_lambda"], ["t_scaled"]),
            helper.make_node("MatMul", ["t_scaled", "PT"], ["t2_dir"]),
            helper.make_node("Mul", ["zc", "t2_dir"], ["t2_contrib"]),
            helper.make_node("MatMul", ["t", "PT"], ["recon"]),
            helper.make_node("Sub", ["zc", "recon"], ["residual"]),
            helper.make_node("Mul", ["residual", "residual"], ["q_contrib"]),
            helper.make_node("Mul", ["t2_contrib", "inv_t2_limit"], ["t2_part"]),
            helper.make_node("Mul", ["q_contrib", "inv_q_limit"], ["q_part"]),
            helper.make_node("Add", ["t2_part", "q_part"], ["contrib_lagged"]),
            helper.make_node("Reshape", ["contrib_lagged", "lag_shape"], ["contrib_3d"]),
            helper.make_node("ReduceSum", ["contrib_3d", "axis1"], ["contributions"], keepdims=0),
            helper.make_node("ReduceSum", ["contributions", "axis1"], ["score"], keepdims=0),
        ]
        model = build_model(
            nodes,
            [float_input("input", ["N", d])],
            [float_output("score", ["N"]), float_output("contributions", ["N", n_features])],
            inits,
            name="axhub_mspc",
            doc="standardise -> PCA T2 + Q, per-signal contributions",
        )
        return save_model(model, path)

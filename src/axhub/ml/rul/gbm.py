"""Remaining useful life with window features + LightGBM, and conformal prediction intervals.

Pipeline (the same numpy code runs in Python and in the bundle runner):
1. per-operating-regime standardisation of every sensor (regimes clustered from the operating
   settings; one regime when the settings do not form separate clusters); sensors that are
   constant within a regime in the training data get zero weight;
2. a window of ``window`` cycles per row; features = flattened window @ W (means and slopes over
   several sub-windows, exponential smoothing and its drift from the window start, the age of
   the unit), see :mod:`.features`; with ``health_index`` the same kernels also run over a
   health index, a linear combination of the sensors fitted to the capped RUL on the degrading
   training rows (still one MatMul);
3. LightGBM regression of the piecewise-linear target ``min(RUL, cap)``;
4. beyond the cap (``beyond_cap``): the capped prediction plus the probability that the unit is
   further than ``cap`` from failure times its expected excess life, both from the training lives
   and out-of-fold predictions (see :meth:`RulWindowEstimator._fit_beyond_cap`), so a healthy
   young unit is not stuck at the cap; a PHM08-optimal shift per prediction bin (``phm_shift``);
5. split-conformal intervals from out-of-fold residuals (folds of whole units) against the true
   RUL on rows within ``interval_horizon`` cycles of failure (see :mod:`.base`).
Training rows before a full window are padded with the unit's first row, so early life is learned
too; at scoring time the first ``window - 1`` rows take the first window's result (pad short
histories the same way to score them, as the C-MAPSS benchmark does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import onnx
import pandas as pd
from onnx import helper

from axhub.core.cancel import checkpoint
from axhub.ml.rul.base import RulWindowEstimator
from axhub.ml.rul.features import health_weights, padded_windows, window_feature_matrix
from axhub.ml.rul.synthetic import SYNTH_SETTINGS
from axhub.ml.rul.target import piecewise_rul
from axhub.registry.bundle import apply_row_steps, group_slices
from axhub.registry.export import const, save_model


class RulGBM(RulWindowEstimator):
    """Gradient-boosted RUL regressor over regime-normalised window features."""

    name: ClassVar[str] = "gbm"

    def __init__(
        self,
        columns: list[str] | None = None,
        regime_columns: list[str] | None = None,
        group: str | None = "unit",
        age_column: str | None = "cycle",
        target: str | None = None,
        window: int = 60,
        cap: float = 125.0,
        sub_windows: tuple[int, ...] | list[int] = (5, 10, 20),
        alphas: tuple[float, ...] | list[float] = (0.1, 0.3),
        baseline_rows: int = 10,
        n_estimators: int = 600,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        colsample: float = 0.5,
        coverage: float = 0.9,
        interval_horizon: float | None = None,
        calibration_folds: int = 5,
        max_regimes: int = 8,
        seed: int = 0,
        beyond_cap: bool = True,
        phm_shift: bool = True,
        health_index: bool = True,
    ) -> None:
        self.columns = columns
        self.regime_columns = regime_columns
        self.group = group
        self.age_column = age_column
        self.target = target
        self.window = window
        self.cap = cap
        self.sub_windows = sub_windows
        self.alphas = alphas
        self.baseline_rows = baseline_rows
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample = colsample
        self.coverage = coverage
        self.interval_horizon = interval_horizon
        self.calibration_folds = calibration_folds
        self.max_regimes = max_regimes
        self.seed = seed
        self.beyond_cap = beyond_cap
        self.phm_shift = phm_shift
        self.health_index = health_index

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {
            "regime_columns": list(SYNTH_SETTINGS),
            "window": 10,
            "cap": 60.0,
            "sub_windows": [3, 5],
            "n_estimators": 40,
            "min_child_samples": 10,
            "calibration_folds": 3,
        }

    def _in_graph_doc(self) -> str:
        return "window features (MatMul), LightGBM trees, conformal interval offsets"

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame) -> Self:
        x = self._validate(data, where="training data", fitting=True)
        self._fit_normalisation(data, x)
        z = apply_row_steps(x, [self._row_step()], self._extra_columns_from(data))
        slices = group_slices(self._groups(data), len(x))
        order = np.concatenate(slices)  # features are in unit order
        true = self._true_rul(data, slices)[order]
        y = piecewise_rul(true, float(self.cap))
        # 15 or so weights from thousands of rows: fitted once on all training units (the
        # out-of-fold predictions below share them, a negligible optimism)
        self.health_weights_ = (
            health_weights(z[order], y, self.sensor_idx_, float(self.cap)) if self.health_index else None
        )
        self.w_, meta = window_feature_matrix(
            len(self.feature_names_in_),
            int(self.window),
            list(self.sub_windows),
            list(self.alphas),
            self.sensor_idx_,
            self.age_idx_ if self.age_idx_ >= 0 else None,
            int(self.baseline_rows),
            self.health_weights_,
        )
        self.feature_signal_ = np.asarray([s for _, s in meta], dtype=np.int64)
        kinds = [kind for kind, _ in meta]
        self.age_feature_ = kinds.index("age") if "age" in kinds else -1
        features = np.concatenate(
            [padded_windows(z[rows], int(self.window)).reshape(len(rows), -1) @ self.w_ for rows in slices]
        )
        unit = np.concatenate([np.full(len(rows), k) for k, rows in enumerate(slices)])
        oof = self._calibrate(features, y, true, unit)
        age = features[:, self.age_feature_] if self.age_feature_ >= 0 else None
        final = self._fit_beyond_cap(oof, true, age, self._lives(data, slices, true))
        self._conformal_offsets(final, true)
        booster = self._train(features, y)
        self.booster_text_ = booster.model_to_string()
        self.graph_bytes_ = self._build_graph(booster).SerializeToString()
        self._session = None
        self.fitted_ = True
        return self

    def _train(self, features: np.ndarray, y: np.ndarray) -> Any:
        import lightgbm as lgb

        params = {
            "objective": "regression",
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "min_child_samples": int(self.min_child_samples),
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": float(self.colsample),
            "reg_lambda": 1.0,
            "random_state": int(self.seed),
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
        # float32 features, as the ONNX graph sees them, so split thresholds agree
        return lgb.train(
            params, lgb.Dataset(features.astype(np.float32), y), num_boost_round=int(self.n_estimators)
        )

    def _calibrate(
        self, features: np.ndarray, y: np.ndarray, true: np.ndarray, unit: np.ndarray
    ) -> np.ndarray:
        """Out-of-fold predictions of the capped target (folds of whole units)."""
        n_units = int(unit.max()) + 1
        folds = max(2, min(int(self.calibration_folds), n_units))
        fold_of_unit = np.random.default_rng(int(self.seed)).permutation(np.arange(n_units) % folds)
        oof = np.empty(len(y))
        for f in range(folds):
            checkpoint()  # a cancelled job stops between folds
            held = fold_of_unit[unit] == f
            oof[held] = self._train(features[~held], y[~held]).predict(features[held].astype(np.float32))
        return oof

    # ------------------------------------------------------------------ ONNX graph
    def _build_graph(self, booster: Any) -> onnx.ModelProto:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        n_feat = self.w_.shape[1]
        # onnxmltools 1.16 converts up to opset 15
        trees = convert_lightgbm(
            booster, initial_types=[("features", FloatTensorType([None, n_feat]))], target_opset=15
        )
        graph = trees.graph
        head = [
            helper.make_node("MatMul", ["input", "W"], ["features"]),
            *graph.node,
            helper.make_node("Reshape", [graph.output[0].name, "yc_shape"], ["yc_flat"]),
        ]
        inits = [const("yc_shape", [-1], np.int64)]
        if self.age_feature_ >= 0:
            head.append(helper.make_node("Gather", ["features", "age_column"], ["age_last"], axis=1))
            inits.append(const("age_column", self.age_feature_, np.int64))
        else:
            head.append(helper.make_node("Mul", ["yc_flat", "no_age"], ["age_last"]))
            inits.append(const("no_age", 0.0))
        beyond, beyond_inits = self._beyond_cap_nodes("yc_flat", "age_last", "rul_beyond")
        tail, tail_inits = self._interval_tail("rul_beyond")
        inits += beyond_inits + tail_inits
        nodes = [*head, *beyond, *tail]
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend([const("W", self.w_), *inits])
        del graph.input[:]
        graph.input.append(
            helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", self.w_.shape[0]])
        )
        del graph.output[:]
        graph.output.extend(self._rul_outputs())
        for opset in trees.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = max(opset.version, 15)  # Where/Less/Max need a recent opset
        trees.ir_version = min(trees.ir_version, 9)
        onnx.checker.check_model(trees)
        return trees

    def _run_graph(self, graph_input: np.ndarray) -> dict[str, np.ndarray]:
        session = self._session_for(self.graph_bytes_)
        rul, lower, upper, capped = session.run(
            ["rul", "rul_lower", "rul_upper", "rul_capped"], {"input": graph_input.astype(np.float32)}
        )
        return {"prediction": rul, "lower": lower, "upper": upper, "capped": capped}

    def explain(self, data: pd.DataFrame) -> pd.DataFrame:
        """Per-signal contribution (cycles) to each row's prediction: TreeSHAP values of the
        window features, summed over the features computed from each signal."""
        import lightgbm as lgb

        self._check_fitted()
        self._check_regime_columns(data, "input")
        booster = lgb.Booster(model_str=self.booster_text_)
        w = self.w_.astype(np.float32)

        def shap(graph_input: np.ndarray) -> dict[str, np.ndarray]:
            feats = graph_input.astype(np.float32) @ w
            contrib = np.asarray(booster.predict(feats, pred_contrib=True))[:, :-1]
            per_signal = np.zeros((len(feats), len(self.feature_names_in_)))
            own = self.feature_signal_ >= 0
            np.add.at(per_signal.T, self.feature_signal_[own], contrib[:, own].T)
            if (~own).any() and self.health_weights_ is not None:
                # health-index features: shared out by each sensor's share of the index weights
                share = np.abs(self.health_weights_) / max(float(np.abs(self.health_weights_).sum()), 1e-12)
                per_signal += contrib[:, ~own].sum(axis=1, keepdims=True) * share[None, :]
            return {"contributions": per_signal}

        out = self._run_pipeline(data, shap)["contributions"]
        return pd.DataFrame(out, columns=self.feature_names_in_, index=data.index)

    # ------------------------------------------------------------------ bundle
    def export_onnx(self, path: str | Path) -> Path:
        self._check_fitted()
        return save_model(onnx.load_from_string(self.graph_bytes_), path)

    def _get_state(self) -> dict[str, Any]:
        return {
            **self._base_state(),
            "w": self.w_,
            "feature_signal": self.feature_signal_,
            "age_feature": int(self.age_feature_),
            "health_weights": self.health_weights_ if self.health_weights_ is not None else np.zeros(0),
            "booster_text": self.booster_text_,
            "graph": np.frombuffer(self.graph_bytes_, dtype=np.uint8),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._set_base_state(state)
        self.w_ = np.asarray(state["w"], dtype=np.float64)
        self.feature_signal_ = np.asarray(state["feature_signal"], dtype=np.int64)
        self.age_feature_ = int(state["age_feature"])
        # bundles saved before the health index have none
        weights = np.asarray(state.get("health_weights", []), dtype=np.float64)
        self.health_weights_ = weights if weights.size else None
        self.booster_text_ = str(state["booster_text"])
        self.graph_bytes_ = np.asarray(state["graph"], dtype=np.uint8).tobytes()

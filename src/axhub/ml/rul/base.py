"""What the RUL estimators share: per-regime standardisation, windows, targets, conformal
intervals, the scoring pipeline and the evaluation.

Subclasses set ``name``, build their graph in ``fit`` and implement ``_run_graph`` (the Python
twin of the ONNX graph, which Python scoring also runs through onnxruntime, so hub and edge give
the same numbers). The graph maps windows to ``rul`` and adds the interval bounds:
``lower = max(rul + lo_offset, 0)``, ``upper = rul + hi_offset``, with separate offsets for
units predicted below / above ``0.8 * cap`` (healthy-looking units have wider upper bounds).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import onnx
import pandas as pd
from onnx import helper

from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.base import ExampleData, SensorEstimator
from axhub.ml.baseline import constant_rmse, with_baseline
from axhub.ml.rul.regimes import RegimeNormalizer
from axhub.ml.rul.synthetic import synthetic_fleet, truncate_fleet
from axhub.ml.rul.target import phm08_score, rmse
from axhub.registry.bundle import group_slices
from axhub.registry.export import const


class RulWindowEstimator(SensorEstimator):
    """Base of the window-based RUL models (not registered itself: no ``name``)."""

    family: ClassVar[str] = "rul"
    input_kind: ClassVar[str] = "sequence"
    #: Scale applied to the age column in the row step (trees need none, networks do).
    age_scale: ClassVar[float] = 1.0
    flatten_windows: ClassVar[bool] = True

    regime_columns: list[str] | None
    age_column: str | None
    target: str | None
    window: int
    cap: float
    coverage: float
    interval_horizon: float | None
    max_regimes: int
    seed: int
    beyond_cap: bool
    phm_shift: bool
    graph_bytes_: bytes

    @classmethod
    def example_data(cls, seed: int = 0) -> ExampleData:
        train = synthetic_fleet(n_units=12, seed=seed, min_life=60, max_life=100)
        test, _ = truncate_fleet(synthetic_fleet(n_units=4, seed=seed + 100, min_life=60, max_life=100), seed)
        return ExampleData(train=train, test=test)

    def reserved_columns(self) -> set[str]:
        return super().reserved_columns() | set(self.regime_columns or [])

    def _horizon(self) -> float:
        return float(self.interval_horizon) if self.interval_horizon else 1.5 * float(self.cap)

    # ------------------------------------------------------------------ normalisation
    def _extra_columns_from(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        return {c: data[c].to_numpy(dtype=np.float64) for c in self.regime_columns or []}

    def _check_regime_columns(self, data: pd.DataFrame, where: str) -> None:
        missing = [c for c in self.regime_columns or [] if c not in data.columns]
        if missing:
            raise InputValidationError(
                [InputProblem(where, None, c, "operating-setting column missing") for c in missing],
                hint="the model normalises sensors per operating regime; give the setting columns",
            )
        for c in self.regime_columns or []:
            values = data[c].to_numpy(dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise InputValidationError(InputProblem(where, int(bad[0]), c, "value is NaN or infinite"))

    def _fit_normalisation(self, data: pd.DataFrame, x: np.ndarray) -> None:
        """Regimes, per-regime mean/scale, constant sensors, and which inputs are sensors/age."""
        names = self.feature_names_in_
        age_idx = names.index(self.age_column) if self.age_column in names else None
        if self.regime_columns:
            self._check_regime_columns(data, "training data")
            settings = data[list(self.regime_columns)].to_numpy(dtype=np.float64)
            regimes = RegimeNormalizer(max_regimes=int(self.max_regimes), seed=int(self.seed)).fit(
                settings, x, list(names)
            )
            centroids = regimes.centers_ * regimes.setting_scale_ + regimes.setting_mean_
            # the same nearest-centroid rule as the bundle's regime_standardize step
            d = ((settings[:, None, :] - centroids[None]) ** 2).sum(axis=2)
            regime = d.argmin(axis=1)
        else:
            centroids = np.zeros((1, 0))
            regime = np.zeros(len(x), dtype=np.int64)
        k = len(centroids)
        mean = np.zeros((k, len(names)))
        scale = np.ones((k, len(names)))
        main = int(np.bincount(regime, minlength=k).argmax())
        constant: list[str] = []
        for j, name in enumerate(names):
            values = x[regime == main, j]
            if len(np.unique(values)) < 3 or values.std() <= 1e-12 * max(1.0, abs(values.mean())):
                constant.append(name)
            if j == age_idx:
                scale[:, j] = self.age_scale  # the age is a count of cycles, not a regime effect
                continue
            for r in range(k):
                block = x[regime == r, j]
                if len(block):
                    mean[r, j] = block.mean()
                    std = block.std()
                    scale[r, j] = std if std > 1e-12 * max(1.0, abs(mean[r, j])) else 1.0
        self.centroids_ = centroids
        self.regime_mean_, self.regime_scale_ = mean, scale
        self.constant_columns_ = constant
        self.age_idx_ = -1 if age_idx is None or names[age_idx] in constant else age_idx
        self.sensor_idx_ = [j for j, n in enumerate(names) if j != age_idx and n not in constant]

    def _row_step(self) -> dict[str, Any]:
        if self.regime_columns:
            return {
                "op": "regime_standardize",
                "regime_columns": list(self.regime_columns),
                "centroids": self.centroids_.tolist(),
                "mean": self.regime_mean_.tolist(),
                "scale": self.regime_scale_.tolist(),
            }
        return {
            "op": "standardize",
            "mean": self.regime_mean_[0].tolist(),
            "scale": self.regime_scale_[0].tolist(),
        }

    def _true_rul(self, data: pd.DataFrame, slices: list[np.ndarray]) -> np.ndarray:
        """Target column if given, else run-to-failure: the last row of each unit is failure."""
        if self.target and self.target in data.columns:
            return data[self.target].to_numpy(dtype=np.float64)
        true = np.empty(len(data))
        for rows in slices:
            true[rows] = np.arange(len(rows) - 1, -1, -1, dtype=np.float64)
        return true

    # ------------------------------------------------------------------ intervals
    def _conformal_offsets(self, predicted: np.ndarray, true: np.ndarray) -> None:
        """Split-conformal offsets from held-out predictions, in two bins of the prediction."""
        near = true <= self._horizon()
        self.bin_edge_ = 0.8 * float(self.cap)
        alpha = 1.0 - float(self.coverage)
        offsets = np.zeros((2, 2))
        for b, in_bin in enumerate([predicted < self.bin_edge_, predicted >= self.bin_edge_]):
            resid = (true - predicted)[near & in_bin]
            if len(resid) < 10:
                resid = (true - predicted)[near]
            n = len(resid)
            lo = np.quantile(resid, max(0.0, np.floor((n + 1) * alpha / 2) / n))
            hi = np.quantile(resid, min(1.0, np.ceil((n + 1) * (1 - alpha / 2)) / n))
            offsets[b] = [lo, hi]
        self.interval_offsets_ = offsets
        self.calibration_rmse_ = rmse(
            np.minimum(predicted[near], float(self.cap)), np.minimum(true[near], float(self.cap))
        )

    def _interval_tail(self, rul_name: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        lo, hi = self.interval_offsets_[:, 0], self.interval_offsets_[:, 1]
        inits = [
            const("rul_flat_shape", [-1], np.int64),
            const("bin_edge", float(self.bin_edge_)),
            const("lo_low", float(lo[0])),
            const("lo_high", float(lo[1])),
            const("hi_low", float(hi[0])),
            const("hi_high", float(hi[1])),
            const("zero_floor", 0.0),
        ]
        nodes = [
            helper.make_node("Reshape", [rul_name, "rul_flat_shape"], ["rul"]),
            helper.make_node("Less", ["rul", "bin_edge"], ["is_low"]),
            helper.make_node("Where", ["is_low", "lo_low", "lo_high"], ["lo_off"]),
            helper.make_node("Where", ["is_low", "hi_low", "hi_high"], ["hi_off"]),
            helper.make_node("Add", ["rul", "lo_off"], ["lower_raw"]),
            helper.make_node("Max", ["lower_raw", "zero_floor"], ["rul_lower"]),
            helper.make_node("Add", ["rul", "hi_off"], ["rul_upper"]),
        ]
        return nodes, inits

    @staticmethod
    def _rul_outputs() -> list[onnx.ValueInfoProto]:
        return [
            helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N"])
            for n in ("rul", "rul_lower", "rul_upper", "rul_capped")
        ]

    # ------------------------------------------------------------------ beyond the cap
    def _fit_beyond_cap(
        self, held_pred: np.ndarray, true: np.ndarray, age: np.ndarray | None, lives: np.ndarray | None
    ) -> np.ndarray:
        """Learn the tables that turn the capped prediction into an honest RUL; returns the
        held-out predictions after them (for the conformal intervals).

        ``E[RUL | x] = E[min(RUL, cap) | x] + P(RUL > cap | x) * E[RUL - cap | RUL > cap, x]``.
        The first term is the capped model (``yc``). The probability combines the evidence of
        the sensors with the age ``t``: odds = LR(yc, t) * prior odds(t), where the prior odds are
        ``P(L > t + cap | L > t)`` from the training lives ``L`` and LR is the likelihood ratio of
        ``yc`` between units beyond and within the cap *at the same age*: the odds of a
        classifier of "beyond" on (``yc``, ``t``) over the held-out rows (which are every cycle
        of every unit, so their prior is exactly the survival prior) divided by those prior
        odds. Conditioning on ``t`` matters because ``yc`` itself uses the age: a ratio of
        ``yc`` alone counts the age twice and sends units near the cap beyond it too often.
        The excess is the mean residual life beyond the cap, ``E[L - t - cap | L > t + cap]``.
        A healthy young unit therefore gets its survival expectation, an old or degrading one
        its capped prediction.
        A shift per ``yc`` bin minimising the PHM08 score of the held-out predictions removes the
        late bias that the asymmetric cost punishes. Every table comes from training units only.
        """
        cap = float(self.cap)
        grid = np.arange(0.0, cap + 1.0)
        self.capped_shift_table_ = self._phm_shift(held_pred, held_pred, np.minimum(true, cap), (-15.0, 5.0))
        shift = np.zeros(len(grid))
        self.shift_table_ = shift
        n_age = 1
        self.likelihood_ratio_ = np.zeros((len(grid), 1))
        self.prior_odds_ = np.zeros(n_age)
        self.excess_table_ = np.zeros(n_age)
        beyond = true > cap
        self.lives_ = np.asarray(lives if lives is not None else [], dtype=np.float64)
        # held-out predictions of the training units, for validation by the caller (not saved)
        self.validation_ = {"capped_prediction": held_pred, "true": true, "age": age}
        if self.beyond_cap and age is not None and lives is not None and beyond.any() and (~beyond).any():
            n_age = int(np.max(lives)) + 1
            self.prior_odds_ = np.zeros(n_age)
            self.excess_table_ = np.zeros(n_age)
            for a in range(n_age):
                alive, past = lives > a, lives > a + cap
                p = (past.sum() + 0.5) / (alive.sum() + 1.0)
                self.prior_odds_[a] = p / (1 - p)
                # too few long lives left to average: keep the last estimate
                self.excess_table_[a] = (
                    float(np.mean(lives[past] - a - cap))
                    if past.sum() >= 5
                    else self.excess_table_[a - 1]
                    if a
                    else 0.0
                )
            self.likelihood_ratio_ = beyond_likelihood_ratio(held_pred, age, beyond, grid, self.prior_odds_)
        age = age if age is not None else np.zeros(len(held_pred))
        # the uncapped prediction's own PHM08 shift, against the uncapped truth
        before = self._beyond_cap_numpy(held_pred, age)
        self.shift_table_ = self._phm_shift(held_pred, before, true, (-30.0, 5.0))
        return self._beyond_cap_numpy(held_pred, age)

    def adapt_prior(self, ages: np.ndarray | None) -> bool:
        """Re-estimate the remaining-life prior for the population of units about to be scored,
        from their current ages only (no labels; see :mod:`.prior`). ``None`` restores the
        survival prior. Returns False (and changes nothing) when the model has no beyond-cap tail
        or no training lives. The graph's prior tables are replaced in place."""
        from axhub.ml.rul.prior import prior_tables, remaining_life_weights

        self._check_fitted()
        lives = getattr(self, "lives_", np.zeros(0))
        if not self.beyond_cap or len(lives) == 0 or not np.any(self.likelihood_ratio_):
            return False
        q = remaining_life_weights(lives, None if ages is None else np.asarray(ages, dtype=np.float64))
        odds, excess = prior_tables(lives, q, float(self.cap), len(self.prior_odds_))
        graph = onnx.load_from_string(self.graph_bytes_)
        new = {"bc_prior": odds, "bc_excess": excess}
        replaced = set()
        for init in graph.graph.initializer:
            if init.name in new:
                init.CopyFrom(const(init.name, new[init.name]))
                replaced.add(init.name)
        if replaced != set(new):  # a graph without the tail's tables: never score half-adapted
            raise RuntimeError(f"prior tables {sorted(set(new) - replaced)} not found in the graph")
        self.prior_odds_, self.excess_table_ = odds, excess
        self.graph_bytes_ = graph.SerializeToString()
        self._session = None
        return True

    def _phm_shift(
        self, yc: np.ndarray, pred: np.ndarray, truth: np.ndarray, bounds: tuple[float, float]
    ) -> np.ndarray:
        """Per 25-cycle bin of the capped prediction ``yc``: the shift of ``pred`` that minimises
        the PHM08 score against ``truth`` (0 where a bin has fewer than 50 rows or phm_shift is off)."""
        cap = float(self.cap)
        grid = np.arange(0.0, cap + 1.0)
        table = np.zeros(len(grid))
        if not self.phm_shift:
            return table
        candidates = np.arange(bounds[0], bounds[1] + 0.25, 0.5)
        inner = np.arange(25.0, cap, 25.0)  # the last bin runs to the cap and beyond
        pred_bin, grid_bin = np.searchsorted(inner, yc, "right"), np.searchsorted(inner, grid, "right")
        for b in range(len(inner) + 1):
            rows = pred_bin == b
            if rows.sum() >= 50:
                cost = [phm08_score(pred[rows] + c, truth[rows]) for c in candidates]
                table[grid_bin == b] = candidates[int(np.argmin(cost))]
        return table

    def _capped_numpy(self, yc: np.ndarray) -> np.ndarray:
        i = np.clip(np.round(yc), 0, float(self.cap)).astype(np.int64)
        return np.asarray(np.minimum(yc + self.capped_shift_table_[i], float(self.cap)))

    def _beyond_cap_numpy(
        self,
        yc: np.ndarray,
        age: np.ndarray,
        prior: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The numpy twin of the graph's tail (tests compare the two); ``prior`` replaces the
        (prior odds, excess) tables, for validation."""
        cap = float(self.cap)
        prior_odds, excess = prior if prior is not None else (self.prior_odds_, self.excess_table_)
        i = np.clip(np.round(yc), 0, cap).astype(np.int64)
        j = np.clip(np.round(age), 0, len(excess) - 1).astype(np.int64)
        ratio = self._ratio_table()
        k = np.clip(np.round(age), 0, ratio.shape[1] - 1).astype(np.int64)
        odds = ratio[i, k] * prior_odds[j]
        return np.asarray(yc + self.shift_table_[i] + odds / (1 + odds) * excess[j])

    def _ratio_table(self) -> np.ndarray:
        """The likelihood ratio as (capped prediction, age) table; bundles saved before the ratio
        depended on the age hold one column."""
        ratio = np.asarray(self.likelihood_ratio_, dtype=np.float64)
        return ratio.reshape(len(ratio), -1)

    def _beyond_cap_nodes(
        self, yc: str, age: str, out: str
    ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        """ONNX nodes: ``out = yc + shift[i] + odds / (1 + odds) * excess[j]`` with table lookups
        (``i = round(clip(yc))``, ``j = round(clip(age))``)."""
        inits = [
            const("bc_cap_max", float(self.cap)),
            const("bc_age_max", float(len(self.excess_table_) - 1)),
            const("bc_zero", 0.0),
            const("bc_one", 1.0),
            const("bc_shift", self.shift_table_),
            const("bc_capped_shift", self.capped_shift_table_),
            const("bc_lr", self._ratio_table().ravel()),
            const("bc_lr_cols", float(self._ratio_table().shape[1])),
            const("bc_lr_age_max", float(self._ratio_table().shape[1] - 1)),
            const("bc_prior", self.prior_odds_),
            const("bc_excess", self.excess_table_),
        ]
        nodes = [
            helper.make_node("Clip", [yc, "bc_zero", "bc_cap_max"], ["bc_yc_clip"]),
            helper.make_node("Round", ["bc_yc_clip"], ["bc_yc_round"]),
            helper.make_node("Cast", ["bc_yc_round"], ["bc_i"], to=onnx.TensorProto.INT64),
            helper.make_node("Clip", [age, "bc_zero", "bc_age_max"], ["bc_age_clip"]),
            helper.make_node("Round", ["bc_age_clip"], ["bc_age_round"]),
            helper.make_node("Cast", ["bc_age_round"], ["bc_j"], to=onnx.TensorProto.INT64),
            helper.make_node("Gather", ["bc_shift", "bc_i"], ["bc_s"]),
            # the ratio table is (yc, age) flattened row-major: index = i * columns + k
            helper.make_node("Clip", [age, "bc_zero", "bc_lr_age_max"], ["bc_lr_age"]),
            helper.make_node("Round", ["bc_lr_age"], ["bc_lr_age_round"]),
            helper.make_node("Mul", ["bc_yc_round", "bc_lr_cols"], ["bc_lr_row"]),
            helper.make_node("Add", ["bc_lr_row", "bc_lr_age_round"], ["bc_lr_flat"]),
            helper.make_node("Cast", ["bc_lr_flat"], ["bc_lr_index"], to=onnx.TensorProto.INT64),
            helper.make_node("Gather", ["bc_lr", "bc_lr_index"], ["bc_l"]),
            helper.make_node("Gather", ["bc_prior", "bc_j"], ["bc_p"]),
            helper.make_node("Gather", ["bc_excess", "bc_j"], ["bc_e"]),
            helper.make_node("Mul", ["bc_l", "bc_p"], ["bc_odds"]),
            helper.make_node("Add", ["bc_odds", "bc_one"], ["bc_odds1"]),
            helper.make_node("Div", ["bc_odds", "bc_odds1"], ["bc_prob"]),
            helper.make_node("Mul", ["bc_prob", "bc_e"], ["bc_extra"]),
            helper.make_node("Add", [yc, "bc_s"], ["bc_shifted"]),
            helper.make_node("Add", ["bc_shifted", "bc_extra"], [out]),
            # the capped head: E[min(RUL, cap)], for comparisons with a capped truth
            helper.make_node("Gather", ["bc_capped_shift", "bc_i"], ["bc_cs"]),
            helper.make_node("Add", [yc, "bc_cs"], ["bc_capped_raw"]),
            helper.make_node("Min", ["bc_capped_raw", "bc_cap_max"], ["rul_capped"]),
        ]
        return nodes, inits

    def _lives(self, data: pd.DataFrame, slices: list[np.ndarray], true: np.ndarray) -> np.ndarray | None:
        """Life of every training unit in age units (age at its first row + RUL there)."""
        if self.age_idx_ < 0 or self.age_column is None:
            return None
        age = data[self.age_column].to_numpy(dtype=np.float64)
        return np.asarray([age[rows[0]] + true[rows[0]] for rows in slices])

    # ------------------------------------------------------------------ scoring
    @abstractmethod
    def _run_graph(self, graph_input: np.ndarray) -> dict[str, np.ndarray]:
        """``{"prediction", "lower", "upper"}`` for a batch of graph inputs (windows)."""

    def _session_for(self, model_bytes: bytes) -> Any:
        import onnxruntime as ort

        if getattr(self, "_session", None) is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self._session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        return self._session

    def _outputs(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        self._check_fitted()
        self._check_regime_columns(data, "input")
        return self._run_pipeline(data, self._run_graph)

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        """Predicted RUL in cycles, one per row (beyond the cap for healthy units when
        ``beyond_cap``; clip at ``cap`` to compare with a capped truth)."""
        return np.asarray(self._outputs(data)["prediction"], dtype=np.float64)

    def predict_capped(self, data: pd.DataFrame) -> np.ndarray:
        """The capped head, ``E[min(RUL, cap)]`` per row: compare it with a truth clipped at the cap."""
        return np.asarray(self._outputs(data)["capped"], dtype=np.float64)

    def score(self, data: pd.DataFrame) -> np.ndarray:
        """Same as :meth:`predict`: the remaining useful life in cycles."""
        return self.predict(data)

    def predict_interval(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, lower, upper) per row; the interval aims at ``coverage`` of the true RUL."""
        out = self._outputs(data)
        return (
            np.asarray(out["prediction"], dtype=np.float64),
            np.asarray(out["lower"], dtype=np.float64),
            np.asarray(out["upper"], dtype=np.float64),
        )

    def evaluate(self, data: pd.DataFrame) -> dict[str, float]:
        """RMSE against the capped target on every row, the standard last-cycle RMSE and PHM08
        score per unit, and interval coverage of the true RUL within the interval horizon.
        Truth: the ``target`` column, else run-to-failure (each unit's last row is failure)."""
        pred, lower, upper = self.predict_interval(data)
        slices = group_slices(self._groups(data), len(data))
        true = self._true_rul(data, slices)
        last = np.asarray([rows[-1] for rows in slices])
        near = true <= self._horizon()
        inside = (true >= lower) & (true <= upper)
        metrics = {
            "rmse_capped": rmse(self.predict_capped(data), np.minimum(true, float(self.cap))),
            "rmse_last": rmse(pred[last], true[last]),
            "phm08_last": phm08_score(pred[last], true[last]),
            "coverage": float(inside[near].mean()) if near.any() else float("nan"),
            "interval_width": float(np.mean(upper[near] - lower[near])) if near.any() else float("nan"),
        }
        # baseline: the best constant answer (the mean remaining life of these units)
        return with_baseline(metrics, "rmse_last", constant_rmse(true[last]), higher_is_better=False)

    def preprocessing(self) -> dict[str, Any]:
        self._check_fitted()
        window = {"op": "window", "length": int(self.window), "stride": 1, "flatten": self.flatten_windows}
        return {
            "columns": list(self.feature_names_in_),
            "group_column": self.group_column,
            "steps": [self._row_step(), window],
            "in_graph": self._in_graph_doc(),
            "graph_input": "input",
            "outputs": {
                "prediction": "rul",
                "lower": "rul_lower",
                "upper": "rul_upper",
                "capped": "rul_capped",
            },
            "post": [{"op": "align", "mode": "end"}],
        }

    def _in_graph_doc(self) -> str:
        return "RUL model and conformal interval offsets"

    # ------------------------------------------------------------------ state
    def _base_state(self) -> dict[str, Any]:
        return {
            "feature_names_in": list(self.feature_names_in_),
            "constant_columns": list(self.constant_columns_),
            "centroids": self.centroids_,
            "regime_mean": self.regime_mean_,
            "regime_scale": self.regime_scale_,
            "age_idx": int(self.age_idx_),
            "sensor_idx": list(self.sensor_idx_),
            "interval_offsets": self.interval_offsets_,
            "bin_edge": float(self.bin_edge_),
            "calibration_rmse": float(self.calibration_rmse_),
            "shift_table": self.shift_table_,
            "capped_shift_table": self.capped_shift_table_,
            "likelihood_ratio": self.likelihood_ratio_,
            "prior_odds": self.prior_odds_,
            "excess_table": self.excess_table_,
            "lives": getattr(self, "lives_", np.zeros(0)),
        }

    def _set_base_state(self, state: dict[str, Any]) -> None:
        self.feature_names_in_ = list(state["feature_names_in"])
        self.constant_columns_ = list(state["constant_columns"])
        self.centroids_ = np.asarray(state["centroids"], dtype=np.float64)
        self.regime_mean_ = np.asarray(state["regime_mean"], dtype=np.float64)
        self.regime_scale_ = np.asarray(state["regime_scale"], dtype=np.float64)
        self.age_idx_ = int(state["age_idx"])
        self.sensor_idx_ = [int(j) for j in state["sensor_idx"]]
        self.interval_offsets_ = np.asarray(state["interval_offsets"], dtype=np.float64)
        self.bin_edge_ = float(state["bin_edge"])
        self.calibration_rmse_ = float(state["calibration_rmse"])
        self.shift_table_ = np.asarray(state["shift_table"], dtype=np.float64)
        self.capped_shift_table_ = np.asarray(state["capped_shift_table"], dtype=np.float64)
        self.likelihood_ratio_ = np.asarray(state["likelihood_ratio"], dtype=np.float64)
        self.prior_odds_ = np.asarray(state["prior_odds"], dtype=np.float64)
        self.excess_table_ = np.asarray(state["excess_table"], dtype=np.float64)
        # bundles saved before the population prior existed carry no lives
        self.lives_ = np.asarray(state.get("lives", []), dtype=np.float64)
        self._session = None
        self.fitted_ = True


def beyond_likelihood_ratio(
    yc: np.ndarray, age: np.ndarray, beyond: np.ndarray, grid: np.ndarray, prior_odds: np.ndarray
) -> np.ndarray:
    """``LR(yc, t) = odds(beyond | yc, t) / prior odds(t)`` on ``grid x ages``.

    The classifier is a small gradient-boosted model constrained to be monotone (more likely
    beyond the cap as ``yc`` rises, less likely as the unit ages), fitted on held-out rows whose
    age distribution is the survival prior's, so dividing by those prior odds leaves the evidence
    of the sensors alone. The ratio is kept in [1e-3, 1e3]: a table cell no training row
    reached must not decide a prediction by itself.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = np.column_stack([yc, age])
    clf = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        monotonic_cst=[1, -1],
        random_state=0,
    ).fit(features, beyond.astype(np.int64))
    ages = np.arange(len(prior_odds), dtype=np.float64)
    mesh = np.column_stack([np.repeat(grid, len(ages)), np.tile(ages, len(grid))])
    # both probabilities are kept in [0.01, 0.99] before the ratio: where every training row of
    # an age is beyond the cap (or none is), the classifier and the prior agree and the ratio
    # must be 1, not the quotient of two clipping floors
    p = np.clip(clf.predict_proba(mesh)[:, 1], 0.01, 0.99).reshape(len(grid), len(ages))
    prior_p = np.clip(prior_odds / (1 + prior_odds), 0.01, 0.99)[None, :]
    return np.asarray(np.clip((p / (1 - p)) / (prior_p / (1 - prior_p)), 1e-3, 1e3))

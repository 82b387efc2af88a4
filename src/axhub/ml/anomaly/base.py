"""Common machinery of the multivariate anomaly detectors.

Rows (or windows of ``window`` rows) of sensor signals go in; one anomaly score per row comes out
(higher = more anomalous), with a per-signal contribution whose row sum is the raw score.

Threshold rule (normal data only): the training rows are cut into ``calibration_folds``
contiguous time blocks; for each block a model is fitted on the other blocks and scores the
held-out block (smoothed like at run time). The threshold is the ``quantile`` of these pooled
out-of-fold scores times ``threshold_margin``. The final model is then fitted on all training rows.
Out-of-fold scores are what the model does on normal data it has not seen, so the false-alarm rate
on fresh normal data lands near ``1 - quantile`` instead of far above it (in-sample scores are
optimistically low). The threshold is stored with the normalisation statistics in the bundle.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from axhub.core.cancel import checkpoint
from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.base import ExampleData, SensorEstimator, standardisation_stats
from axhub.ml.baseline import always_alarm_f1, with_baseline
from axhub.ml.metrics import binary_detection_metrics
from axhub.registry.bundle import apply_post, make_graph_input


class AnomalyEstimator(SensorEstimator):
    """Base of the anomaly family. Subclass ``__init__`` should accept at least ``columns``,
    ``window``, ``smooth``, ``quantile``, ``threshold_margin``, ``calibration_folds``, ``label``,
    ``group`` (optional series id column) and ``seed`` (store each under its own name)."""

    family: ClassVar[str] = "anomaly"
    #: Flatten windows to ``(n, window * F)`` vectors (classical models) or keep ``(n, window, F)``.
    flatten_windows: ClassVar[bool] = True

    columns: list[str] | None
    window: int
    smooth: int
    quantile: float
    threshold_margin: float
    calibration_folds: int
    label: str
    group: str | None
    seed: int

    mean_: np.ndarray
    scale_: np.ndarray
    threshold_: float
    fitted_: bool

    # ------------------------------------------------------------- subclass hooks
    @abstractmethod
    def _fit_core(self, graph_input: np.ndarray) -> Any:
        """Fit on raw (un-standardised) rows/windows; return the fitted core state."""

    @abstractmethod
    def _compute(self, core: Any, graph_input: np.ndarray) -> dict[str, np.ndarray]:
        """Python twin of the ONNX graph: ``score`` (n,) and ``contributions`` (n, F)."""

    @abstractmethod
    def _export_core(self, path: Path) -> Path:
        """Write the ONNX graph: input ``input`` (raw rows/windows), outputs as ``_compute``."""

    @abstractmethod
    def _core_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _set_core_state(self, state: dict[str, Any]) -> Any: ...

    # ------------------------------------------------------------- fit / score
    def _window_steps(self) -> list[dict[str, Any]]:
        if self.window_length > 1:
            length, flatten = self.window_length, self.flatten_windows
            return [{"op": "window", "length": length, "stride": 1, "flatten": flatten}]
        return []

    def _post_steps(self) -> list[dict[str, Any]]:
        post: list[dict[str, Any]] = []
        if int(self.smooth) > 1:
            post.append({"op": "smooth", "length": int(self.smooth), "method": "mean", "outputs": ["score"]})
        if self.window_length > 1:
            post.append({"op": "align", "mode": "end"})
        return post

    def fit(self, data: pd.DataFrame) -> Self:
        x = self._validate(data, where="training data", fitting=True)
        groups = self._groups(data)
        self.mean_, self.scale_, constant = standardisation_stats(x)
        self.constant_columns_ = [c for c, k in zip(self.feature_names_in_, constant, strict=True) if k]
        oof = self._out_of_fold_scores(x, groups)
        graph_in, _ = make_graph_input(x, self._window_steps(), groups)
        self.core_ = self._fit_core(graph_in)
        self.threshold_ = float(
            np.quantile(self._threshold_scores(oof), self.quantile) * self.threshold_margin
        )
        self.fitted_ = True
        return self

    def _threshold_scores(self, oof: np.ndarray) -> np.ndarray:
        """The out-of-fold scores the threshold quantile is taken over (robust models trim)."""
        return oof

    def _out_of_fold_scores(self, x: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        folds = int(self.calibration_folds)
        # Each fold must leave enough rows on both sides for a window and a few fits.
        block_ids = np.zeros(len(x), dtype=np.int64)
        series = (
            [np.arange(len(x))]
            if groups is None
            else [np.flatnonzero(groups == g) for g in pd.unique(groups)]
        )
        for rows in series:
            block_ids[rows] = np.minimum(np.arange(len(rows)) * folds // max(len(rows), 1), folds - 1)
        # series id x block id: windows never span a held-out gap
        series_ids = np.zeros(len(x), dtype=np.int64)
        for i, rows in enumerate(series):
            series_ids[rows] = i
        pieces = series_ids * folds + block_ids
        steps = self._window_steps()
        scores: list[np.ndarray] = []
        for fold in range(folds):
            checkpoint()  # a cancelled job stops between folds
            held = block_ids == fold
            if held.sum() < self.window_length or (~held).sum() < 2 * self.window_length:
                continue
            train_in, _ = make_graph_input(x[~held], steps, pieces[~held])
            core = self._fit_core(train_in)
            held_pieces = pieces[held]
            sizes = pd.Series(held_pieces).value_counts()
            keep = np.isin(held_pieces, sizes[sizes >= self.window_length].index.to_numpy())
            if not keep.any():
                continue
            test_in, layout = make_graph_input(x[held][keep], steps, held_pieces[keep])
            out = self._compute(core, test_in)
            post = apply_post({"score": out["score"]}, self._post_steps(), layout, int(keep.sum()))
            scores.append(post["score"])
        if not scores:
            raise InputValidationError(
                InputProblem(
                    "training data",
                    None,
                    None,
                    f"{len(x)} rows are too few to calibrate a threshold with "
                    f"{folds} folds and window {self.window_length}",
                ),
                hint="give more normal rows or lower calibration_folds/window",
            )
        return np.concatenate(scores)

    def _outputs(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        return self._run_pipeline(data, lambda graph_in: self._compute(self.core_, graph_in))

    def score(self, data: pd.DataFrame) -> np.ndarray:
        return self._outputs(data)["score"]

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return self.score(data) > self.threshold_

    def explain(self, data: pd.DataFrame) -> pd.DataFrame:
        contributions = self._outputs(data)["contributions"]
        return pd.DataFrame(contributions, columns=self.feature_names_in_, index=data.index)

    def evaluate(self, data: pd.DataFrame) -> dict[str, float]:
        if self.label not in data.columns:
            raise InputValidationError(
                InputProblem("evaluation data", None, self.label, "label column missing"),
                hint="add a 0/1 column marking anomalous rows",
            )
        truth = data[self.label].to_numpy()
        metrics = binary_detection_metrics(truth, self.predict(data))
        # the better constant detector: always-normal has F1 0, always alarming 2p / (1 + p)
        return with_baseline(
            {k: float(v) for k, v in metrics.items()}, "f1", always_alarm_f1(truth), higher_is_better=True
        )

    # ------------------------------------------------------------- bundle
    def preprocessing(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "columns": list(self.feature_names_in_),
            "group_column": self.group_column,
            "steps": self._window_steps(),
            "in_graph": [{"op": "standardize", "mean": self.mean_.tolist(), "scale": self.scale_.tolist()}],
            "graph_input": "input",
            "outputs": {"score": "score", "contributions": "contributions"},
            "post": self._post_steps(),
            "threshold": self.threshold_,
            "threshold_rule": (
                f"quantile {self.quantile} of out-of-fold scores on normal training data "
                f"({self.calibration_folds} time blocks) x {self.threshold_margin}"
            ),
            "constant_columns": self.constant_columns_,
        }

    def export_onnx(self, path: str | Path) -> Path:
        self._check_fitted()
        return self._export_core(Path(path))

    def _get_state(self) -> dict[str, Any]:
        return {
            "feature_names_in": list(self.feature_names_in_),
            "constant_columns": list(self.constant_columns_),
            "mean": self.mean_,
            "scale": self.scale_,
            "threshold": self.threshold_,
            **self._core_state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.feature_names_in_ = list(state["feature_names_in"])
        self.constant_columns_ = list(state["constant_columns"])
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale"], dtype=np.float64)
        self.threshold_ = float(state["threshold"])
        self.core_ = self._set_core_state(state)
        self.fitted_ = True

    # ------------------------------------------------------------- helpers for subclasses
    def _tiled_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean/scale repeated for every lag of a flattened window."""
        reps = self.window_length if self.flatten_windows else 1
        return np.tile(self.mean_, reps), np.tile(self.scale_, reps)

    def _per_signal(self, contributions: np.ndarray) -> np.ndarray:
        """Sum per-lag contributions ``(n, L*F)`` to per-signal ``(n, F)``."""
        n_features = len(self.feature_names_in_)
        return contributions.reshape(contributions.shape[0], -1, n_features).sum(axis=1)

    # ------------------------------------------------------------- contract-suite data
    @classmethod
    def example_data(cls, seed: int = 0) -> ExampleData:
        return synthetic_sensor_data(seed)


def synthetic_sensor_data(seed: int = 0, n_train: int = 600, n_test: int = 300) -> ExampleData:
    """Correlated 4-signal process (flow, pressure, current, temperature); the test half has a
    step fault on ``pressure`` in its second half, marked in ``anomaly``."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    t = np.arange(n)
    load = np.sin(t / 25.0) + 0.3 * rng.standard_normal(n).cumsum() / np.sqrt(n)
    flow = 10 + 2 * load + 0.1 * rng.standard_normal(n)
    pressure = 3 + 0.8 * load + 0.05 * rng.standard_normal(n)
    current = 5 + 1.5 * load + 0.1 * rng.standard_normal(n)
    temperature = 40 + 0.2 * np.convolve(load, np.ones(5) / 5, mode="same") + 0.1 * rng.standard_normal(n)
    frame = pd.DataFrame({"flow": flow, "pressure": pressure, "current": current, "temperature": temperature})
    anomaly = np.zeros(n, dtype=np.int64)
    fault = slice(n_train + n_test // 2, n)
    frame.loc[frame.index[fault], "pressure"] += 0.6
    anomaly[fault] = 1
    frame["anomaly"] = anomaly
    train = frame.iloc[:n_train].drop(columns="anomaly").reset_index(drop=True)
    test = frame.iloc[n_train:].reset_index(drop=True)
    return ExampleData(train=train, test=test, labels=["anomaly"])

"""Bearing fault diagnosis behind the estimator contract: order-normalised vibration features
(an ONNX graph: FFT, Hilbert envelope, order bands) + extremely randomised trees.

Input: a frame with one column per vibration channel, the shaft speed column (rpm, per row;
order normalisation uses it, so a model trained at one speed reads another), an optional
recording/group column and, for training, the fault label column. Output: one verdict per
window of ``window`` samples (every ``stride`` samples, within a recording only).

The trees are trained on the features computed by the very ONNX graph that ships in the
bundle, and Python scoring runs that graph too, so the edge and the hub give the same answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import onnx
import pandas as pd
from onnx import helper

from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.base import ExampleData, SensorEstimator
from axhub.ml.baseline import majority_accuracy, with_baseline
from axhub.ml.features.vibration import feature_names, vibration_feature_graph
from axhub.registry.bundle import group_slices, make_graph_input
from axhub.registry.export import const, save_model


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


class VibrationTrees(SensorEstimator):
    """Fault class per vibration window (e.g. Normal / IR / B / OR)."""

    family: ClassVar[str] = "diagnosis"
    name: ClassVar[str] = "vibration_trees"
    input_kind: ClassVar[str] = "sequence"

    def __init__(
        self,
        columns: list[str] | None = None,
        speed_column: str = "rpm",
        label: str = "fault",
        group: str | None = "recording",
        normal_class: str = "Normal",
        sample_rate: float = 12_000.0,
        window: int = 4096,
        stride: int = 2048,
        n_estimators: int = 300,
        seed: int = 0,
    ) -> None:
        self.columns = columns
        self.speed_column = speed_column
        self.label = label
        self.group = group
        self.normal_class = normal_class
        self.sample_rate = sample_rate
        self.window = window
        self.stride = stride
        self.n_estimators = n_estimators
        self.seed = seed

    @classmethod
    def example_data(cls, seed: int = 0) -> ExampleData:
        from axhub.ml.diagnosis.synthetic import synthetic_vibration_frame

        train = synthetic_vibration_frame(rpm=1797.0, seconds=0.6, seed=seed)
        test = synthetic_vibration_frame(rpm=1750.0, seconds=0.3, seed=seed + 50)
        return ExampleData(train=train, test=test, labels=["fault"])

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"window": 512, "stride": 512, "n_estimators": 20}

    # ------------------------------------------------------------------ inputs
    def _select_columns(self, data: pd.DataFrame) -> list[str]:
        chosen = [c for c in super()._select_columns(data) if c != self.speed_column]
        if self.speed_column not in data.columns:
            raise InputValidationError(
                InputProblem("training data", None, self.speed_column, "shaft speed column missing"),
                hint="give the shaft speed in rpm per row (constant within a recording is fine)",
            )
        return [*chosen, self.speed_column]  # the speed rides along as the last channel

    def n_outputs(self, data: pd.DataFrame) -> int:
        groups = self._groups(data)
        return sum(
            max(0, (len(rows) - int(self.window)) // int(self.stride) + 1)
            for rows in group_slices(groups, len(data))
        )

    def _steps(self) -> list[dict[str, Any]]:
        return [{"op": "window", "length": int(self.window), "stride": int(self.stride), "flatten": False}]

    def _windows(
        self, data: pd.DataFrame, *, fitting: bool = False
    ) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        x = self._validate(data, where="training data" if fitting else "input", fitting=fitting)
        speed = x[:, -1]
        bad = np.flatnonzero(speed <= 0)
        if bad.size:
            raise InputValidationError(
                InputProblem("input", int(bad[0]), self.speed_column, "shaft speed must be positive (rpm)")
            )
        windows, layout = make_graph_input(x, self._steps(), self._groups(data))
        ends = np.concatenate(
            [rows[int(self.window) - 1 :: int(self.stride)][:count] for rows, count in layout]
        )
        return windows, ends, layout

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame) -> Self:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.ensemble import ExtraTreesClassifier

        if self.label not in data.columns:
            raise InputValidationError(
                InputProblem("training data", None, self.label, "label column missing"),
                hint="give the fault class of every row (e.g. Normal, IR, B, OR)",
            )
        windows, ends, _ = self._windows(data, fitting=True)
        signals = data[self.feature_names_in_[:-1]].to_numpy(dtype=np.float64)
        std = signals.std(axis=0)
        self.constant_columns_ = [
            c for c, s in zip(self.feature_names_in_[:-1], std, strict=True) if s <= 1e-12
        ]
        n_channels = len(self.feature_names_in_) - 1
        self.feature_graph_ = vibration_feature_graph(
            n_channels, int(self.window), float(self.sample_rate)
        ).SerializeToString()
        features = self._features(windows)
        labels = data[self.label].astype(str).to_numpy()[ends]
        self.classes_ = sorted(set(labels.tolist()))
        y = np.searchsorted(np.asarray(self.classes_), labels)
        trees = ExtraTreesClassifier(
            n_estimators=int(self.n_estimators), max_features="sqrt", random_state=int(self.seed), n_jobs=1
        ).fit(features, y)
        self.feature_mean_ = features.mean(axis=0)
        classifier = to_onnx(
            trees,
            initial_types=[("features", FloatTensorType([None, features.shape[1]]))],
            target_opset={"": 17, "ai.onnx.ml": 3},
            options={id(trees): {"zipmap": False}},
        )
        self.classifier_graph_ = classifier.SerializeToString()
        self._sessions: dict[str, Any] = {}
        self.fitted_ = True
        return self

    def _features(self, windows: np.ndarray) -> np.ndarray:
        session = self._get_session("features", self.feature_graph_)
        parts = [
            session.run(["features"], {"input": windows[i : i + 256].astype(np.float32)})[0]
            for i in range(0, len(windows), 256)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def _get_session(self, key: str, model_bytes: bytes) -> Any:
        if not hasattr(self, "_sessions"):
            self._sessions = {}
        if key not in self._sessions:
            self._sessions[key] = _session(model_bytes)
        return self._sessions[key]

    def _classify(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        session = self._get_session("classifier", self.classifier_graph_)
        names = [o.name for o in session.get_outputs()]
        label, proba = session.run(names, {"features": features.astype(np.float32)})
        return np.asarray(label), np.asarray(proba)

    # ------------------------------------------------------------------ scoring
    def _outputs(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        self._check_fitted()
        windows, _, _ = self._windows(data)
        label, proba = self._classify(self._features(windows))
        return {"prediction": label, "probabilities": proba, "score": self._fault_score(proba)}

    def _fault_score(self, proba: np.ndarray) -> np.ndarray:
        if self.normal_class in self.classes_:
            return np.asarray(1.0 - proba[:, self.classes_.index(self.normal_class)], dtype=np.float64)
        return np.asarray(1.0 - proba.max(axis=1), dtype=np.float64)

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        """Fault class name per window."""
        return np.asarray(self.classes_)[self._outputs(data)["prediction"].astype(np.int64)]

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._outputs(data)["probabilities"], dtype=np.float64)

    def score(self, data: pd.DataFrame) -> np.ndarray:
        """Fault score per window: 1 - P(normal) (higher = more likely faulty)."""
        return np.asarray(self._outputs(data)["score"], dtype=np.float64)

    def explain(self, data: pd.DataFrame) -> pd.DataFrame:
        """Per channel: how much the predicted class's probability drops when that channel's
        features are replaced by their training mean (occlusion). The speed column is context,
        not a cause: its contribution is 0."""
        self._check_fitted()
        windows, _, _ = self._windows(data)
        features = self._features(windows)
        label, proba = self._classify(features)
        picked = proba[np.arange(len(label)), label.astype(np.int64)]
        n_per = len(feature_names())
        out = np.zeros((len(features), len(self.feature_names_in_)))
        for ch in range(len(self.feature_names_in_) - 1):
            occluded = features.copy()
            occluded[:, ch * n_per : (ch + 1) * n_per] = self.feature_mean_[ch * n_per : (ch + 1) * n_per]
            _, p_occ = self._classify(occluded)
            out[:, ch] = picked - p_occ[np.arange(len(label)), label.astype(np.int64)]
        return pd.DataFrame(out, columns=self.feature_names_in_)

    def evaluate(self, data: pd.DataFrame) -> dict[str, float]:
        """Window accuracy and per-class recall against the label at each window's last row."""
        _, ends, _ = self._windows(data)
        truth = data[self.label].astype(str).to_numpy()[ends]
        pred = self.predict(data)
        metrics = {"accuracy": float(np.mean(pred == truth)), "windows": float(len(truth))}
        for cls in self.classes_:
            mask = truth == cls
            if mask.any():
                metrics[f"recall_{cls}"] = float(np.mean(pred[mask] == cls))
        return with_baseline(metrics, "accuracy", majority_accuracy(truth), higher_is_better=True)

    # ------------------------------------------------------------------ bundle
    def preprocessing(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "columns": list(self.feature_names_in_),
            "group_column": self.group_column,
            "steps": self._steps(),
            "in_graph": "vibration features (FFT, envelope, order bands) + extra trees",
            "graph_input": "input",
            "outputs": {"prediction": "label", "probabilities": "probabilities", "score": "score"},
            "post": [],
            "classes": list(self.classes_),
        }

    def export_onnx(self, path: str | Path) -> Path:
        self._check_fitted()
        from axhub.registry.export import merge_models

        features = onnx.load_from_string(self.feature_graph_)
        classifier = onnx.load_from_string(self.classifier_graph_)
        for opset in classifier.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = 17
        classifier.ir_version = features.ir_version = min(features.ir_version, classifier.ir_version)
        merged = merge_models(features, classifier, [("features", "features")], prefix="clf_")
        graph = merged.graph
        out_names = [o.name for o in graph.output]
        label_out = next(n for n in out_names if "label" in n)
        proba_out = next(n for n in out_names if "probabilities" in n)
        normal = self.classes_.index(self.normal_class) if self.normal_class in self.classes_ else -1
        nodes = [
            helper.make_node("Identity", [label_out], ["label"]),
            helper.make_node("Identity", [proba_out], ["probabilities"]),
        ]
        if normal >= 0:
            graph.initializer.extend([const("normal_idx", [normal], np.int64), const("one", 1.0)])
            nodes += [
                helper.make_node("Gather", ["probabilities", "normal_idx"], ["p_normal_2d"], axis=1),
                helper.make_node("Flatten", ["p_normal_2d"], ["p_normal_flat"], axis=1),
                helper.make_node("ReduceMax", ["p_normal_flat"], ["p_normal"], axes=[1], keepdims=0),
                helper.make_node("Sub", ["one", "p_normal"], ["score"]),
            ]
        else:
            graph.initializer.extend([const("one", 1.0)])
            nodes += [
                helper.make_node("ReduceMax", ["probabilities"], ["p_max"], axes=[1], keepdims=0),
                helper.make_node("Sub", ["one", "p_max"], ["score"]),
            ]
        graph.node.extend(nodes)
        del graph.output[:]
        graph.output.extend([
            helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["N", len(self.classes_)]),
            helper.make_tensor_value_info("score", onnx.TensorProto.FLOAT, ["N"]),
        ])  # fmt: skip
        merged.ir_version = min(merged.ir_version, 9)
        onnx.checker.check_model(merged)
        return save_model(merged, path)

    def _get_state(self) -> dict[str, Any]:
        return {
            "feature_names_in": list(self.feature_names_in_),
            "constant_columns": list(self.constant_columns_),
            "classes": list(self.classes_),
            "feature_mean": np.asarray(self.feature_mean_, dtype=np.float64),
            "feature_graph": np.frombuffer(self.feature_graph_, dtype=np.uint8),
            "classifier_graph": np.frombuffer(self.classifier_graph_, dtype=np.uint8),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.feature_names_in_ = list(state["feature_names_in"])
        self.constant_columns_ = list(state["constant_columns"])
        self.classes_ = [str(c) for c in state["classes"]]
        self.feature_mean_ = np.asarray(state["feature_mean"], dtype=np.float64)
        self.feature_graph_ = np.asarray(state["feature_graph"], dtype=np.uint8).tobytes()
        self.classifier_graph_ = np.asarray(state["classifier_graph"], dtype=np.uint8).tobytes()
        self._sessions = {}
        self.fitted_ = True

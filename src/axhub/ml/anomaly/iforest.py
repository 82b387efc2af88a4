"""Isolation Forest baseline (scikit-learn; exported with skl2onnx).

Score = ``-score_samples`` (the average isolation depth, normalised: higher = easier to isolate =
more anomalous). A forest has no exact per-signal split, so the explanation is a documented
approximation: the score shared between signals in proportion to each signal's squared
standardised deviation from the training mean (summed over the lags of a window).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx import helper
from sklearn.ensemble import IsolationForest

from axhub.core.cancel import checkpoint
from axhub.ml.anomaly.base import AnomalyEstimator
from axhub.registry.export import OPSET, const, save_model, standardize_nodes

TREES_PER_STEP = 50


class IForest(AnomalyEstimator):
    """Isolation Forest on standardised rows (or flattened windows)."""

    name: ClassVar[str] = "iforest"

    def __init__(
        self,
        columns: list[str] | None = None,
        n_estimators: int = 100,
        max_samples: int = 256,
        window: int = 1,
        smooth: int = 1,
        quantile: float = 0.99,
        threshold_margin: float = 1.0,
        calibration_folds: int = 5,
        label: str = "anomaly",
        group: str | None = None,
        seed: int = 0,
    ) -> None:
        self.columns = columns
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.window = window
        self.smooth = smooth
        self.quantile = quantile
        self.threshold_margin = threshold_margin
        self.calibration_folds = calibration_folds
        self.label = label
        self.group = group
        self.seed = seed

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n_estimators": 30, "window": 2, "calibration_folds": 3}

    def _standardise(self, graph_input: np.ndarray) -> np.ndarray:
        mean, scale = self._tiled_stats()
        return (graph_input - mean) / scale

    def _fit_core(self, graph_input: np.ndarray) -> IsolationForest:
        x = self._standardise(graph_input).astype(np.float32)  # float32 like the ONNX graph
        forest = IsolationForest(
            n_estimators=0,
            max_samples=min(int(self.max_samples), len(graph_input)),
            random_state=int(self.seed),
            warm_start=True,
        )
        # Grown TREES_PER_STEP trees at a time with a cancel checkpoint between: warm start with
        # the same seed grows exactly the trees one fit would, and a cancelled job stops here.
        total = int(self.n_estimators)
        while forest.n_estimators < total:
            checkpoint()
            forest.set_params(n_estimators=min(total, forest.n_estimators + TREES_PER_STEP))
            forest.fit(x)
        return forest

    def _compute(self, core: IsolationForest | _OnnxForest, graph_input: np.ndarray) -> dict[str, np.ndarray]:
        z = self._standardise(graph_input)
        score = -core.score_samples(z.astype(np.float32))
        share = self._per_signal(z**2) + 1e-12
        contributions = share / share.sum(axis=1, keepdims=True) * score[:, None]
        return {"score": score, "contributions": contributions}

    # ------------------------------------------------------------- state: the fitted forest
    # A fitted forest is stored as its own ONNX graph (bytes in a uint8 .npy), never pickled;
    # after load the Python twin scores through that graph with onnxruntime.
    def _core_state(self) -> dict[str, Any]:
        d = self._tiled_stats()[0].shape[0]
        raw = self._forest_onnx(self.core_, d).SerializeToString()
        return {"forest_onnx": np.frombuffer(raw, dtype=np.uint8), "forest_offset": float(self.core_.offset_)}

    def _set_core_state(self, state: dict[str, Any]) -> _OnnxForest:
        raw = np.asarray(state["forest_onnx"], dtype=np.uint8).tobytes()
        return _OnnxForest(raw, float(state["forest_offset"]))

    # ------------------------------------------------------------- ONNX
    def _forest_onnx(self, forest: IsolationForest | _OnnxForest, n_inputs: int) -> onnx.ModelProto:
        if isinstance(forest, _OnnxForest):
            return onnx.load_from_string(forest.model_bytes)
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        return to_onnx(
            forest,
            initial_types=[("z", FloatTensorType([None, n_inputs]))],
            target_opset={"": OPSET, "ai.onnx.ml": 3},
        )

    def _export_core(self, path: Path) -> Path:
        mean, scale = self._tiled_stats()
        d = mean.shape[0]
        n_features = len(self.feature_names_in_)
        forest_model = self._forest_onnx(self.core_, d)
        graph = forest_model.graph
        std_nodes, inits = standardize_nodes("input", "z", mean, scale)
        scores_name = graph.output[1].name  # skl2onnx: (label, scores = decision_function)
        inits += [
            const("offset", float(self.core_.offset_)),
            const("score_shape", [-1], np.int64),
            const("lag_shape", [0, -1, n_features], np.int64),
            const("axis1", [1], np.int64),
            const("eps", 1e-12),
        ]
        nodes = [
            # -score_samples = -(decision_function + offset_)
            helper.make_node("Reshape", [scores_name, "score_shape"], ["decision"]),
            helper.make_node("Add", ["decision", "offset"], ["score_samples"]),
            helper.make_node("Neg", ["score_samples"], ["score"]),
            helper.make_node("Mul", ["z", "z"], ["z2"]),
            helper.make_node("Reshape", ["z2", "lag_shape"], ["z2_3d"]),
            helper.make_node("ReduceSum", ["z2_3d", "axis1"], ["share_raw"], keepdims=0),
            helper.make_node("Add", ["share_raw", "eps"], ["share"]),
            helper.make_node("ReduceSum", ["share", "axis1"], ["share_total"], keepdims=1),
            helper.make_node("Div", ["share", "share_total"], ["share_norm"]),
            helper.make_node("Unsqueeze", ["score", "axis1"], ["score_col"]),
            helper.make_node("Mul", ["share_norm", "score_col"], ["contributions"]),
        ]
        forest_nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend(std_nodes + forest_nodes + nodes)  # topological order
        graph.initializer.extend(inits)
        del graph.input[:]
        graph.input.append(helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", d]))
        del graph.output[:]
        graph.output.extend(
            [
                helper.make_tensor_value_info("score", onnx.TensorProto.FLOAT, ["N"]),
                helper.make_tensor_value_info("contributions", onnx.TensorProto.FLOAT, ["N", n_features]),
            ]
        )
        forest_model.ir_version = min(forest_model.ir_version, 9)
        onnx.checker.check_model(forest_model)
        return save_model(forest_model, path)


class _OnnxForest:
    """A reloaded forest: ``score_samples`` through its ONNX graph (input ``z``)."""

    def __init__(self, model_bytes: bytes, offset: float) -> None:
        import onnxruntime as ort

        self.model_bytes = model_bytes
        self.offset_ = offset
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self._session = ort.InferenceSession(model_bytes, sess_options=options, providers=providers)
        self._scores = self._session.get_outputs()[1].name

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        (decision,) = self._session.run([self._scores], {"z": z.astype(np.float32)})
        return np.asarray(decision, dtype=np.float64).reshape(-1) + self.offset_

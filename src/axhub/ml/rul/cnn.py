"""Remaining useful life with a 1D-CNN over regime-normalised windows (torch; ONNX export).

The network reads a window of ``window`` cycles (all sensors plus the scaled age) and has three
convolutions, then the time-average and the last step of the feature maps, a small dense head
and ``cap * output`` (the piecewise-linear target scaled to 0..1). Training rows before a full
window are padded with the unit's first row, as in :mod:`.gbm`.

Intervals: split-conformal. The model is trained on ``1 - calibration_fraction`` of the units
and its residuals on the held-out units give the offsets. With ``refit=True`` a final model is
then trained on every unit with the same recipe (better use of data, twice the training time;
its residuals are, if anything, smaller than the calibrated ones).
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
from axhub.ml.rul.features import padded_windows
from axhub.ml.rul.synthetic import SYNTH_SETTINGS
from axhub.ml.rul.target import piecewise_rul
from axhub.registry.bundle import apply_row_steps, group_slices
from axhub.registry.export import const, save_model


def _build_network(mask: np.ndarray, channels: int, hidden: int, dropout: float) -> Any:
    """The CNN; ``mask`` (one 0/1 per input signal) silences signals that were constant in
    training, inside the network so that the exported graph does the same."""
    import torch
    from torch import nn

    n_inputs = len(mask)

    class RulNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mask", torch.tensor(mask, dtype=torch.float32))
            self.conv = nn.Sequential(
                nn.Conv1d(n_inputs, channels, 5, padding=2),
                nn.ReLU(),
                nn.Conv1d(channels, channels, 5, padding=2),
                nn.ReLU(),
                nn.Conv1d(channels, channels, 3, padding=1),
                nn.ReLU(),
            )
            self.head = nn.Sequential(
                nn.Linear(2 * channels, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
            )

        def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (N, L, F) -> (N,)
            mask: torch.Tensor = self.mask  # type: ignore[assignment]
            maps = self.conv((windows * mask).transpose(1, 2))
            pooled = torch.cat([maps.mean(dim=2), maps[:, :, -1]], dim=1)
            return self.head(pooled)[:, 0]

    return RulNet()


class RulCNN(RulWindowEstimator):
    """1D-CNN RUL regressor."""

    name: ClassVar[str] = "cnn"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    age_scale: ClassVar[float] = 100.0
    flatten_windows: ClassVar[bool] = False

    def __init__(
        self,
        columns: list[str] | None = None,
        regime_columns: list[str] | None = None,
        group: str | None = "unit",
        age_column: str | None = "cycle",
        target: str | None = None,
        window: int = 60,
        cap: float = 125.0,
        channels: int = 32,
        hidden: int = 64,
        dropout: float = 0.2,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 3e-3,
        coverage: float = 0.9,
        interval_horizon: float | None = None,
        calibration_fraction: float = 0.2,
        refit: bool = False,
        max_regimes: int = 8,
        seed: int = 0,
        beyond_cap: bool = True,
        phm_shift: bool = True,
    ) -> None:
        self.columns = columns
        self.regime_columns = regime_columns
        self.group = group
        self.age_column = age_column
        self.target = target
        self.window = window
        self.cap = cap
        self.channels = channels
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.coverage = coverage
        self.interval_horizon = interval_horizon
        self.calibration_fraction = calibration_fraction
        self.refit = refit
        self.max_regimes = max_regimes
        self.seed = seed
        self.beyond_cap = beyond_cap
        self.phm_shift = phm_shift

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {
            "regime_columns": list(SYNTH_SETTINGS),
            "window": 10,
            "cap": 60.0,
            "channels": 8,
            "hidden": 16,
            "epochs": 3,
            "calibration_fraction": 0.25,
        }

    def _in_graph_doc(self) -> str:
        return "1D-CNN, conformal interval offsets"

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame) -> Self:
        x = self._validate(data, where="training data", fitting=True)
        self._fit_normalisation(data, x)
        z = apply_row_steps(x, [self._row_step()], self._extra_columns_from(data))
        slices = group_slices(self._groups(data), len(x))
        windows = np.concatenate([padded_windows(z[rows], int(self.window)) for rows in slices]).astype(
            np.float32
        )
        true_by_row = self._true_rul(data, slices)
        true = true_by_row[np.concatenate(slices)]
        y = (piecewise_rul(true, float(self.cap)) / float(self.cap)).astype(np.float32)
        unit = np.concatenate([np.full(len(rows), k) for k, rows in enumerate(slices)])
        n_units = len(slices)
        n_cal = round(float(self.calibration_fraction) * n_units)
        if n_cal >= 1 and n_units - n_cal >= 1:
            held_units = np.random.default_rng(int(self.seed)).permutation(n_units)[:n_cal]
            held = np.isin(unit, held_units)
            calibration_net = self._train(windows[~held], y[~held])
            age = x[np.concatenate(slices), self.age_idx_][held] if self.age_idx_ >= 0 else None
            held_pred = self._predict_torch(calibration_net, windows[held])
            final = self._fit_beyond_cap(held_pred, true[held], age, self._lives(data, slices, true_by_row))
            self._conformal_offsets(final, true[held])
            self.net_ = self._train(windows, y) if self.refit else calibration_net
        else:  # no units held out: in-sample residuals (optimistic intervals), one training
            self.net_ = self._train(windows, y)
            final = self._fit_beyond_cap(self._predict_torch(self.net_, windows), true, None, None)
            self._conformal_offsets(final, true)
        self.graph_bytes_ = self._export_bytes()
        self._session = None
        self.fitted_ = True
        return self

    def _train(self, windows: np.ndarray, y: np.ndarray) -> Any:
        from axhub.ml.threads import limited_torch_threads

        with limited_torch_threads():
            return self._train_network(windows, y)

    def _train_network(self, windows: np.ndarray, y: np.ndarray) -> Any:
        import torch

        from axhub.ml import device as devices

        torch.manual_seed(int(self.seed))
        dev = devices.current()  # a GPU when the job asks for one (see ml/device.py)
        with devices.deterministic(dev):
            net = _build_network(self._mask(), int(self.channels), int(self.hidden), float(self.dropout))
            net.to(dev)
            optimiser = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate) / 3)
            steps = int(self.epochs) * max(1, -(-len(windows) // int(self.batch_size)))
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimiser, float(self.learning_rate), total_steps=steps
            )
            data, target = torch.from_numpy(windows).to(dev), torch.from_numpy(y).to(dev)
            generator = torch.Generator().manual_seed(int(self.seed))
            net.train()
            for _ in range(int(self.epochs)):
                checkpoint()  # a cancelled job stops between epochs
                order = torch.randperm(len(data), generator=generator).to(dev)
                for start in range(0, len(data), int(self.batch_size)):
                    batch = order[start : start + int(self.batch_size)]
                    loss = ((net(data[batch]) - target[batch]) ** 2).mean()
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    schedule.step()
            net.eval()
        return net.cpu()  # prediction, state and ONNX export work on the CPU copy

    def _mask(self) -> np.ndarray:
        return np.asarray([0.0 if n in self.constant_columns_ else 1.0 for n in self.feature_names_in_])

    def _predict_torch(self, net: Any, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return np.asarray(
                net(torch.from_numpy(windows.astype(np.float32))).numpy(), dtype=np.float64
            ) * float(self.cap)

    # ------------------------------------------------------------------ ONNX graph
    def _export_bytes(self) -> bytes:
        import tempfile

        import torch

        class Scaled(torch.nn.Module):
            def __init__(self, net: Any, cap: float) -> None:
                super().__init__()
                self.net = net
                self.cap = cap

            def forward(self, windows: torch.Tensor) -> torch.Tensor:
                return self.net(windows) * self.cap

        dummy = torch.zeros(2, int(self.window), len(self.feature_names_in_), dtype=torch.float32)
        with tempfile.TemporaryDirectory(prefix="axhub-rul-cnn-") as tmp:
            path = Path(tmp) / "cnn.onnx"
            self._torch_export(Scaled(self.net_, float(self.cap)).eval(), dummy, path)
            model = onnx.load(str(path))
        # the age at the window's last step (the row step divided it by age_scale)
        nodes = [
            helper.make_node("Reshape", ["rul_raw", "yc_shape"], ["yc_flat"]),
            helper.make_node("Gather", ["input", "last_step"], ["last_row"], axis=1),
            helper.make_node("Gather", ["last_row", "age_column"], ["age_scaled"], axis=1),
            helper.make_node("Mul", ["age_scaled", "age_unscale"], ["age_last"]),
        ]
        inits = [
            const("yc_shape", [-1], np.int64),
            const("last_step", int(self.window) - 1, np.int64),
            const("age_column", max(self.age_idx_, 0), np.int64),
            const("age_unscale", float(self.age_scale) if self.age_idx_ >= 0 else 0.0),
        ]
        beyond, beyond_inits = self._beyond_cap_nodes("yc_flat", "age_last", "rul_beyond")
        tail, tail_inits = self._interval_tail("rul_beyond")
        graph = model.graph
        graph.node.extend([*nodes, *beyond, *tail])
        graph.initializer.extend([*inits, *beyond_inits, *tail_inits])
        del graph.output[:]
        graph.output.extend(self._rul_outputs())
        model.ir_version = min(model.ir_version, 9)
        onnx.checker.check_model(model)
        return bytes(model.SerializeToString())

    @staticmethod
    def _torch_export(module: Any, dummy: Any, path: Path) -> None:
        import torch

        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["rul_raw"],
            dynamic_axes={"input": {0: "N"}, "rul_raw": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )

    def _run_graph(self, graph_input: np.ndarray) -> dict[str, np.ndarray]:
        session = self._session_for(self.graph_bytes_)
        rul, lower, upper, capped = session.run(
            ["rul", "rul_lower", "rul_upper", "rul_capped"], {"input": graph_input.astype(np.float32)}
        )
        return {"prediction": rul, "lower": lower, "upper": upper, "capped": capped}

    def explain(self, data: pd.DataFrame) -> pd.DataFrame:
        """Per-signal contribution (cycles): prediction minus the prediction with that signal's
        window held at its regime mean (occlusion)."""
        self._check_fitted()
        self._check_regime_columns(data, "input")

        def occlusion(graph_input: np.ndarray) -> dict[str, np.ndarray]:
            base = self._run_graph(graph_input)["prediction"]
            out = np.zeros((len(graph_input), len(self.feature_names_in_)))
            for j in range(len(self.feature_names_in_)):
                occluded = graph_input.copy()
                occluded[:, :, j] = 0.0 if j != self.age_idx_ else occluded[:, -1:, j]
                out[:, j] = base - self._run_graph(occluded)["prediction"]
            return {"contributions": out}

        return pd.DataFrame(
            self._run_pipeline(data, occlusion)["contributions"],
            columns=self.feature_names_in_,
            index=data.index,
        )

    # ------------------------------------------------------------------ bundle
    def export_onnx(self, path: str | Path) -> Path:
        self._check_fitted()
        return save_model(onnx.load_from_string(self.graph_bytes_), path)

    def _get_state(self) -> dict[str, Any]:
        return {**self._base_state(), "graph": np.frombuffer(self.graph_bytes_, dtype=np.uint8)}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._set_base_state(state)
        self.graph_bytes_ = np.asarray(state["graph"], dtype=np.uint8).tobytes()

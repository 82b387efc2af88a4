"""Windowed 1-D convolutional autoencoder (torch, small; trains on a GPU when the job has one).

Windows of ``window`` rows x F signals are standardised (inside the network, so the ONNX graph
takes raw values), encoded by two strided convolutions to a ``window/4 x latent`` code and decoded
by two transposed convolutions. Score = mean squared reconstruction error over the window;
the per-signal contribution is each signal's share of that mean (they sum to the score).
Training is deterministic under ``seed`` (``torch.manual_seed`` + deterministic algorithms,
shuffling from a seeded generator). The state is stored as ``.npy`` arrays of the state_dict.
torch is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from axhub.core.cancel import checkpoint
from axhub.ml.anomaly.base import AnomalyEstimator

if TYPE_CHECKING:
    import torch


def _build_network(n_features: int, hidden: int, latent: int, mean: np.ndarray, scale: np.ndarray) -> Any:
    import torch
    from torch import nn

    class ConvAutoencoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("inv_scale", torch.tensor(1.0 / scale, dtype=torch.float32))
            self.encoder = nn.Sequential(
                nn.Conv1d(n_features, hidden, 5, stride=2, padding=2),
                nn.ReLU(),
                nn.Conv1d(hidden, latent, 5, stride=2, padding=2),
                nn.ReLU(),
            )
            self.decoder = nn.Sequential(
                nn.ConvTranspose1d(latent, hidden, 4, stride=2, padding=1),
                nn.ReLU(),
                nn.ConvTranspose1d(hidden, n_features, 4, stride=2, padding=1),
            )

        def standardise(self, x: torch.Tensor) -> torch.Tensor:
            mean: torch.Tensor = self.mean  # type: ignore[assignment]  # registered buffers
            inv_scale: torch.Tensor = self.inv_scale  # type: ignore[assignment]
            return (x - mean) * inv_scale

        def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
            # (N, L, F) -> channels first for Conv1d and back
            return self.decoder(self.encoder(z.transpose(1, 2))).transpose(1, 2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = self.standardise(x)
            error = (self.reconstruct(z) - z) ** 2
            contributions = error.mean(dim=1) / z.shape[2]  # (N, F); sums to the mean error
            return contributions.sum(dim=1), contributions

    return ConvAutoencoder()


class ConvAE(AnomalyEstimator):
    """Convolutional autoencoder on sliding windows; reconstruction error as the score."""

    name: ClassVar[str] = "conv_ae"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    flatten_windows: ClassVar[bool] = False

    def __init__(
        self,
        columns: list[str] | None = None,
        window: int = 32,
        hidden: int = 32,
        latent: int = 8,
        epochs: int = 40,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        smooth: int = 1,
        quantile: float = 0.99,
        threshold_margin: float = 1.0,
        calibration_folds: int = 3,
        label: str = "anomaly",
        group: str | None = None,
        seed: int = 0,
    ) -> None:
        self.columns = columns
        self.window = window
        self.hidden = hidden
        self.latent = latent
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.smooth = smooth
        self.quantile = quantile
        self.threshold_margin = threshold_margin
        self.calibration_folds = calibration_folds
        self.label = label
        self.group = group
        self.seed = seed

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"window": 8, "hidden": 8, "latent": 4, "epochs": 3, "calibration_folds": 2}

    def _check_window(self) -> None:
        if self.window_length < 4 or self.window_length % 4:
            raise ValueError(f"window must be a multiple of 4 (two stride-2 layers), got {self.window}")

    def _new_network(self) -> Any:
        return _build_network(
            len(self.feature_names_in_), int(self.hidden), int(self.latent), self.mean_, self.scale_
        )

    def _fit_core(self, graph_input: np.ndarray) -> Any:
        from axhub.ml.threads import limited_torch_threads

        with limited_torch_threads():
            return self._fit_network(graph_input)

    def _fit_network(self, graph_input: np.ndarray) -> Any:
        import torch

        from axhub.ml import device as devices

        self._check_window()
        torch.manual_seed(int(self.seed))
        dev = devices.current()  # a GPU when the job asks for one (see ml/device.py)
        with devices.deterministic(dev):
            net = self._new_network().to(dev)
            optimiser = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate))
            data = torch.tensor(graph_input, dtype=torch.float32, device=dev)
            generator = torch.Generator().manual_seed(int(self.seed))
            net.train()
            for _ in range(int(self.epochs)):
                checkpoint()  # a cancelled job stops between epochs
                order = torch.randperm(len(data), generator=generator).to(dev)
                for start in range(0, len(data), int(self.batch_size)):
                    batch = data[order[start : start + int(self.batch_size)]]
                    z = net.standardise(batch)
                    loss = ((net.reconstruct(z) - z) ** 2).mean()
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
            net.eval()
        return net.cpu()  # scoring, state and ONNX export work on the CPU copy

    def _compute(self, core: Any, graph_input: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            score, contributions = core(torch.tensor(graph_input, dtype=torch.float32))
        return {
            "score": score.numpy().astype(np.float64),
            "contributions": contributions.numpy().astype(np.float64),
        }

    # ------------------------------------------------------------- state (npy arrays, no pickle)
    def _core_state(self) -> dict[str, Any]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.core_.state_dict().items()}

    def _set_core_state(self, state: dict[str, Any]) -> Any:
        import torch

        net = self._new_network()
        weights = {
            k[len("net.") :]: torch.from_numpy(np.asarray(v))
            for k, v in state.items()
            if k.startswith("net.")
        }
        net.load_state_dict(weights)
        net.eval()
        return net

    # ------------------------------------------------------------- ONNX
    def _export_core(self, path: Path) -> Path:
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        dummy = torch.zeros(2, self.window_length, len(self.feature_names_in_), dtype=torch.float32)
        torch.onnx.export(
            self.core_,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["score", "contributions"],
            dynamic_axes={"input": {0: "N"}, "score": {0: "N"}, "contributions": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )
        return path

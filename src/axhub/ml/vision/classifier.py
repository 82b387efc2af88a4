"""Supervised defect classification on the frozen EfficientNet-Lite0 backbone.

When labelled defect images exist, a linear head on pretrained features separates the classes
(``good`` vs one or more defect classes). The backbone stays frozen (a *linear probe*): on a
CPU this trains in seconds once the features are computed, and with few defect images it
overfits far less than fine-tuning every layer.

Features: for each requested stage (default the ends of stages 5 and 7), the global average
*and* global max of every channel; max pooling keeps small local defects visible that an
average over the whole part would wash out. Features are standardised with the training
statistics (inside the graph), then a linear layer with L2 weight decay is trained full-batch
with L-BFGS on cross-entropy.

Calibration: ``validation_fraction`` of the labelled images (stratified) is held out; the head
is trained on the rest and a single temperature ``T`` is fitted on the held-out logits by
minimising the negative log-likelihood (temperature scaling, Guo et al. 2017). Probabilities
are ``softmax(logits / T)``; the held-out expected calibration error before and after is kept
in ``calibration_``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from axhub.core.errors import InputValidationError, problem
from axhub.ml.base import ExampleData
from axhub.ml.vision.backbone import LiteFeatures, to_tensor
from axhub.ml.vision.base import VisionEstimator, check_same_length, images_of, labels_of
from axhub.ml.vision.images import is_good_label


class PooledFeatures(nn.Module):
    """Raw pixels → concatenated global average and max of each stage's channels."""

    def __init__(self, input_size: int, stages: Sequence[int]) -> None:
        super().__init__()
        self.features = LiteFeatures(input_size, stages)

    @property
    def dim(self) -> int:
        return 2 * sum(self.features.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for m in self.features(x):
            parts.append(m.mean(dim=(2, 3)))
            parts.append(m.amax(dim=(2, 3)))
        return torch.cat(parts, dim=1)


def calibrated_outputs(
    logits: torch.Tensor, temperature: float, good_index: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What an exported classifier answers: class probabilities at temperature ``T``, the
    predicted class, and the not-good score (1 - P(good), or 1 - the top probability when no
    class is the good one)."""
    proba = F.softmax(logits / temperature, dim=1)
    prediction = proba.argmax(dim=1)
    score = 1.0 - proba[:, good_index] if good_index is not None else 1.0 - proba.max(dim=1).values
    return proba, prediction, score


class ClassifierGraph(nn.Module):
    """Raw pixels → (probabilities (N, K), prediction (N,), score = P(not good) (N,))."""

    def __init__(
        self,
        pooled: PooledFeatures,
        mean: torch.Tensor,
        scale: torch.Tensor,
        head: nn.Linear,
        temperature: float,
        good_index: int | None,
    ) -> None:
        super().__init__()
        self.pooled = pooled
        self.mean: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.head = head
        self.temperature = float(temperature)
        self.good_index = good_index

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.pooled(x) - self.mean) / self.scale
        return self.head(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return calibrated_outputs(self.logits(x), self.temperature, self.good_index)


def _ece(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-class probability."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            total += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(total)


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature minimising held-out NLL (optimised on log T so it stays positive).

    When every held-out image is already classified correctly the NLL keeps falling as T → 0,
    so the "fit" would only sharpen every probability to 0 or 1 (a casting run hit the lower
    clip this way): then nothing can be learnt about calibration and T stays 1.
    """
    if len(y) == 0 or bool((logits.argmax(dim=1) == y).all()):
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 100.0))


class DefectClassifier(VisionEstimator):
    """Good vs defect (or several defect classes) from labelled images, with calibrated probabilities."""

    name: ClassVar[str] = "classifier"

    def __init__(
        self,
        input_size: int = 224,
        stages: Sequence[int] = (5, 7),
        weight_decay: float = 1e-3,
        max_iter: int = 300,
        validation_fraction: float = 0.15,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.input_size = input_size
        self.stages = list(stages)
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.batch_size = batch_size
        self.seed = seed
        self.graph_: ClassifierGraph | None = None
        self.classes_: list[str] = []
        self.calibration_: dict[str, float] = {}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"input_size": 64, "max_iter": 50, "batch_size": 8}

    @classmethod
    def example_data(cls, seed: int = 0) -> ExampleData:
        from axhub.sim.images import make_part_images

        def frame(parts: list[Any]) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "image": [p.image for p in parts],
                    "label": ["good" if p.defect is None else "defect" for p in parts],
                }
            )

        return ExampleData(
            train=frame(make_part_images(8, 8, seed=seed + 1, size=64)),
            test=frame(make_part_images(3, 3, seed=seed + 2, size=64)),
            labels=["label"],
        )

    # -- training -------------------------------------------------------------------------
    def features(
        self, pooled: PooledFeatures, images: Sequence[np.ndarray], progress: Any = None
    ) -> torch.Tensor:
        from axhub.ml import device as devices

        chunks = []
        with torch.inference_mode(), devices.placed(pooled) as dev:  # a GPU when the job has one
            step = devices.inference_batch(self.batch_size, dev)
            for start in range(0, len(images), step):
                x = to_tensor(images[start : start + step], self.input_size).to(dev)
                with devices.autocast(dev):  # bf16 on a GPU (bench gpu reports the error vs fp32)
                    chunks.append(pooled(x).float().cpu())
                if progress is not None:
                    progress(min(start + step, len(images)), len(images))
        return torch.cat(chunks)

    def fit(self, data: Any, progress: Any = None, features: torch.Tensor | None = None) -> Self:
        """Train on labelled images. ``features`` may pass precomputed pooled features (same
        order as the images) so a benchmark need not run the backbone twice."""
        labels, y_all = self._targets(data)
        torch.manual_seed(self.seed)
        pooled = PooledFeatures(self.input_size, self.stages)
        if features is None:
            imgs = images_of(data, "training data", lazy=True)  # read a batch at a time
            check_same_length(imgs, labels)
            features = self.features(pooled, imgs, progress)
        x_all = features.float()
        train_idx, val_idx = self._split(y_all.numpy())
        x_tr, y_tr = x_all[train_idx], y_all[train_idx]
        mean = x_tr.mean(dim=0)
        scale = x_tr.std(dim=0).clamp(min=1e-6)
        z_tr = (x_tr - mean) / scale
        head = nn.Linear(x_all.shape[1], len(self.classes_))
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        opt = torch.optim.LBFGS(
            head.parameters(), lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(head(z_tr), y_tr) + self.weight_decay * (head.weight**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        head.eval()
        temperature = 1.0
        if len(val_idx):
            with torch.no_grad():
                val_logits = head((x_all[val_idx] - mean) / scale)
            temperature = self._calibrate(val_logits, y_all[val_idx])
        good = [i for i, c in enumerate(self.classes_) if is_good_label(c)]
        for p in head.parameters():
            p.requires_grad_(False)
        self.graph_ = ClassifierGraph(
            pooled, mean, scale, head, temperature, good[0] if good else None
        ).eval()
        self.fitted_ = True
        return self

    def _targets(self, data: Any) -> tuple[np.ndarray, torch.Tensor]:
        """The labels and each one's class index; sets ``classes_`` (sorted). Refuses data
        without labels or with fewer than two classes."""
        labels = labels_of(data)
        if labels is None:
            raise InputValidationError(problem("training data", None, "label", "vision_needs_labels"))
        label_text = [str(v) for v in labels]
        self.classes_ = sorted(set(label_text))
        if len(self.classes_) < 2:
            shown = ", ".join(self.classes_)
            raise InputValidationError(
                problem("training data", None, "label", "vision_one_class", classes=shown)
            )
        return labels, torch.tensor([self.classes_.index(v) for v in label_text])

    def _calibrate(self, val_logits: torch.Tensor, y_val: torch.Tensor) -> float:
        """Fit the softmax temperature on the hold-out and record what it did in ``calibration_``."""
        temperature = fit_temperature(val_logits, y_val)
        before = F.softmax(val_logits, dim=1).numpy()
        after = F.softmax(val_logits / temperature, dim=1).numpy()
        self.calibration_ = {
            "n_validation": float(len(y_val)),
            "temperature": temperature,
            "validation_accuracy": float((after.argmax(1) == y_val.numpy()).mean()),
            "ece_before": _ece(before, y_val.numpy()),
            "ece_after": _ece(after, y_val.numpy()),
        }
        return temperature

    def _split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stratified hold-out for temperature scaling (none when a class is too small)."""
        rng = np.random.default_rng(self.seed)
        train: list[int] = []
        val: list[int] = []
        for cls in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == cls))
            n_val = round(self.validation_fraction * len(idx))
            if len(idx) - n_val < 1 or n_val < 1:
                n_val = 0
            val.extend(idx[:n_val])
            train.extend(idx[n_val:])
        return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))

    # -- inference ------------------------------------------------------------------------
    def _graph(self) -> ClassifierGraph:
        self._check_fitted()
        assert self.graph_ is not None
        return self.graph_

    def _outputs(self, data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        graph = self._graph()
        imgs = images_of(data)
        probas, preds, scores = [], [], []
        with torch.inference_mode():
            for start in range(0, len(imgs), self.batch_size):
                p, k, s = graph(to_tensor(imgs[start : start + self.batch_size], self.input_size))
                probas.append(p.numpy())
                preds.append(k.numpy())
                scores.append(s.numpy())
        return np.concatenate(probas), np.concatenate(preds), np.concatenate(scores)

    def predict_proba(self, data: Any) -> np.ndarray:
        return self._outputs(data)[0]

    def predict(self, data: Any) -> np.ndarray:
        """Class labels (strings from ``classes_``)."""
        return np.asarray(self.classes_)[self._outputs(data)[1]]

    def score(self, data: Any) -> np.ndarray:
        """Probability that the part is not good (1 − P(good))."""
        return self._outputs(data)[2]

    def explain(self, data: Any) -> np.ndarray:
        """Calibrated class probabilities (N, K); per-pixel heatmaps come from PatchCore."""
        return self.predict_proba(data)

    def evaluate(self, data: Any) -> dict[str, float]:
        from sklearn.metrics import roc_auc_score

        labels = labels_of(data)
        if labels is None:
            raise ValueError("evaluate needs labelled data (a 'label' column)")
        _proba, pred, score = self._outputs(data)
        truth = np.asarray([str(v) for v in labels])
        out = {"n": float(len(truth)), "accuracy": float((np.asarray(self.classes_)[pred] == truth).mean())}
        y_defect = np.array([not is_good_label(v) for v in truth])
        if 0 < y_defect.sum() < len(y_defect):
            out["auroc"] = float(roc_auc_score(y_defect, score))
        return out

    # -- persistence and export -----------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        g = self._graph()
        return {
            "mean": g.mean.numpy(),
            "scale": g.scale.numpy(),
            "weight": g.head.weight.detach().numpy(),
            "bias": g.head.bias.detach().numpy(),
            "temperature": g.temperature,
            "good_index": g.good_index,
            "classes": self.classes_,
            "calibration": self.calibration_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        weight = torch.from_numpy(np.asarray(state["weight"], dtype=np.float32))
        head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(torch.from_numpy(np.asarray(state["bias"], dtype=np.float32)))
        head.requires_grad_(False)
        self.graph_ = ClassifierGraph(
            PooledFeatures(self.input_size, self.stages),
            torch.from_numpy(np.asarray(state["mean"], dtype=np.float32)),
            torch.from_numpy(np.asarray(state["scale"], dtype=np.float32)),
            head,
            float(state["temperature"]),
            state.get("good_index"),
        ).eval()
        self.classes_ = [str(c) for c in state["classes"]]
        self.calibration_ = dict(state.get("calibration", {}))
        self.fitted_ = True

    def preprocessing(self) -> dict[str, Any]:
        return {
            "format": "axhub-preprocessing/1",
            "columns": [],
            "graph_input": "image",
            "outputs": {"probabilities": "probabilities", "prediction": "prediction", "score": "score"},
            "classes": self.classes_,
            "in_graph": (
                f"raw pixels float32 (N, 1|3, H, W) in 0..255 -> grayscale to 3 channels -> bilinear "
                f"resize to {self.input_size}x{self.input_size} -> (x-127)/128 -> EfficientNet-Lite0 "
                f"stages {list(self.stages)} global avg+max -> standardise -> linear -> softmax(logits/T)"
            ),
            "image": {"layout": "NCHW", "range": [0, 255], "channels": [1, 3], "input_size": self.input_size},
        }

    def export_onnx(self, path: str | Path) -> Path:
        from axhub.ml.vision.onnx_export import export_graph

        dummy = torch.full((1, 3, self.input_size, self.input_size), 127.0)
        return export_graph(self._graph(), dummy, Path(path), ["probabilities", "prediction", "score"])

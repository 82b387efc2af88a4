"""PatchCore-style anomaly detection trained on good images only.

How it works (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", 2022):

1. **Patch features.** A frozen, ImageNet-pretrained EfficientNet-Lite0 (``backbone.py``) gives
   low/mid-level feature maps: by default the ends of stage 2 (stride 4, 24 channels) and stage 3
   (stride 8, 40 channels). Each map is locally averaged (3×3, stride 1) so a patch feature
   sees its neighbourhood, the deeper map is bilinearly upsampled to the shallower one's grid and
   both are concatenated: one 64-d vector per patch (56×56 patches at 224 px input).
   Why these stages: on a validation split drawn from the casting *training* data (150 good
   images in the bank, 50 other good + 50 defective), stages (2, 3) gave image AUROC 0.963
   against 0.81 for stages (3, 5) and 0.78 for (4, 5); Lite0 is a small network, so its
   general-purpose texture features sit earlier than a WideResNet's layer2/layer3.
2. **Memory bank.** All patch vectors of the training images are pooled and subsampled with
   greedy k-centre coreset selection (on a random projection to ``coreset_projection`` dims, as
   in the paper), keeping ``bank_size`` vectors that cover the good-patch distribution.
3. **Scores.** A patch's anomaly score is the Euclidean distance to its nearest bank vector
   (k = 1, computed as matrix products: ‖x‖² − 2·x·mᵀ + ‖m‖²). The image score is the largest
   patch score. The heatmap is the patch-score grid upsampled to the input size and smoothed with
   a Gaussian (σ = ``heatmap_sigma`` pixels at model resolution), then resized to the image.
4. **Threshold from good images only.** ``fit`` holds out ``calibration_fraction`` of the good
   images (never put into the bank), scores them, and sets the threshold at the
   ``threshold_quantile`` quantile of their image scores (default 0.99: about 1 % of good parts
   would be flagged). No defect image is needed. The same threshold marks heatmap pixels as
   anomalous.

Everything after the raw pixels (resize, normalise, backbone, kNN to the bank, heatmap) is one
torch module, ``PatchCoreGraph``; ``export_onnx`` writes it with the bank inside, and the Python
``score`` runs the same module, so Python and ONNX agree by construction (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from axhub.ml.vision.backbone import LiteFeatures, to_tensor
from axhub.ml.vision.base import VisionEstimator, binary_metrics, images_of, is_good_label, labels_of


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(4 * sigma))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(xs**2) / (2 * sigma**2))
    return g / g.sum()


class PatchEmbedding(nn.Module):
    """Backbone maps → locally averaged, aligned, concatenated patch features (N, D, h, w)."""

    def __init__(self, input_size: int, stages: Sequence[int]) -> None:
        super().__init__()
        self.features = LiteFeatures(input_size, stages)

    @property
    def dim(self) -> int:
        return sum(self.features.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x)
        size = maps[0].shape[-2:]
        pooled = []
        for m in maps:
            m = F.avg_pool2d(m, kernel_size=3, stride=1, padding=1, count_include_pad=False)
            if m.shape[-2:] != size:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            pooled.append(m)
        return torch.cat(pooled, dim=1)


class PatchCoreGraph(nn.Module):
    """Raw pixels (N, 1|3, H, W) in 0..255 → (image score (N,), heatmap (N, H, W))."""

    def __init__(self, embedding: PatchEmbedding, bank: torch.Tensor, input_size: int, sigma: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.bank_t: torch.Tensor
        self.bank_sq: torch.Tensor
        self.kernel_h: torch.Tensor
        self.kernel_v: torch.Tensor
        self.register_buffer("bank_t", bank.t().contiguous())
        self.register_buffer("bank_sq", (bank**2).sum(dim=1)[None, None, :])
        # Separable Gaussian (a row then a column pass): ~30x cheaper than a 2-D kernel.
        g = gaussian_kernel(sigma)
        self.register_buffer("kernel_h", g[None, None, None, :].clone())
        self.register_buffer("kernel_v", g[None, None, :, None].clone())
        self.input_size = int(input_size)
        self.pad = int(g.shape[0] // 2)

    def patch_scores(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.embedding(x)  # (N, D, h, w)
        n, d, h, w = feats.shape
        flat = feats.permute(0, 2, 3, 1).reshape(n, h * w, d)
        d2 = (flat**2).sum(dim=2, keepdim=True) - 2.0 * torch.matmul(flat, self.bank_t) + self.bank_sq
        nearest = d2.min(dim=2).values.clamp(min=0.0).sqrt()
        return nearest.reshape(n, 1, h, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = self.patch_scores(x)
        score = patches.flatten(1).max(dim=1).values
        size = (self.input_size, self.input_size)
        heat = F.interpolate(patches, size=size, mode="bilinear", align_corners=False)
        heat = F.pad(heat, [self.pad] * 4, mode="replicate")
        heat = F.conv2d(F.conv2d(heat, self.kernel_h), self.kernel_v)
        heat = F.interpolate(heat, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
        return score, heat[:, 0]


def greedy_coreset(
    features: torch.Tensor, n_select: int, *, projection: int, seed: int, progress: Any = None
) -> torch.Tensor:
    """Indices of a greedy k-centre coreset (each pick is the point farthest from those chosen)."""
    n = features.shape[0]
    if n_select >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    z = features
    if projection and features.shape[1] > projection:
        proj = torch.randn(features.shape[1], projection, generator=gen) / math.sqrt(projection)
        z = features @ proj.to(features.device)
    z_sq = (z**2).sum(dim=1)
    idx = int(torch.randint(n, (1,), generator=gen).item())
    chosen = torch.empty(n_select, dtype=torch.long)
    min_d = torch.full((n,), float("inf"), device=features.device)
    for i in range(n_select):
        chosen[i] = idx
        d = z_sq - 2.0 * (z @ z[idx]) + z_sq[idx]
        min_d = torch.minimum(min_d, d)
        idx = int(torch.argmax(min_d).item())
        if progress is not None and i % 200 == 0:
            progress(i, n_select)
    return chosen


class PatchCore(VisionEstimator):
    """Anomaly detector for images of one product, trained on good parts only.

    ``fit(images)`` takes good images (any size, grayscale or colour; see
    :mod:`axhub.ml.vision.base` for accepted forms; labelled defects in the data are dropped);
    ``score`` gives one anomaly score per image (higher = more anomalous); ``predict`` is
    ``score > threshold_``; ``explain`` gives per-pixel heatmaps at each image's own size.
    """

    name: ClassVar[str] = "patchcore"

    def __init__(
        self,
        input_size: int = 224,
        stages: Sequence[int] = (2, 3),
        bank_size: int = 2000,
        coreset_projection: int = 128,
        calibration_fraction: float = 0.2,
        threshold_quantile: float = 0.99,
        threshold_margin: float = 1.0,
        heatmap_sigma: float = 4.0,
        batch_size: int = 16,
        seed: int = 0,
    ) -> None:
        self.input_size = input_size
        self.stages = list(stages)
        self.bank_size = bank_size
        self.coreset_projection = coreset_projection
        self.calibration_fraction = calibration_fraction
        self.threshold_quantile = threshold_quantile
        self.threshold_margin = threshold_margin
        self.heatmap_sigma = heatmap_sigma
        self.batch_size = batch_size
        self.seed = seed
        self.graph_: PatchCoreGraph | None = None
        self.threshold_: float | None = None
        self.calibration_scores_: np.ndarray | None = None
        self.n_train_images_ = 0

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"input_size": 64, "bank_size": 200, "batch_size": 8}

    # -- training -------------------------------------------------------------------------
    def _build_graph(self, bank: torch.Tensor) -> PatchCoreGraph:
        embedding = PatchEmbedding(self.input_size, self.stages)
        return PatchCoreGraph(embedding, bank, self.input_size, self.heatmap_sigma).eval()

    def _embed(self, embedding: PatchEmbedding, images: list[np.ndarray]) -> torch.Tensor:
        from axhub.ml import device as devices

        chunks = []
        # On a GPU (when the job has one) the features stay there for the coreset; fp32 throughout,
        # since the bank's squared distances lose their precision in bf16.
        with torch.inference_mode(), devices.placed(embedding) as dev:
            step = devices.inference_batch(self.batch_size, dev)
            for start in range(0, len(images), step):
                x = to_tensor(images[start : start + step], self.input_size).to(dev)
                f = embedding(x)
                chunks.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]))
        return torch.cat(chunks)

    def fit(self, data: Any, progress: Any = None) -> Self:
        imgs = images_of(data, "training data")
        labels = labels_of(data)
        if labels is not None:  # train on the good parts only
            imgs = [img for img, lab in zip(imgs, labels, strict=True) if is_good_label(lab)]
            if not imgs:
                raise ValueError("no good images in the training data (labels all mark defects)")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(imgs))
        n_cal = 0
        if len(imgs) >= 2 and self.calibration_fraction > 0:
            n_cal = min(max(1, round(self.calibration_fraction * len(imgs))), len(imgs) - 1)
        cal = [imgs[i] for i in order[:n_cal]]
        bank_imgs = [imgs[i] for i in order[n_cal:]]
        embedding = PatchEmbedding(self.input_size, self.stages)
        feats = self._embed(embedding, bank_imgs)
        keep = greedy_coreset(
            feats, self.bank_size, projection=self.coreset_projection, seed=self.seed, progress=progress
        )
        bank = feats[keep.to(feats.device)].contiguous().cpu()
        self.graph_ = PatchCoreGraph(embedding, bank, self.input_size, self.heatmap_sigma)
        self.graph_.eval()
        self.n_train_images_ = len(bank_imgs)
        self.fitted_ = True
        # Threshold from good images only: the held-out good images never entered the bank, so
        # their scores show how far normal variation reaches. With a single image there is no
        # hold-out and the (optimistic) training score is used.
        self.calibration_scores_ = self.score(cal if cal else bank_imgs)
        # With few held-out images a high quantile is close to their maximum and under-states
        # the tail of normal variation; the margin (as in the sensor anomaly models) widens it.
        quantile = float(np.quantile(self.calibration_scores_, self.threshold_quantile))
        self.threshold_ = quantile * self.threshold_margin
        return self

    # -- inference ------------------------------------------------------------------------
    def _graph(self) -> PatchCoreGraph:
        self._check_fitted()
        assert self.graph_ is not None
        return self.graph_

    def score(self, data: Any) -> np.ndarray:
        graph = self._graph()
        imgs = images_of(data)
        scores: list[float] = []
        from axhub.ml import device as devices

        with torch.inference_mode(), devices.placed(graph) as dev:  # a GPU when the job has one
            step = devices.inference_batch(self.batch_size, dev)
            for start in range(0, len(imgs), step):
                x = to_tensor(imgs[start : start + step], self.input_size).to(dev)
                scores.extend(graph.patch_scores(x).flatten(1).max(dim=1).values.tolist())
        return np.asarray(scores, dtype=np.float32)

    def predict(self, data: Any) -> np.ndarray:
        scores = self.score(data)
        return scores > float(self.threshold_ if self.threshold_ is not None else np.inf)

    def explain(self, data: Any) -> np.ndarray | list[np.ndarray]:
        """Per-pixel anomaly heatmaps, each at its image's size (stacked when sizes agree)."""
        graph = self._graph()
        heatmaps = []
        with torch.inference_mode():
            for img in images_of(data):
                _, heat = graph.forward(to_tensor([img]))
                heatmaps.append(heat[0].numpy())
        if len({h.shape for h in heatmaps}) == 1:
            return np.stack(heatmaps)
        return heatmaps

    def evaluate(self, data: Any) -> dict[str, float]:
        labels = labels_of(data)
        if labels is None:
            raise ValueError("evaluate needs labelled data (a 'label' column)")
        y = np.array([not is_good_label(v) for v in labels])
        return binary_metrics(y, self.score(data), self.threshold_)

    def evaluate_scores(self, y_defect: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """Metrics of scores computed elsewhere (e.g. by the ONNX graph) at this threshold."""
        return binary_metrics(y_defect, scores, self.threshold_)

    # -- persistence and export -----------------------------------------------------------
    @property
    def bank(self) -> np.ndarray:
        return self._graph().bank_t.t().numpy()

    def _get_state(self) -> dict[str, Any]:
        return {
            "bank": self.bank.astype(np.float32),
            "threshold": self.threshold_,
            "n_train_images": self.n_train_images_,
            "calibration_scores": np.asarray(self.calibration_scores_, dtype=np.float32),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        bank = torch.from_numpy(np.asarray(state["bank"], dtype=np.float32))
        self.graph_ = self._build_graph(bank)
        self.threshold_ = state["threshold"]
        self.n_train_images_ = int(state.get("n_train_images", 0))
        self.calibration_scores_ = state.get("calibration_scores")
        self.fitted_ = True

    def preprocessing(self) -> dict[str, Any]:
        return {
            "format": "axhub-preprocessing/1",
            "columns": [],
            "graph_input": "image",
            "outputs": {"score": "score", "heatmap": "heatmap"},
            "threshold": self.threshold_,
            "in_graph": (
                f"raw pixels float32 (N, 1|3, H, W) in 0..255 -> grayscale to 3 channels -> bilinear "
                f"resize to {self.input_size}x{self.input_size} -> (x-127)/128 -> EfficientNet-Lite0 "
                f"stages {list(self.stages)} -> 3x3 average -> nearest-neighbour distance to the "
                f"memory bank ({self.bank_size} patches) -> image score = max; heatmap Gaussian "
                f"sigma {self.heatmap_sigma} resized to H x W"
            ),
            "image": {"layout": "NCHW", "range": [0, 255], "channels": [1, 3], "input_size": self.input_size},
            "calibration": (
                f"threshold = quantile {self.threshold_quantile} of the scores of "
                f"{len(self.calibration_scores_) if self.calibration_scores_ is not None else 0} held-out "
                f"good images, times {self.threshold_margin}"
            ),
        }

    def export_onnx(self, path: str | Path) -> Path:
        """The whole inference path as ONNX: input ``image`` float32 (N, 1|3, H, W) in 0..255,
        outputs ``score`` (N,) and ``heatmap`` (N, H, W)."""
        from axhub.ml.vision.onnx_export import export_graph

        size = self.input_size
        dummy = torch.full((1, 3, size, size), 127.0)
        return export_graph(self._graph(), dummy, Path(path), ["score", "heatmap"])

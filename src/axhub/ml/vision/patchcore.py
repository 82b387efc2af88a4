"""PatchCore-style anomaly detection trained on good images only.

How it works (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", 2022):

1. **Model shape.** Images are resized to a fixed shape inside the graph. Square-ish parts get
   ``input_size`` × ``input_size``; long parts keep their aspect ratio (``keep_aspect``): the
   short side becomes ``input_size`` and the long side follows the training images' median
   aspect ratio (rounded to a multiple of 32), so a 500×1250 surface is not squashed 2.5 times.
2. **Patch features.** A frozen, ImageNet-pretrained EfficientNet-Lite0 or -Lite2
   (``backbone.py``) gives feature maps at the ends of two stages. The resized image is
   mirrored outwards by ``border`` pixels first and the margin is cropped off the maps again,
   so border patches are not made odd by the network's zero padding. Each map is locally
   averaged (``patch_pool`` × ``patch_pool``, 3 as in the paper; 1 = not at all), the deeper one
   upsampled to the shallower one's grid, and both concatenated: one vector per patch. Averaging
   makes a patch robust to small misalignments, but it also blurs defects only a few pixels
   wide into the good texture around them: on the castings, without it the validation AUROC
   rose from 98.0 to 99.0 % (288 px, Lite2).
3. **Backbone and stages per product, from good images only** (``backbone="auto"``,
   ``stages=None``): candidate configurations are compared on a self-check built from the
   product's own good images — held-out good images against the same images with synthetic
   defects pasted in (``synthetic.py``, ``selection.py``) — and the best is kept (ties go to
   the cheaper). No defect image and no test label takes part. Why candidates rather than one
   choice: stages (2, 3) of Lite0 suit the smooth castings, but on a textured surface normal
   texture was as far from the bank as cracks; which layers separate "normal" from "defect"
   depends on the product.
4. **Memory bank in bounded memory.** At most ``max_patches`` patch vectors are kept from the
   training images (an even random share of each image's patches), then greedy k-centre
   coreset selection (on a random projection to ``coreset_projection`` dims, as in the paper)
   keeps ``bank_size`` vectors that cover the good-patch distribution.
5. **Scores.** A patch's anomaly score is the Euclidean distance to its nearest bank vector
   (k = 1, as matrix products ‖x‖² − 2·x·mᵀ + ‖m‖²). The image score is the largest patch
   score, or with ``score_top_k`` > 1 the mean of the k largest (on casting, chosen on a
   validation split of train/, the mean of the top 10 ranked defects better). The heatmap is
   the patch-score grid upsampled to the model shape and smoothed with a Gaussian
   (σ = ``heatmap_sigma`` pixels at model resolution), then resized to the image. With a
   ``score_margin`` the image score gives the outer rings the inner mean (``ignore_margin``),
   while the heatmap carries the nearest inner patch outwards (``extend_inner``): a crack that
   runs to the edge stays lit to the edge.
   For one-core latency the image score can use a pruned search (``prune_coarse`` > 0, see
   ``pruned_top_k``): every patch against the coreset's first picks only, then the
   ``prune_candidates`` farthest patches against the whole bank (with a ``score_margin``, over
   the inner patches only); it can only miss patches, so it is at most the exact score;
   ``use_pruned_search`` switches a fitted model to it. ``onnx_heatmap=False`` exports the score
   alone (onnxruntime runs every node of a graph whatever outputs are asked for, so the heatmap's
   full search would otherwise be paid on every call); ``explain`` still gives heatmaps in Python.
6. **Threshold** (``operating.py``): ``calibration_fraction`` of the good images never enter
   the bank; their scores set the threshold for a target false-alarm rate with a confidence
   bound (policy a). When labelled defect images come with the training data (at least 5; at
   most ``calibration_defects`` are used), the threshold is set for a target miss rate instead
   (policy b). Either way the trade-off curve is kept (``operating_``) and the hashes of the
   calibration images, so that an evaluation can leave them out.

Everything after the raw pixels (resize, normalise, backbone, kNN to the bank, heatmap) is one
torch module, ``PatchCoreGraph``; ``export_onnx`` writes it with the bank inside, and the Python
``score`` runs the same module, so Python and ONNX agree by construction (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from axhub.core.errors import InputProblem, InputValidationError, problem
from axhub.ml.vision.backbone import LiteFeatures, as_shape, to_tensor
from axhub.ml.vision.base import VisionEstimator, binary_metrics, images_of, labels_of
from axhub.ml.vision.images import image_facts, is_good_label, pick

Progress = Callable[[str, int, int], None]
DEFAULT_STAGES = (2, 3)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(4 * sigma))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(xs**2) / (2 * sigma**2))
    return g / g.sum()


def model_shape(shapes: Sequence[Sequence[int]], input_size: int, keep_aspect: bool) -> tuple[int, int]:
    """(height, width) the graph resizes to, from the images' shapes: square, or the median
    aspect ratio with the short side at ``input_size`` and the long side a multiple of 32 (at
    most 4× the short side)."""
    if not keep_aspect or not shapes:
        return (input_size, input_size)
    ratio = float(np.median([shape[0] / shape[1] for shape in shapes]))
    if 0.8 <= ratio <= 1.25:
        return (input_size, input_size)
    long = min(4 * input_size, max(input_size, 32 * round(input_size * max(ratio, 1 / ratio) / 32)))
    return (long, input_size) if ratio > 1 else (input_size, long)


def fuse_maps(
    maps: Sequence[torch.Tensor], strides: Sequence[int], border: int, pool: int = 3
) -> torch.Tensor:
    """Stage maps → locally averaged (``pool`` × ``pool``, odd; 1 = none), border-cropped,
    aligned, concatenated (N, D, h, w)."""
    if pool < 1 or pool % 2 == 0:
        raise ValueError(f"patch_pool must be an odd number >= 1, got {pool}")
    pooled: list[torch.Tensor] = []
    size: tuple[int, int] | None = None
    for m, stride in zip(maps, strides, strict=True):
        if pool > 1:
            m = F.avg_pool2d(m, kernel_size=pool, stride=1, padding=pool // 2, count_include_pad=False)
        c = border // stride
        if c:
            m = m[:, :, c : m.shape[2] - c, c : m.shape[3] - c]
        if size is None:
            size = (int(m.shape[-2]), int(m.shape[-1]))
        elif tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        pooled.append(m)
    return torch.cat(pooled, dim=1)


class PatchEmbedding(nn.Module):
    """Backbone maps → locally averaged, aligned, concatenated patch features (N, D, h, w)."""

    def __init__(
        self,
        input_size: int | Sequence[int],
        stages: Sequence[int],
        backbone: str = "lite0",
        border: int = 0,
        pool: int = 3,
    ) -> None:
        super().__init__()
        self.features = LiteFeatures(input_size, stages, backbone, border)
        self.pool = int(pool)

    @property
    def dim(self) -> int:
        return sum(self.features.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fuse_maps(self.features(x), self.features.strides, self.features.border, self.pool)


def nearest_distance(flat: torch.Tensor, bank_t: torch.Tensor, bank_sq: torch.Tensor) -> torch.Tensor:
    """(N, P, D) patch vectors → (N, P) distance to the nearest bank vector.

    ‖x‖² is the same for every bank vector, so it is added after the minimum, and ‖m‖² rides in
    the matrix product as one more coordinate ([x, 1]·[−2m, ‖m‖²]): no elementwise pass over
    the (N, P, bank) matrix at all (on one CPU core each such pass cost ~4-6 ms for the 288 px
    casting model). The result differs from the textbook formula only by float rounding."""
    ones = torch.ones_like(flat[:, :, :1])
    weights = torch.cat([-2.0 * bank_t, bank_sq[0]], dim=0)  # (D + 1, bank), a constant in ONNX
    part = torch.matmul(torch.cat([flat, ones], dim=2), weights)
    return (part.min(dim=2).values + (flat**2).sum(dim=2)).clamp(min=0.0).sqrt()


def pruned_top_k(
    flat: torch.Tensor,
    bank_t: torch.Tensor,
    bank_sq: torch.Tensor,
    coarse: int,
    candidates: int,
    top_k: int,
) -> torch.Tensor:
    """(N, P, D) patch vectors → (N,) mean of the ``top_k`` largest nearest-bank distances, with
    the search pruned: every patch against the first ``coarse`` bank vectors only, then the
    ``candidates`` patches farthest from those against the whole bank.

    Why it works: a greedy k-centre coreset's first picks are a coarser cover of the same
    patches, and a patch's distance to a subset of the bank is an upper bound of its distance to
    the whole bank, so patches close to the coarse cover are rarely among the farthest from the
    full bank. It is not exact: it can only miss patches (the score is at most the exact one),
    most on good images, whose patch scores are flat. On the casting validation split: 1000-patch
    bank, first 500 picks, 256 candidates: the exact score on 98.5 % of images, at most 0.2 %
    lower; 2000-patch bank, first 250 picks: exact on 36 %, up to 6 % lower. Judge it on
    validation AUROC. Only the image score is pruned; the heatmap needs every patch."""
    p = flat.shape[1]
    coarse_d = nearest_distance(flat, bank_t[:, :coarse], bank_sq[:, :, :coarse])
    idx = coarse_d.topk(min(candidates, p), dim=1).indices
    chosen = torch.gather(flat, 1, idx[:, :, None].expand(-1, -1, flat.shape[2]))
    exact = nearest_distance(chosen, bank_t, bank_sq)
    return exact.topk(min(top_k, exact.shape[1]), dim=1).values.mean(dim=1)


def has_margin(h: int, w: int, margin: int) -> bool:
    """Whether a patch grid of h × w has a ``margin`` to leave out and something inside it."""
    return margin > 0 and h > 2 * margin and w > 2 * margin


def ignore_margin(patches: torch.Tensor, margin: int) -> torch.Tensor:
    """Replace the outer ``margin`` rings of a patch-score map (N, 1, h, w) by the mean of the
    inner patches of each image: a part's outer border often looks unlike anything inside (edges
    of the surface, fixture, lighting fall-off) and would otherwise set every image's score."""
    h, w = patches.shape[-2:]
    if not has_margin(h, w, margin):
        return patches
    inner = patches[:, :, margin : h - margin, margin : w - margin]
    mask = F.pad(torch.ones_like(inner), [margin] * 4)
    fill = inner.mean(dim=(2, 3), keepdim=True)
    return patches * mask + fill * (1 - mask)


def extend_inner(patches: torch.Tensor, margin: int) -> torch.Tensor:
    """The heatmap's outer ``margin`` rings: each carries the score of the nearest inner patch.
    The margin's own scores are left out as unreliable, but a defect that runs to the part's
    edge (KolektorSDD's cracks all reach it) must not fade there: the inner mean that
    ``ignore_margin`` gives the image score erased on average a fifth of a crack from the map."""
    h, w = patches.shape[-2:]
    if not has_margin(h, w, margin):
        return patches
    inner = patches[:, :, margin : h - margin, margin : w - margin]
    return F.pad(inner, [margin] * 4, mode="replicate")


class PatchCoreGraph(nn.Module):
    """Raw pixels (N, 1|3, H, W) in 0..255 → (image score (N,), heatmap (N, H, W))."""

    def __init__(
        self,
        embedding: PatchEmbedding,
        bank: torch.Tensor,
        input_size: int | Sequence[int],
        sigma: float,
        margin: int = 0,
        top_k: int = 1,
        prune_coarse: int = 0,
        prune_candidates: int = 256,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.margin = int(margin)
        self.top_k = max(1, int(top_k))
        # Only when the coarse cover is a real subset of the bank. With a margin the pruned search
        # runs over the inner patches only (see inner_patches).
        self.prune_coarse = int(prune_coarse) if 0 < prune_coarse < bank.shape[0] else 0
        self.prune_candidates = max(self.top_k, int(prune_candidates))
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
        self.shape = as_shape(input_size)
        self.pad = int(g.shape[0] // 2)

    def patch_vectors(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Raw pixels → patch vectors (N, h·w, D) and the patch grid (h, w)."""
        feats = self.embedding(x)  # (N, D, h, w)
        n, d, h, w = feats.shape
        return feats.permute(0, 2, 3, 1).reshape(n, h * w, d), h, w

    def _distances(self, flat: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return nearest_distance(flat, self.bank_t, self.bank_sq).reshape(flat.shape[0], 1, h, w)

    def patch_scores_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Distance of every patch to the bank (N, 1, h, w), margin included."""
        return self._distances(*self.patch_vectors(x))

    def patch_scores(self, x: torch.Tensor) -> torch.Tensor:
        return ignore_margin(self.patch_scores_raw(x), self.margin)

    def image_score(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch scores (N, 1, h, w) → image score (N,): the mean of the ``top_k`` highest patches
        (k = 1: the maximum). A few neighbouring patches agreeing is steadier evidence than the
        single worst one, which on good parts is often a lone odd patch."""
        flat = patches.flatten(1)
        if self.top_k == 1:
            return flat.max(dim=1).values
        return flat.topk(min(self.top_k, flat.shape[1]), dim=1).values.mean(dim=1)

    def inner_patches(self, flat: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Patch vectors (N, h·w, D) → those inside the margin (N, h'·w', D). The margin's rings
        carry the inner mean in the exact score, which never exceeds the inner top-k (k small),
        so the top-k over the inner patches is the same image score."""
        m = self.margin
        if not has_margin(h, w, m):
            return flat
        n, _, d = flat.shape
        return flat.reshape(n, h, w, d)[:, m : h - m, m : w - m, :].reshape(n, -1, d)

    def _score(self, flat: torch.Tensor, patches: torch.Tensor | None, h: int, w: int) -> torch.Tensor:
        if self.prune_coarse:
            return pruned_top_k(
                self.inner_patches(flat, h, w),
                self.bank_t, self.bank_sq, self.prune_coarse, self.prune_candidates, self.top_k,
            )  # fmt: skip
        if patches is None:
            patches = ignore_margin(self._distances(flat, h, w), self.margin)
        return self.image_score(patches)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Raw pixels → image score (N,): the pruned search when it is on, else every patch."""
        flat, h, w = self.patch_vectors(x)
        return self._score(flat, None, h, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat, h, w = self.patch_vectors(x)
        raw = self._distances(flat, h, w)
        score = self._score(flat, ignore_margin(raw, self.margin), h, w)
        return score, self.heat(raw, x.shape[2], x.shape[3])

    def heat(self, raw: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Raw patch scores (N, 1, h, w), margin included → smoothed heatmap (N, H, W) at the
        image's size, the margin extended from the inner patches."""
        heat = extend_inner(raw, self.margin)
        heat = F.interpolate(heat, size=self.shape, mode="bilinear", align_corners=False)
        heat = F.pad(heat, [self.pad] * 4, mode="replicate")
        heat = F.conv2d(F.conv2d(heat, self.kernel_h), self.kernel_v)
        heat = F.interpolate(heat, size=(height, width), mode="bilinear", align_corners=False)
        return heat[:, 0]


class ScoreOnly(nn.Module):
    """The graph without the heatmap: onnxruntime computes every node of a graph whatever
    outputs are asked for, so a bundle that should score fast must not contain the heatmap."""

    def __init__(self, graph: PatchCoreGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph.score(x)


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
        if progress is not None and i % 100 == 0:
            progress(i, n_select)
    if progress is not None:
        progress(n_select, n_select)
    return chosen


def seen_images(model: Any) -> dict[str, str]:
    """Image hash → ``"calibration"`` or ``"training"`` for the images a vision model has already
    seen (PatchCore keeps both; other models none): an evaluation leaves them out, since a bank
    image scores near zero on itself and a calibration image set the threshold."""
    seen = dict.fromkeys(getattr(model, "training_hashes_", None) or [], "training")
    seen.update(dict.fromkeys(getattr(model, "calibration_hashes_", None) or [], "calibration"))
    return seen


def _is_good_or_unlabelled(label: Any) -> bool:
    """Unlabelled images (files at a folder's root) count as good for a good-parts-only model."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return True
    return is_good_label(label)


class PatchCore(VisionEstimator):
    """Anomaly detector for images of one product, trained on good parts only.

    ``fit(images)`` takes good images (any size, grayscale or colour; see
    :mod:`axhub.ml.vision.base` for accepted forms). Unlabelled images count as good; labelled
    defect images in the data never enter the bank: up to ``calibration_defects`` of them set
    the threshold for a target miss rate (policy b, when there are at least 5). ``score`` gives
    one anomaly score per image (higher = more anomalous); ``predict`` is ``score > threshold_``;
    ``explain`` gives per-pixel heatmaps at each image's own size.
    """

    name: ClassVar[str] = "patchcore"

    def __init__(
        self,
        input_size: int = 224,
        stages: Sequence[int] | None = None,
        backbone: str = "auto",
        keep_aspect: bool = True,
        border: int = 16,
        score_margin: int | None = None,
        bank_size: int = 2000,
        max_patches: int = 200_000,
        coreset_projection: int = 128,
        calibration_fraction: float = 0.2,
        calibration_defects: int = 10,
        target_false_alarm: float = 0.01,
        target_miss: float = 0.05,
        confidence: float = 0.95,
        threshold_margin: float = 1.0,
        heatmap_sigma: float = 4.0,
        score_top_k: int = 1,
        patch_pool: int = 3,
        prune_coarse: int = 0,
        prune_candidates: int = 256,
        onnx_heatmap: bool = True,
        batch_size: int = 8,
        seed: int = 0,
    ) -> None:
        self.input_size = input_size
        self.stages = None if stages is None else list(stages)
        self.backbone = backbone
        self.keep_aspect = keep_aspect
        self.border = border
        self.score_margin = score_margin
        self.bank_size = bank_size
        self.max_patches = max_patches
        self.coreset_projection = coreset_projection
        self.calibration_fraction = calibration_fraction
        self.calibration_defects = calibration_defects
        self.target_false_alarm = target_false_alarm
        self.target_miss = target_miss
        self.confidence = confidence
        self.threshold_margin = threshold_margin
        self.heatmap_sigma = heatmap_sigma
        self.score_top_k = score_top_k
        self.patch_pool = patch_pool
        self.prune_coarse = prune_coarse
        self.prune_candidates = prune_candidates
        self.onnx_heatmap = onnx_heatmap
        self.batch_size = batch_size
        self.seed = seed
        self.graph_: PatchCoreGraph | None = None
        self.threshold_: float | None = None
        self.calibration_scores_: np.ndarray | None = None
        self.calibration_defect_scores_: np.ndarray | None = None
        self.calibration_hashes_: list[str] = []
        self.training_hashes_: list[str] = []
        self.operating_: dict[str, Any] = {}
        self.selection_: dict[str, Any] = {}
        self.backbone_ = "lite0" if backbone == "auto" else backbone
        self.stages_ = list(stages) if stages is not None else list(DEFAULT_STAGES)
        self.shape_: tuple[int, int] = (input_size, input_size)
        self.margin_ = 0 if score_margin is None else int(score_margin)
        self.n_train_images_ = 0

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"input_size": 64, "bank_size": 200, "batch_size": 8, "backbone": "lite0", "stages": [2, 3]}

    # -- training -------------------------------------------------------------------------
    def _embedding(self) -> PatchEmbedding:
        return PatchEmbedding(self.shape_, self.stages_, self.backbone_, self.border, self.patch_pool)

    def _build_graph(self, bank: torch.Tensor, embedding: PatchEmbedding | None = None) -> PatchCoreGraph:
        return PatchCoreGraph(
            embedding if embedding is not None else self._embedding(), bank, self.shape_,
            self.heatmap_sigma, self.margin_, self.score_top_k, self.prune_coarse, self.prune_candidates,
        ).eval()  # fmt: skip

    def _embed(
        self, embedding: PatchEmbedding, images: Sequence[np.ndarray], progress: Progress | None = None
    ) -> torch.Tensor:
        """Patch vectors of the images, at most ``max_patches`` in all (an even random share of
        each image's patches), so memory stays bounded however many images there are."""
        from axhub.ml import device as devices

        gen = torch.Generator().manual_seed(self.seed)
        per_image: int | None = None
        chunks = []
        # On a GPU (when the job has one) the features are computed there, in fp32: the bank's
        # squared distances lose their precision in bf16. They come back to the CPU per batch.
        with torch.inference_mode(), devices.placed(embedding) as dev:
            for start in range(0, len(images), self.batch_size):
                x = to_tensor(images[start : start + self.batch_size], self.shape_).to(dev)
                f = embedding(x)
                f = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])
                if per_image is None:
                    per_image = max(1, min(f.shape[1], self.max_patches // max(1, len(images))))
                if per_image < f.shape[1]:
                    keep = torch.stack([torch.randperm(f.shape[1], generator=gen)[:per_image] for _ in f])
                    f = torch.gather(f, 1, keep[:, :, None].to(f.device).expand(-1, -1, f.shape[2]))
                chunks.append(f.reshape(-1, f.shape[2]).cpu().clone())
                if progress is not None:
                    progress("features", min(start + self.batch_size, len(images)), len(images))
        return torch.cat(chunks)

    def fit(self, data: Any, progress: Progress | None = None) -> Self:
        # Image files are read when needed, a batch at a time: a few hundred large photographs
        # would otherwise hold gigabytes (the shapes and hashes of all are read once, first).
        imgs = images_of(data, "training data", lazy=True)
        labels = labels_of(data)
        defects: Sequence[np.ndarray] = []
        if labels is not None:  # train on the good parts only; labelled defects may calibrate
            good_mask = [_is_good_or_unlabelled(lab) for lab in labels]
            defects = pick(imgs, [i for i, g in enumerate(good_mask) if not g])
            imgs = pick(imgs, [i for i, g in enumerate(good_mask) if g])
            if not imgs:
                raise InputValidationError(problem("training data", None, "label", "vision_no_good_images"))
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(imgs))
        n_cal = 0
        if len(imgs) >= 2 and self.calibration_fraction > 0:
            n_cal = min(max(1, round(self.calibration_fraction * len(imgs))), len(imgs) - 1)
        cal = pick(imgs, order[:n_cal])
        bank_imgs = pick(imgs, order[n_cal:])
        if defects:
            defects = pick(defects, np.sort(rng.permutation(len(defects))[: self.calibration_defects]))
        reading = None if progress is None else (lambda i, n: progress("reading images", i, n))
        facts = image_facts(imgs, reading)
        self.shape_ = model_shape([shape for shape, _ in facts], self.input_size, self.keep_aspect)
        self._choose_features(bank_imgs, cal, progress)
        embedding = self._embedding()
        feats = self._embed(embedding, bank_imgs, progress)
        coreset_progress = None if progress is None else (lambda i, n: progress("coreset", i, n))
        keep = greedy_coreset(
            feats,
            self.bank_size,
            projection=self.coreset_projection,
            seed=self.seed,
            progress=coreset_progress,
        )
        self.graph_ = self._build_graph(feats[keep].contiguous(), embedding)
        del feats
        self.n_train_images_ = len(bank_imgs)
        self.fitted_ = True
        # With a single image there is no hold-out and the (optimistic) training score is used.
        self.calibration_scores_ = self.score(cal if cal else bank_imgs, progress=progress)
        self.calibration_defect_scores_ = self.score(defects, progress=progress) if defects else None
        # The good images' hashes come from the first pass (cal and bank are picks of imgs by
        # `order`); only the calibration defects are hashed here.
        hashes = [sha for _, sha in facts]
        defect_hashes = [sha for _, sha in image_facts(defects)] if defects else []
        self.calibration_hashes_ = [hashes[i] for i in order[:n_cal]] + defect_hashes
        self.training_hashes_ = [hashes[i] for i in order[n_cal:]]
        self.set_operating_point()
        return self

    def _choose_features(
        self, bank_imgs: Sequence[np.ndarray], cal: Sequence[np.ndarray], progress: Progress | None
    ) -> None:
        from axhub.ml.vision.selection import candidate_margins, candidates_for, choose_features

        candidates = candidates_for(self.backbone, self.stages)
        margins = candidate_margins(self.score_margin)
        if (len(candidates) == 1 and len(margins) == 1) or not cal:
            self.backbone_, self.stages_ = candidates[0]
            self.margin_ = margins[0]
            self.selection_ = {"method": "given" if len(candidates) == 1 else "default (no held-out images)"}
            return
        self.selection_ = choose_features(
            bank_imgs, cal, candidates, shape=self.shape_, border=self.border, seed=self.seed,
            progress=progress, margins=margins, patch_pool=self.patch_pool,
        )  # fmt: skip
        chosen = self.selection_["chosen"]
        self.backbone_, self.stages_, self.margin_ = chosen["backbone"], chosen["stages"], chosen["margin"]

    def set_operating_point(
        self,
        *,
        target_false_alarm: float | None = None,
        target_miss: float | None = None,
        threshold: float | None = None,
    ) -> dict[str, Any]:
        """(Re)choose the threshold from the stored calibration scores: policy (b) with enough
        calibration defects, else (a); or an explicit ``threshold`` an inspector picked."""
        from axhub.ml.vision.operating import choose

        assert self.calibration_scores_ is not None
        if target_false_alarm is not None:
            self.target_false_alarm = target_false_alarm
        if target_miss is not None:
            self.target_miss = target_miss
        point = choose(
            self.calibration_scores_,
            self.calibration_defect_scores_,
            target_far=self.target_false_alarm,
            target_miss=self.target_miss,
            confidence=self.confidence,
        )
        if threshold is not None:
            point.update({"policy": "chosen", "threshold": float(threshold)})
        elif point["policy"] == "good-only" and self.threshold_margin != 1.0:
            # With few held-out images the bound cannot be met; a margin widens the threshold.
            point["threshold"] *= self.threshold_margin
            point["margin"] = self.threshold_margin
        self.operating_ = point
        self.threshold_ = float(point["threshold"])
        return point

    # -- inference ------------------------------------------------------------------------
    def _graph(self) -> PatchCoreGraph:
        self._check_fitted()
        assert self.graph_ is not None
        return self.graph_

    def patch_score_maps(self, data: Any) -> list[np.ndarray]:
        graph = self._graph()
        return [m[0] for m in self._batched(graph.patch_scores, images_of(data, lazy=True))]

    def _batched(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        imgs: Sequence[np.ndarray],
        progress: Progress | None = None,
    ) -> list[np.ndarray]:
        # Keep the patch-to-bank distance matrix of one batch near 64 MB.
        patches = (self.shape_[0] // 4) * (self.shape_[1] // 4)
        batch = max(1, min(self.batch_size, 8_000_000 // max(1, patches * self.bank_size)))
        out: list[np.ndarray] = []
        from axhub.ml import device as devices

        with torch.inference_mode(), devices.placed(self._graph()) as dev:  # a GPU when the job has one
            for start in range(0, len(imgs), batch):
                x = to_tensor(imgs[start : start + batch], self.shape_).to(dev)
                out.extend(fn(x).cpu().numpy())
                if progress is not None:
                    progress("scoring", min(start + batch, len(imgs)), len(imgs))
        return out

    def score(self, data: Any, progress: Progress | None = None) -> np.ndarray:
        graph = self._graph()
        maps = self._batched(graph.score, images_of(data, lazy=True), progress)
        return np.asarray(maps, dtype=np.float32)

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
        """Metrics on labelled data, leaving out the images that calibrated the threshold and
        those in the memory bank (a bank image scores near zero on itself: evaluating on the
        training folder would flatter the model)."""
        labels = labels_of(data)
        if labels is None:
            raise ValueError("evaluate needs labelled data (a 'label' column)")
        imgs = images_of(data, lazy=True)
        seen = seen_images(self)
        why = [seen.get(sha) for _, sha in image_facts(imgs)]
        keep = [i for i, w in enumerate(why) if w is None]
        if not keep:
            raise InputValidationError(
                InputProblem("images", None, None, "every image here trained or calibrated this model"),
                hint="evaluate on labelled images the model has not seen",
            )
        y = np.array([not _is_good_or_unlabelled(labels[i]) for i in keep])
        metrics = binary_metrics(y, self.score(pick(imgs, keep)), self.threshold_)
        metrics["calibration_images_left_out"] = float(why.count("calibration"))
        metrics["training_images_left_out"] = float(why.count("training"))
        return metrics

    def evaluate_scores(self, y_defect: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """Metrics of scores computed elsewhere (e.g. by the ONNX graph) at this threshold."""
        return binary_metrics(y_defect, scores, self.threshold_)

    # -- persistence and export -----------------------------------------------------------
    @property
    def bank(self) -> np.ndarray:
        return self._graph().bank_t.t().numpy()

    def _get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "bank": self.bank.astype(np.float32),
            "threshold": self.threshold_,
            "n_train_images": self.n_train_images_,
            "calibration_scores": np.asarray(self.calibration_scores_, dtype=np.float32),
            "calibration_hashes": list(self.calibration_hashes_),
            "training_hashes": list(self.training_hashes_),
            "operating": self.operating_,
            "selection": self.selection_,
            "backbone": self.backbone_,
            "stages": list(self.stages_),
            "shape": list(self.shape_),
            "margin": self.margin_,
        }
        if self.calibration_defect_scores_ is not None:
            state["calibration_defect_scores"] = np.asarray(self.calibration_defect_scores_, dtype=np.float32)
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        bank = torch.from_numpy(np.asarray(state["bank"], dtype=np.float32))
        self.backbone_ = str(state.get("backbone", self.backbone_))
        self.stages_ = [int(s) for s in state.get("stages", self.stages_)]
        self.shape_ = as_shape(state.get("shape", self.shape_))
        self.margin_ = int(state.get("margin", self.margin_))
        self.graph_ = self._build_graph(bank)
        self.threshold_ = state["threshold"]
        self.n_train_images_ = int(state.get("n_train_images", 0))
        self.calibration_scores_ = state.get("calibration_scores")
        self.calibration_defect_scores_ = state.get("calibration_defect_scores")
        self.calibration_hashes_ = list(state.get("calibration_hashes", []))
        self.training_hashes_ = list(state.get("training_hashes", []))  # none in older bundles
        self.operating_ = dict(state.get("operating", {}))
        self.selection_ = dict(state.get("selection", {}))
        self.fitted_ = True

    def preprocessing(self) -> dict[str, Any]:
        h, w = self.shape_
        op = {k: v for k, v in self.operating_.items() if k != "curve"}
        n_good = 0 if self.calibration_scores_ is None else len(self.calibration_scores_)
        n_def = 0 if self.calibration_defect_scores_ is None else len(self.calibration_defect_scores_)
        return {
            "format": "axhub-preprocessing/1",
            "columns": [],
            "graph_input": "image",
            "outputs": {"score": "score", "heatmap": "heatmap"} if self.onnx_heatmap else {"score": "score"},
            "threshold": self.threshold_,
            "in_graph": (
                f"raw pixels float32 (N, 1|3, H, W) in 0..255 -> grayscale to 3 channels -> bilinear "
                f"resize to {h}x{w} (height x width) -> (x-127)/128 -> mirror {self.border} px border -> "
                f"EfficientNet-{self.backbone_.title()} stages {list(self.stages_)} -> "
                f"{self.patch_pool}x{self.patch_pool} average -> "
                f"crop border -> nearest-neighbour distance to the memory bank ({self.bank_size} patches) "
                f"-> outer {self.margin_} patch rings set to the inner mean -> image score = mean of the "
                f"{self.score_top_k} highest patch scores"
                + (
                    f" (pruned search: all patches against the first {self._graph().prune_coarse} bank "
                    f"vectors, the {self._graph().prune_candidates} farthest against the whole bank)"
                    if self._graph().prune_coarse
                    else ""
                )
                + (
                    f"; heatmap Gaussian sigma {self.heatmap_sigma} resized to H x W"
                    if self.onnx_heatmap
                    else "; no heatmap in the graph (explain() in Python gives it)"
                )
            ),
            "image": {
                "layout": "NCHW",
                "range": [0, 255],
                "channels": [1, 3],
                "input_size": self.input_size,
                "model_shape": [h, w],
            },
            "calibration": (
                f"policy {op.get('policy')}: threshold {self.threshold_} from {n_good} held-out good "
                f"images and {n_def} labelled defect images"
            ),
            "operating_point": op,
            "feature_selection": {k: v for k, v in self.selection_.items() if k != "candidates"},
        }

    def use_pruned_search(self, coarse: int, candidates: int = 256) -> None:
        """Score fitted images with the pruned search (see ``pruned_top_k``) from now on: the same
        bank, the graph rebuilt; ``coarse`` = 0 goes back to the exact search."""
        graph = self._graph()
        self.prune_coarse, self.prune_candidates = int(coarse), int(candidates)
        self.graph_ = self._build_graph(graph.bank_t.t().contiguous(), graph.embedding)

    def export_onnx(self, path: str | Path) -> Path:
        """The whole inference path as ONNX: input ``image`` float32 (N, 1|3, H, W) in 0..255,
        outputs ``score`` (N,) and, with ``onnx_heatmap``, ``heatmap`` (N, H, W). Without the
        heatmap the graph skips the full patch-to-bank search when the pruned one is on."""
        from axhub.ml.vision.onnx_export import export_graph

        h, w = self.shape_
        dummy = torch.full((1, 3, h, w), 127.0)
        if self.onnx_heatmap:
            return export_graph(self._graph(), dummy, Path(path), ["score", "heatmap"])
        return export_graph(ScoreOnly(self._graph()), dummy, Path(path), ["score"])

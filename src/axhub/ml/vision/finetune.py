"""Supervised defect classification by fine-tuning the last blocks of EfficientNet-Lite.

When enough labelled defect images exist (see :func:`supervised_model_for`), a linear probe on
frozen features (``classifier.py``) leaves accuracy on the table: the deepest blocks were
trained to tell dogs from cats, not a porosity from a casting's normal texture. Fine-tuning the
whole network on a CPU shared by several people is too slow, so only the blocks after
``frozen_stage`` (by default stages 6 and 7 of Lite0, about 2 M weights) and a new head are
trained, at 224 px (chosen over 160 and 300 px on a hold-out of the casting training images:
``scripts/casting_supervised_validation.py``):

1. **Frozen trunk, computed once.** The stem and stages 1..``frozen_stage`` run once per
   training image; their output maps (e.g. 112 × 14 × 14 at 224 px) are kept in float16. Every
   epoch then costs only the trainable blocks, which is what makes a few epochs affordable.
2. **Trainable top.** The remaining pretrained blocks, their batch-norm statistics kept frozen
   (batches are small; the ImageNet statistics are a better estimate than a 32-image batch),
   then the global average *and* max of the last map (max keeps small local defects visible)
   and a linear layer. AdamW, cosine learning-rate decay, flips and transposes of the cached
   maps as augmentation (castings and surfaces have no preferred orientation); with ``tta``
   (default) the graph averages the top's logits over the 8 orientations of the trunk map, so
   the answer does not depend on how the part lies (the trunk still runs once).
3. **Calibrated confidence.** ``validation_fraction`` of the labelled images (stratified) never
   take part in training; a single temperature is fitted on their logits (temperature scaling,
   Guo et al. 2017) and the expected calibration error before/after is kept in
   ``calibration_``, as for the linear probe.

The exported graph is the whole network (raw pixels in, ``probabilities``, ``prediction``,
``score`` = 1 − P(good) out), so the bundle runs with onnxruntime alone, like the probe's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from axhub.ml.vision.backbone import LiteFeatures, load_efficientnet_lite, spec_of, to_tensor
from axhub.ml.vision.base import check_same_length, images_of
from axhub.ml.vision.classifier import DefectClassifier, calibrated_outputs
from axhub.ml.vision.images import is_good_label

# Below this many labelled images in the smallest class the linear probe is the safer choice:
# ~2 M trainable weights overfit a few dozen defects.
MIN_IMAGES_PER_CLASS = 100


def supervised_model_for(labels: Sequence[Any], **params: Any) -> DefectClassifier:
    """The fine-tuned model when every class has ``MIN_IMAGES_PER_CLASS`` images, else the probe."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[str(label)] = counts.get(str(label), 0) + 1
    if len(counts) >= 2 and min(counts.values()) >= MIN_IMAGES_PER_CLASS:
        return FineTunedClassifier(**params)
    return DefectClassifier(**{k: v for k, v in params.items() if k in ("input_size", "seed")})


class TopBlocks(nn.Module):
    """The trainable end of the network: pretrained blocks, then the global average and max of
    both their input (the frozen trunk's map) and their output, normalised, into a linear head."""

    def __init__(self, backbone: str, input_size: int, frozen_stage: int, n_classes: int) -> None:
        super().__init__()
        spec = spec_of(backbone)
        net: Any = load_efficientnet_lite(backbone, input_size)
        first = spec.stage_last_block[frozen_stage] + 1
        self.blocks = nn.ModuleList(list(net._blocks)[first:])
        dim = 2 * (spec.stage_channels[frozen_stage] + spec.stage_channels[max(spec.stage_channels)])
        # The maps end in linear projections whose scale varies a lot between images;
        # normalising the pooled vector keeps the head's steps stable.
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        for m in self.modules():  # batch-norm statistics stay the pretrained ones
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def pooled(self, m: torch.Tensor) -> torch.Tensor:
        parts = [m.mean(dim=(2, 3)), m.amax(dim=(2, 3))]
        for block in self.blocks:
            m = block(m)
        parts += [m.mean(dim=(2, 3)), m.amax(dim=(2, 3))]
        return self.norm(torch.cat(parts, dim=1))

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(m))

    def averaged(self, m: torch.Tensor) -> torch.Tensor:
        """Logits averaged over the flips (and, on square maps, the 90° turns) of the trunk map:
        test-time augmentation matching the training augmentation (castings have no preferred
        orientation). The trunk runs once; only the small top runs per view."""
        views = dihedral_views(m)
        n = m.shape[0]
        return self.forward(torch.cat(views)).reshape(len(views), n, -1).mean(dim=0)


class FineTunedGraph(nn.Module):
    """Raw pixels → (probabilities (N, K), prediction (N,), score = 1 − P(good) (N,))."""

    def __init__(
        self,
        trunk: LiteFeatures,
        top: TopBlocks,
        temperature: float,
        good_index: int | None,
        tta: bool = False,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.top = top
        self.tta = bool(tta)
        self.temperature = float(temperature)
        self.good_index = good_index

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_of_maps(self.trunk(x)[-1])

    def logits_of_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Logits from cached trunk maps (the same path as raw pixels, minus the trunk)."""
        return self.top.averaged(maps) if self.tta else self.top(maps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return calibrated_outputs(self.logits(x), self.temperature, self.good_index)


def dihedral_views(maps: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips/90° turns of square maps (N, C, h, w); the 4 flips when h != w."""
    views = [maps, maps.flip(3), maps.flip(2), maps.flip(2).flip(3)]
    if maps.shape[2] == maps.shape[3]:
        views += [v.transpose(2, 3) for v in views]
    return views


def _augment(maps: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips per item and, on square maps, a random transpose (with the flips: any of the
    8 orientations) as augmentation on cached trunk maps: a casting or surface has no preferred
    orientation."""
    n = maps.shape[0]
    h = torch.rand(n, generator=gen) < 0.5
    v = torch.rand(n, generator=gen) < 0.5
    t = torch.rand(n, generator=gen) < 0.5
    maps = torch.where(h[:, None, None, None], maps.flip(3), maps)
    maps = torch.where(v[:, None, None, None], maps.flip(2), maps)
    if maps.shape[2] == maps.shape[3]:
        maps = torch.where(t[:, None, None, None], maps.transpose(2, 3), maps)
    return maps


class FineTunedClassifier(DefectClassifier):
    """Good vs defect classes by fine-tuning the last blocks of EfficientNet-Lite (see module doc)."""

    name: ClassVar[str] = "finetuned"

    def __init__(
        self,
        input_size: int = 224,
        backbone: str = "lite0",
        frozen_stage: int = 6,
        epochs: int = 4,
        learning_rate: float = 3e-4,
        weight_decay: float = 1e-4,
        validation_fraction: float = 0.15,
        batch_size: int = 32,
        seed: int = 0,
        tta: bool = True,
    ) -> None:
        super().__init__(
            input_size=input_size, validation_fraction=validation_fraction, batch_size=batch_size, seed=seed
        )
        self.tta = tta
        self.backbone = backbone
        self.frozen_stage = frozen_stage
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.history_: list[dict[str, float]] = []

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"input_size": 64, "epochs": 2, "batch_size": 8}

    def _trunk(self) -> LiteFeatures:
        return LiteFeatures(self.input_size, [self.frozen_stage], self.backbone)

    def trunk_maps(
        self, trunk: LiteFeatures, images: Sequence[np.ndarray], progress: Any = None
    ) -> torch.Tensor:
        """The frozen part's output for every image, float16 (computed once per training)."""
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = to_tensor(images[start : start + self.batch_size], self.input_size)
                chunks.append(trunk(x)[-1].half())
                if progress is not None:
                    progress("features", min(start + self.batch_size, len(images)), len(images))
        return torch.cat(chunks)

    def fit(self, data: Any, progress: Any = None, features: torch.Tensor | None = None) -> Self:
        """Train on labelled images; ``features`` may pass precomputed :meth:`trunk_maps`."""
        labels, y_all = self._targets(data)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        trunk = self._trunk()
        if features is None:
            imgs = images_of(data, "training data", lazy=True)  # read a batch at a time
            check_same_length(imgs, labels)
            features = self.trunk_maps(trunk, imgs, progress)
        train_idx, val_idx = self._split(y_all.numpy())
        top = TopBlocks(self.backbone, self.input_size, self.frozen_stage, len(self.classes_))
        # Balanced classes: a defect class with few images counts as much as the good one.
        counts = torch.bincount(y_all[train_idx], minlength=len(self.classes_)).float().clamp(min=1)
        class_weight = counts.sum() / (len(self.classes_) * counts)
        self._probe_head(top, features, train_idx, y_all, class_weight)
        opt = torch.optim.AdamW(
            [
                {"params": top.blocks.parameters(), "lr": self.learning_rate},
                {"params": [*top.norm.parameters(), *top.head.parameters()], "lr": self.learning_rate / 3},
            ],
            weight_decay=self.weight_decay,
        )
        steps = max(1, self.epochs * -(-len(train_idx) // self.batch_size))
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[self.learning_rate, self.learning_rate / 3], total_steps=steps, pct_start=0.2
        )
        self.history_ = []
        train_t = torch.as_tensor(train_idx)
        for epoch in range(self.epochs):
            top.train()
            order = train_t[torch.randperm(len(train_t), generator=gen)]
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                maps = _augment(features[batch].float(), gen)
                loss = F.cross_entropy(top(maps), y_all[batch], weight=class_weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            self.history_.append({"epoch": float(epoch + 1), "train_loss": total / max(1, len(order))})
            if progress is not None:
                progress("fine-tuning", epoch + 1, self.epochs)
        top.eval()
        for p in top.parameters():
            p.requires_grad_(False)
        temperature = 1.0
        if len(val_idx):
            with torch.no_grad():
                val_logits = torch.cat(
                    [
                        self._top_logits(top, features[torch.as_tensor(val_idx[s : s + 256])].float())
                        for s in range(0, len(val_idx), 256)
                    ]
                )
            y_val = y_all[val_idx]
            temperature = self._calibrate(val_logits, y_val)
            self.calibration_["nll_before"] = float(F.cross_entropy(val_logits, y_val))
            self.calibration_["nll_after"] = float(F.cross_entropy(val_logits / temperature, y_val))
        good = [i for i, c in enumerate(self.classes_) if is_good_label(c)]
        self.graph_ = FineTunedGraph(  # type: ignore[assignment]
            trunk, top, temperature, good[0] if good else None, tta=self.tta
        ).eval()
        self.fitted_ = True
        return self

    def _top_logits(self, top: TopBlocks, maps: torch.Tensor) -> torch.Tensor:
        return top.averaged(maps) if self.tta else top(maps)

    @staticmethod
    def _probe_head(
        top: TopBlocks, features: torch.Tensor, idx: np.ndarray, y: torch.Tensor, class_weight: torch.Tensor
    ) -> None:
        """Start from the best linear head on the pretrained blocks (linear probe, then fine-tune:
        a random head's first gradients would otherwise wreck the pretrained blocks)."""
        with torch.no_grad():
            top.eval()
            z = torch.cat(
                [
                    top.pooled(features[torch.as_tensor(idx[s : s + 256])].float())
                    for s in range(0, len(idx), 256)
                ]
            )
        y_tr = y[idx]
        nn.init.zeros_(top.head.weight)
        nn.init.zeros_(top.head.bias)
        opt = torch.optim.LBFGS(top.head.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(top.head(z), y_tr, weight=class_weight) + 1e-3 * (top.head.weight**2).sum()
            loss.backward()
            return loss

        opt.step(closure)

    # -- persistence and export -----------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        g: Any = self._graph()
        state: dict[str, Any] = {
            f"top.{k}": v.detach().numpy().copy()
            for k, v in g.top.state_dict().items()
            if v.dtype.is_floating_point
        }
        state.update(
            {
                "temperature": g.temperature,
                "good_index": g.good_index,
                "tta": g.tta,
                "classes": self.classes_,
                "calibration": self.calibration_,
                "history": self.history_,
            }
        )
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        self.classes_ = [str(c) for c in state["classes"]]
        top = TopBlocks(self.backbone, self.input_size, self.frozen_stage, len(self.classes_))
        weights = {
            k[len("top.") :]: torch.from_numpy(np.asarray(v))
            for k, v in state.items()
            if k.startswith("top.")
        }
        missing, unexpected = top.load_state_dict(weights, strict=False)
        if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
            raise ValueError(
                f"fine-tuned state does not fit the network: missing {missing}, unexpected {unexpected}"
            )
        top.eval().requires_grad_(False)
        self.graph_ = FineTunedGraph(  # type: ignore[assignment]
            self._trunk(),
            top,
            float(state["temperature"]),
            state.get("good_index"),
            tta=bool(state.get("tta", False)),
        ).eval()
        self.calibration_ = dict(state.get("calibration", {}))
        self.history_ = list(state.get("history", []))
        self.fitted_ = True

    def preprocessing(self) -> dict[str, Any]:
        prep = super().preprocessing()
        prep["in_graph"] = (
            f"raw pixels float32 (N, 1|3, H, W) in 0..255 -> grayscale to 3 channels -> bilinear resize to "
            f"{self.input_size}x{self.input_size} -> (x-127)/128 -> EfficientNet-{self.backbone.title()} "
            f"(stages 1-{self.frozen_stage} pretrained and frozen, the later blocks fine-tuned) -> global "
            f"avg+max -> linear -> softmax(logits/T)"
        )
        return prep

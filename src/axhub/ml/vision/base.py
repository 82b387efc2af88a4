"""Shared plumbing of the vision estimators: what counts as image data, labels, metrics.

Image data (``data`` in ``fit``/``score``/...) may be

* a list of images (numpy uint8 ``(H, W)`` grayscale or ``(H, W, 3)`` colour, any size),
* one stacked array ``(N, H, W)`` or ``(N, H, W, C)``, or
* a pandas DataFrame with an ``image`` column (arrays) or a ``path`` column (image files, read
  when needed by PatchCore),
  optionally ``label`` (and ``mask``); other columns (asset, part id, time...) are ignored.

Labels: numbers (0 = good, anything else = defect) or strings; a string label is *good* when
it is one of ``images.GOOD_LABELS`` or starts with ``ok``/``good``/``양품`` (so ``ok_front`` is good and
``def_front`` a defect); anything else is a defect class (``images.is_good_label``).

The ONNX graphs of this family take raw pixels: float32 ``(N, 1|3, H, W)`` in 0..255 named
``image`` (see :func:`graph_input`); resize and normalisation happen inside the graph. Their
bundles are "tensor" bundles (no ``columns``): ``BundleRunner.run(graph_input(images))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.base import Estimator, ExampleData
from axhub.ml.vision.images import LazyImages, as_image_list, decode_image
from axhub.ml.vision.onnx_export import image_input


def images_of(data: Any, where: str = "input", *, lazy: bool = False) -> Sequence[np.ndarray]:
    """The images in ``data`` (see module docstring), checked for shape and NaNs. With ``lazy``,
    a ``path`` column gives images read from their files when used (``LazyImages``), so a model
    that reads them batch by batch never holds them all; errors name the file by its ``source``
    column where there is one (an imported file's own name, not where the store keeps it)."""
    if isinstance(data, pd.DataFrame):
        if "image" in data.columns:
            return as_image_list(list(data["image"]))
        if "path" in data.columns:
            paths = [Path(p) for p in data["path"]]
            names = list(data["source"].astype(str)) if "source" in data.columns else [None] * len(paths)
            if lazy:
                return as_image_list(LazyImages.from_paths(paths, names))
            return [decode_image(p, name=n) for p, n in zip(paths, names, strict=True)]
        raise InputValidationError(
            InputProblem(where, None, "image", "column missing"),
            hint="give an 'image' column of arrays or a 'path' column of image files",
        )
    if isinstance(data, np.ndarray) and data.ndim == 2:
        return as_image_list([data])
    return as_image_list(data)


def labels_of(data: Any) -> np.ndarray | None:
    if isinstance(data, pd.DataFrame) and "label" in data.columns:
        return data["label"].to_numpy()
    return None


def graph_input(data: Any) -> np.ndarray:
    """Images of one size → the ONNX graph input float32 (N, C, H, W), C = 1 or 3."""
    imgs = images_of(data)
    arrays = [image_input(img) for img in imgs]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) != 1:
        raise InputValidationError(
            InputProblem("images", None, "shape", f"mixed sizes/channels {sorted(shapes)} in one batch"),
            hint="run images of different sizes one at a time (batch size 1)",
        )
    return np.concatenate(arrays, axis=0)


def binary_metrics(y_defect: np.ndarray, scores: np.ndarray, threshold: float | None) -> dict[str, float]:
    """Image AUROC (when both classes exist) and, at the threshold, F1/precision/recall/accuracy."""
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    y = np.asarray(y_defect, dtype=bool)
    out: dict[str, float] = {"n": float(len(y))}
    if 0 < y.sum() < len(y):
        out["auroc"] = float(roc_auc_score(y, scores))
    if threshold is not None:
        pred = np.asarray(scores) > threshold
        out["f1"] = float(f1_score(y, pred, zero_division=0))
        out["precision"] = float(precision_score(y, pred, zero_division=0))
        out["recall"] = float(recall_score(y, pred, zero_division=0))
        out["accuracy"] = float((pred == y).mean())
    return out


class VisionEstimator(Estimator):
    """Base of image models (family ``vision``)."""

    family: ClassVar[str] = "vision"
    input_kind: ClassVar[str] = "image"
    requires: ClassVar[tuple[str, ...]] = ("torch",)

    @staticmethod
    def graph_input(data: Any) -> np.ndarray:
        return graph_input(data)

    def bundle_input(self, data: Any) -> Any:
        """Vision bundles are tensor bundles: the runner takes the raw-pixel NCHW array."""
        return graph_input(data)

    @classmethod
    def example_data(cls, seed: int = 0) -> ExampleData:
        """Tiny synthetic parts (64 px, grayscale): good ones to train, a mix to score."""
        from axhub.sim.images import make_part_images

        train = make_part_images(10, 0, seed=seed + 1, size=64)
        test = make_part_images(3, 3, seed=seed + 2, size=64)
        frame = lambda parts: pd.DataFrame(  # noqa: E731 - tiny local helper
            {"image": [p.image for p in parts], "label": [p.label for p in parts]}
        )
        return ExampleData(train=frame(train), test=frame(test), labels=["label"])


def check_same_length(images: Sequence[np.ndarray], labels: np.ndarray | None) -> None:
    if labels is not None and len(labels) != len(images):
        raise InputValidationError(
            InputProblem("labels", None, "label", f"{len(labels)} labels for {len(images)} images")
        )

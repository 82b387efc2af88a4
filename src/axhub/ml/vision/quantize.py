"""INT8 static quantisation of a vision ONNX graph, kept only where accuracy holds.

``quantize_int8`` calibrates activation ranges on *real good images* (the same kind the model
sees in production; MinMax calibration over the given images) with
``onnxruntime.quantization.quantize_static`` and quantises the convolutions only (QDQ format,
per-channel int8 weights, uint8 activations). The PatchCore scoring part (squared distances to
the memory bank, ``‖x‖² − 2·x·mᵀ + ‖m‖²``) stays float32: it subtracts large, nearly equal numbers,
and 8-bit rounding there would destroy the small distances that matter.

``int8_decision`` is the rule: keep INT8 only if its AUROC on a labelled *validation* set is
within ``tolerance`` (default 0.005 = 0.5 point) of the float32 model's; without labelled
validation data it falls back to rank agreement of the scores on the calibration images
(Spearman ≥ 0.99). The decision is never taken on the test split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from axhub.ml.vision.onnx_export import image_input


class _ImageReader:
    """``CalibrationDataReader`` over a list of images, one per batch."""

    def __init__(self, input_name: str, images: Sequence[np.ndarray]) -> None:
        self.input_name = input_name
        self._iter: Iterator[np.ndarray] = iter(list(images))

    def get_next(self) -> dict[str, np.ndarray] | None:
        img = next(self._iter, None)
        return None if img is None else {self.input_name: image_input(img)}

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        raise NotImplementedError


def quantize_int8(
    fp32_path: Path, out_path: Path, calibration_images: Sequence[np.ndarray], input_name: str = "image"
) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if not calibration_images:
        raise ValueError("INT8 calibration needs real images (give some good parts)")
    reader: Any = _ImageReader(input_name, calibration_images)
    assert isinstance(reader, CalibrationDataReader) or hasattr(reader, "get_next")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(fp32_path),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out_path


def int8_decision(
    fp32_scores: np.ndarray,
    int8_scores: np.ndarray,
    y_defect: np.ndarray | None,
    tolerance: float = 0.005,
) -> dict[str, Any]:
    """Whether to ship INT8, with the figures behind the decision."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    rho = float(spearmanr(fp32_scores, int8_scores).statistic) if len(fp32_scores) > 2 else float("nan")
    out: dict[str, Any] = {"spearman": rho}
    if y_defect is not None and 0 < np.sum(y_defect) < len(y_defect):
        a32 = float(roc_auc_score(y_defect, fp32_scores))
        a8 = float(roc_auc_score(y_defect, int8_scores))
        out.update(auroc_fp32=a32, auroc_int8=a8, keep=bool(a32 - a8 <= tolerance), basis="validation AUROC")
    else:
        out.update(keep=bool(rho >= 0.99), basis="score rank agreement (no labelled validation data)")
    return out

"""Export vision graphs to ONNX and run them with onnxruntime (one place for both)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17


def export_graph(graph: nn.Module, example: torch.Tensor, path: Path, outputs: Sequence[str]) -> Path:
    """Trace ``graph`` on ``example`` (N, C, H, W) with batch, height and width left dynamic.

    The TorchScript exporter (``dynamo=False``) is used: it needs no extra package and handles
    the resize-to-input-size of the heatmap with dynamic image sizes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    dyn = {"image": {0: "batch", 1: "channels", 2: "height", 3: "width"}}
    for name in outputs:
        dyn[name] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=list(outputs),
            dynamic_axes=dyn,
            opset_version=OPSET,
        )
    return path


def ort_session(path: Path | bytes, threads: int = 1) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    model = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def image_input(img: np.ndarray) -> np.ndarray:
    """One uint8 image (H, W) or (H, W, C) → the graph's float32 (1, C, H, W) input."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])

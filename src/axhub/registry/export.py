"""ONNX helpers for estimators: small graph building blocks and a model finaliser.

Needs the ``onnx`` package (training side); the edge only needs onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Opset used by hand-built graphs (ReduceSum takes axes as an input since 13).
OPSET = 17


def const(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    """An initializer tensor from a numpy value."""
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name)


def float_input(name: str, shape: list[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def float_output(name: str, shape: list[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def build_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto],
    *,
    name: str,
    doc: str = "",
) -> onnx.ModelProto:
    """A checked ONNX model (default domain, :data:`OPSET`)."""
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers, doc_string=doc)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="axhub")
    model.ir_version = min(model.ir_version, 9)  # readable by older onnxruntime builds at the edge
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def standardize_nodes(
    input_name: str, output_name: str, mean: np.ndarray, scale: np.ndarray, prefix: str = "std"
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """``(x - mean) / scale`` as two nodes (mean/scale broadcast over the last axis)."""
    inits = [const(f"{prefix}_mean", mean), const(f"{prefix}_inv_scale", 1.0 / np.asarray(scale))]
    nodes = [
        helper.make_node("Sub", [input_name, f"{prefix}_mean"], [f"{prefix}_centered"]),
        helper.make_node("Mul", [f"{prefix}_centered", f"{prefix}_inv_scale"], [output_name]),
    ]
    return nodes, inits


def merge_models(
    first: onnx.ModelProto, second: onnx.ModelProto, io_map: list[tuple[str, str]], prefix: str = "m2_"
) -> onnx.ModelProto:
    """Chain two models (outputs of ``first`` feed inputs of ``second``)."""
    from onnx import compose

    second = compose.add_prefix(second, prefix=prefix)
    mapped = [(a, prefix + b) for a, b in io_map]
    return compose.merge_models(first, second, io_map=mapped)

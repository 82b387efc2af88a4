"""The joint model as ONNX: the shared network with the run's final parameters, so a member
takes it home as a graph any ONNX runtime can score (artifacts travel as ONNX + JSON; the
parameters are read with ``allow_pickle=False``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from axhub.core.errors import NotFoundError
from axhub.federated.hub import task_for
from axhub.federated.learner import build_net, set_params
from axhub.store.models import FedCollaborationRow

# "If small": a joint model above this is not served over the dashboard.
MAX_BYTES = 50 * 1024 * 1024


def joint_onnx(row: FedCollaborationRow, params_path: Path) -> bytes:
    import torch

    if not params_path.is_file():
        raise NotFoundError("no joint model yet: run the collaboration first")
    with np.load(params_path, allow_pickle=False) as z:
        params = [z[f"arr_{i}"] for i in range(len(z.files))]
    task = task_for(row)
    net = build_net(task)
    set_params(net, params)
    net.eval()
    buf = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.zeros(1, task.n_features, dtype=torch.float32),),
        buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to a file object too
        input_names=["features"],
        output_names=["output"],
        dynamic_axes={"features": {0: "N"}, "output": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    return buf.getvalue()


def joint_bundle(row: FedCollaborationRow, params_path: Path, run_id: str) -> bytes:
    """A zip of ``model.onnx`` and ``model.json`` (input order = the schema's signals, each
    standardised with the site's own statistics; regression output × ``target_scale``)."""
    import json
    import zipfile

    graph = joint_onnx(row, params_path)
    meta = {
        "collaboration": row.name,
        "family": row.family,
        "run_id": run_id,
        "inputs": list(row.schema["signals"]),
        "input_scaling": "standardise each input with your own site's mean and std",
        "target": row.schema.get("target"),
        "target_scale": float(row.schema.get("target_scale", 1.0)),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.onnx", graph)
        archive.writestr("model.json", json.dumps(meta, ensure_ascii=False, indent=2))
    return buf.getvalue()

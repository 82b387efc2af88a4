"""An operating point chosen after training travels inside the bundle.

An inspector picks the threshold on the trade-off curve long after the model was trained. If the
choice lived only in the registry row, every place that runs the bundle without the hub (the edge
agent, a downloaded zip, ``axhub vision score``) would still judge parts at the training
threshold. So a choice makes a new bundle: the same ONNX graph and state, with

* ``preprocessing.json`` ``threshold`` (what :class:`~axhub.registry.bundle.BundleRunner` turns
  into ``is_anomaly``) and ``operating_point`` set to the choice,
* ``state/state.json`` ``threshold``/``operating`` set too, so the Python estimator loaded from
  the bundle gives the same verdicts as the runner,
* ``manifest.json`` ``operating_point`` (with when it was chosen) and fresh file hashes.

The registry version then points at the new bundle; the trained one stays in the blob store (its
hash is kept in ``params.trained_bundle_sha256``), so nothing is lost and the choice can be undone.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from axhub.registry.bundle import (
    MODEL_FILE,
    STATE_DIR,
    BundleError,
    read_bundle,
    write_bundle,
    zip_bundle,
)
from axhub.registry.store import ModelRegistry
from axhub.store.models import ModelVersionRow

# Written by the registry, not by the bundle's author: never copied from the source manifest.
_MANIFEST_OWN = ("files", "signature", "format")


def point_without_curve(point: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in point.items() if k != "curve"}


def with_operating_point(
    source: str | Path, out: str | Path, point: Mapping[str, Any], *, key: bytes | None = None
) -> Path:
    """Write ``out``: the bundle at ``source`` judging at ``point["threshold"]`` (see module doc)."""
    bundle = read_bundle(source, key=key)
    if "threshold" not in point:
        raise BundleError("an operating point needs a threshold")
    if bundle.manifest.get("signature") and key is None:
        raise BundleError(
            "this bundle is signed; a new operating point needs the hub key to sign it again",
            hint="choose the operating point on the hub that signed the bundle",
        )
    chosen = {"chosen_at": datetime.now(UTC).isoformat(timespec="seconds"), **point_without_curve(point)}
    threshold = float(point["threshold"])
    prep = dict(bundle.preprocessing)
    prep["threshold"] = threshold
    prep["operating_point"] = chosen
    policy = chosen.get("policy")
    prep["calibration"] = f"{prep.get('calibration', '')}; operating point {policy} at {threshold}"
    files: dict[str, bytes] = {}
    for name, path in bundle.state_files().items():
        payload = path.read_bytes()
        if name == "state.json":
            state = json.loads(payload)
            state["threshold"] = threshold
            if isinstance(state.get("operating"), dict):
                curve = state["operating"].get("curve")  # the trade-off itself does not change
                state["operating"] = {**chosen, **({"curve": curve} if curve is not None else {})}
            payload = json.dumps(state).encode()
        files[f"{STATE_DIR}/{name}"] = payload
    manifest = {k: v for k, v in bundle.manifest.items() if k not in _MANIFEST_OWN}
    manifest["operating_point"] = chosen
    return write_bundle(
        out,
        onnx_model=(bundle.path / MODEL_FILE).read_bytes(),
        preprocessing=prep,
        manifest=manifest,
        files=files,
        key=key,
        overwrite=True,
    )


def store_operating_point(
    registry: ModelRegistry, row: ModelVersionRow, point: Mapping[str, Any]
) -> ModelVersionRow:
    """Record ``point`` on the version and point the version at a bundle that carries it."""
    point = {"chosen_at": datetime.now(UTC).isoformat(timespec="seconds"), **point_without_curve(point)}
    _, path = registry.bundle_path(row.id)
    with tempfile.TemporaryDirectory(prefix="axhub-opoint-") as tmp:
        rebuilt = with_operating_point(path, Path(tmp) / "bundle", point)
        sha = registry.blobs.put(zip_bundle(rebuilt))
    params = dict(row.params)
    params.setdefault("trained_bundle_sha256", row.bundle_sha256)
    params["operating_point"] = point
    row.params = params
    row.bundle_sha256 = sha
    registry.scope.session.flush()
    return row

"""The demo's visual inspection station: learn good parts, inspect new ones, explain with heatmaps.

Part images come from the simulator (textured castings with injected scratches, holes and
cracks). PatchCore learns from good parts only; the new parts are scored through the saved
bundle (ONNX, as the edge agent would), and each verdict with its image and heatmap is kept so
the dashboard's inspection page shows them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from axhub.core.settings import Settings
from axhub.core.timeutil import utcnow
from axhub.store.blobs import BlobStore
from axhub.store.db import Database
from axhub.store.models import JobRow
from axhub.store.scoped import OrgScope

IMAGE_SIZE = 128
INPUT_SIZE = 160  # the light PatchCore configuration: fast enough for a demo on two cores
JOB_KIND = "inspect"


@dataclass
class InspectionSummary:
    parts: int
    defects_true: int
    defects_flagged: int
    defects_caught: int
    false_alarms: int
    model_name: str


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def run_inspection(
    settings: Settings, db: Database, org_id: str, *, seed: int, n_train: int = 80, n_new: int = 12
) -> InspectionSummary:
    from axhub.ml.vision.onnx_export import image_input
    from axhub.ml.vision.overlay import heat_rgba_png
    from axhub.ml.vision.patchcore import PatchCore
    from axhub.registry.bundle import BundleRunner
    from axhub.registry.store import ModelRegistry
    from axhub.sim.images import make_part_images

    good = make_part_images(n_train, 0, seed=seed, size=IMAGE_SIZE)
    # 30 % of the good parts are held out to set the threshold; ~24 of them cannot bound a 1 %
    # false-alarm rate, so the threshold is their maximum, and a 10 % margin covers normal
    # variation beyond it.
    # Backbone, stages and margin are fixed (the light configuration) to keep the demo quick on two cores.
    model = PatchCore(
        input_size=INPUT_SIZE,
        backbone="lite0",
        stages=(2, 3),
        score_margin=0,
        bank_size=1000,
        calibration_fraction=0.3,
        threshold_margin=1.1,
        seed=seed,
    ).fit(pd.DataFrame({"image": [p.image for p in good]}))
    bundle = model.save(settings.home / "demo" / "models" / "inspection")
    runner = BundleRunner(bundle)
    # A shift's worth of new parts, a third of them defective.
    n_bad = n_new // 3
    new = make_part_images(n_new - n_bad, n_bad, seed=seed + 1, size=IMAGE_SIZE)
    order = np.random.default_rng(seed).permutation(len(new))
    blobs = BlobStore(settings.blob_root)
    results: list[dict[str, Any]] = []
    heatmaps: list[np.ndarray] = []
    for i in order:
        out = runner.run(image_input(new[i].image))
        heatmaps.append(np.asarray(out["heatmap"][0]))
        results.append(
            {
                "part_id": f"IMP-{seed:02d}-{len(results) + 1:03d}",
                "defect": bool(out["is_anomaly"][0]),
                "score": float(np.asarray(out["score"]).reshape(-1)[0]),
                "truth": new[i].label,
                "image_sha256": blobs.put(_png(new[i].image)),
            }
        )
    # One colour scale for every part, anchored to the model's threshold: good parts look calm.
    threshold = float(model.threshold_ or 0.0)
    for part, heat in zip(results, heatmaps, strict=True):
        part["heatmap_sha256"] = blobs.put(heat_rgba_png(heat, threshold))
        part["threshold"] = threshold
    with db.session() as session:
        scope = OrgScope(session, org_id)
        version = ModelRegistry(scope, blobs).register(bundle, name="casting-inspection")
        for old in scope.list(JobRow, kind=JOB_KIND):  # a re-run replaces the demo's shift
            scope.delete(old)
        now = utcnow()
        scope.add(
            JobRow(
                kind=JOB_KIND,
                spec={"model_version_id": version.id, "parts": len(results), "source": "demo"},
                state="succeeded",
                progress=1.0,
                attempts=1,
                result={"parts": results},
                created_at=now,
                started_at=now,
                finished_at=now,
            )
        )
        model_name = f"{version.name} v{version.version}"
    flagged = [p for p in results if p["defect"]]
    truly_bad = [p for p in results if p["truth"] != "good"]
    return InspectionSummary(
        parts=len(results),
        defects_true=len(truly_bad),
        defects_flagged=len(flagged),
        defects_caught=sum(1 for p in flagged if p["truth"] != "good"),
        false_alarms=sum(1 for p in flagged if p["truth"] == "good"),
        model_name=model_name,
    )

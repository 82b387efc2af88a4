"""Operating points of inspection models over HTTP: the trade-off, and the inspector's choice.

``GET /models/{id}/operating-points`` gives, for a model version whose bundle keeps calibration
scores (PatchCore), the false-alarm vs miss-rate curve on its calibration images and the point
now chosen. ``POST /models/{id}/operating-point`` chooses one — a target false-alarm rate
(policy a, good images only, with a confidence bound), a target miss rate (policy b, needs at
least 5 calibration defects) or an explicit threshold picked from the curve — and stores it with
the model version (``params.operating_point``) and in a re-issued bundle that carries it
(:mod:`axhub.registry.operating_point`), so the dashboard, the hub's scorers, a downloaded bundle
and the edge all judge parts by one choice.
See :mod:`axhub.ml.vision.operating` for the statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter
from pydantic import Field

from axhub.api.deps import ReadScope, State, WriteScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.schemas.common import In, Out
from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.vision import operating
from axhub.registry.bundle import read_bundle
from axhub.registry.operating_point import store_operating_point
from axhub.registry.store import ModelRegistry
from axhub.store.scoped import OrgScope

router = APIRouter(prefix="/models", tags=["models"], responses=ERROR_RESPONSES)


class OperatingPointIn(In):
    """Exactly one of the three."""

    target_false_alarm: float | None = Field(None, gt=0, lt=1, description="policy (a): e.g. 0.01")
    target_miss: float | None = Field(None, ge=0, lt=1, description="policy (b): e.g. 0.05")
    threshold: float | None = Field(None, description="an explicit threshold picked from the curve")
    confidence: float = Field(0.95, gt=0.5, lt=1)


class OperatingPointsOut(Out):
    model_version_id: str
    chosen: dict[str, Any]
    curve: list[dict[str, Any]]
    n_good: int
    n_defects: int
    self_check: dict[str, float | bool] | None = Field(
        None,
        description="the chosen features' self-check on synthetic defects pasted into held-out good "
        "images (synthetic_auroc, its bootstrap std, synthetic_recall_at_max_good, and weak: "
        "synthetic_auroc below 0.8); none when the features were given",
    )


def _calibration(
    scope: OrgScope, state: State, version_id: str
) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any], dict[str, float | bool] | None]:
    registry = ModelRegistry(scope, state.blobs)
    row, path = registry.bundle_path(version_id)
    bundle = read_bundle(path)
    names = bundle.state_files()
    if "calibration_scores.npy" not in names:
        raise InputValidationError(
            InputProblem(
                f"model {version_id}", None, "calibration_scores", "this model keeps no calibration scores"
            ),
            hint="operating points exist for inspection models trained from good images (PatchCore)",
        )
    good = bundle.load_array("calibration_scores")
    defects = (
        bundle.load_array("calibration_defect_scores")
        if "calibration_defect_scores.npy" in names
        else np.array([])
    )
    stored = dict(bundle.preprocessing.get("operating_point") or {})
    check = (bundle.preprocessing.get("feature_selection") or {}).get("self_check")
    if check:
        check = {**check, "weak": operating.weak_self_check(check)}
    return row, good, defects, stored, check


@router.get(
    "/{version_id}/operating-points", operation_id="get_operating_points", response_model=OperatingPointsOut
)
def get_operating_points(version_id: str, scope: ReadScope, state: State) -> OperatingPointsOut:
    """False alarms vs misses on the calibration images, and the chosen operating point."""
    row, good, defects, stored, check = _calibration(scope, state, version_id)
    chosen = dict(row.params.get("operating_point") or stored)
    return OperatingPointsOut(
        model_version_id=row.id,
        chosen=chosen,
        curve=operating.tradeoff(good, defects if len(defects) else None),
        n_good=len(good),
        n_defects=len(defects),
        self_check=check,
    )


@router.post(
    "/{version_id}/operating-point", operation_id="choose_operating_point", response_model=OperatingPointsOut
)
def choose_operating_point(
    version_id: str, body: OperatingPointIn, scope: WriteScope, state: State
) -> OperatingPointsOut:
    """Choose the threshold by a target false-alarm rate, a target miss rate or explicitly; the
    choice is stored with the model version."""
    given = [k for k in ("target_false_alarm", "target_miss", "threshold") if getattr(body, k) is not None]
    if len(given) != 1:
        raise InputValidationError(
            InputProblem(
                "operating point",
                None,
                "target",
                "give exactly one of target_false_alarm, target_miss, threshold",
            )
        )
    ModelRegistry(scope, state.blobs).get(version_id)  # only the owner chooses (a shared model is read-only)
    row, good, defects, _, check = _calibration(scope, state, version_id)
    try:
        if body.target_false_alarm is not None:
            point = operating.good_only_threshold(good, body.target_false_alarm, body.confidence)
        elif body.target_miss is not None:
            point = operating.miss_rate_threshold(good, defects, body.target_miss)
        else:
            t = float(body.threshold)  # type: ignore[arg-type]
            point = {
                "policy": "chosen",
                "threshold": t,
                "false_alarm_rate_calibration": float((good > t).mean()),
                "miss_rate_calibration": float((defects <= t).mean()) if len(defects) else None,
            }
    except ValueError as exc:
        raise InputValidationError(InputProblem("operating point", None, given[0], str(exc))) from exc
    k = int((good <= point["threshold"]).sum())
    point["false_alarm_rate_upper_bound"] = operating.far_upper_bound(len(good), k, body.confidence)
    # The bundle itself carries the choice, so every runner (edge, download, CLI) judges by it.
    store_operating_point(ModelRegistry(scope, state.blobs), row, point)
    return OperatingPointsOut(
        model_version_id=row.id,
        chosen=row.params["operating_point"],
        curve=operating.tradeoff(good, defects if len(defects) else None),
        n_good=len(good),
        n_defects=len(defects),
        self_check=check,
    )

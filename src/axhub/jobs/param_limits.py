"""Upper bounds on the hyper-parameters that set how much work a training job does.

One request must not buy unbounded compute on shared workers: ``n_estimators=3000`` on a tiny
dataset once ran for a quarter of an hour (thousands of trees, each exported to ONNX). The
bounds are far above any setting the model families need (their defaults are 100-300 trees,
tens of epochs) and are checked when the job is submitted, with a 422 naming the parameter.
"""

from __future__ import annotations

import math
from typing import Any

from axhub.core.errors import InputProblem, InputValidationError

# parameter name -> (lowest, highest) accepted, whatever the estimator
BOUNDS: dict[str, tuple[float, float]] = {
    "n_estimators": (1, 1000),
    "max_iter": (1, 5000),
    "epochs": (1, 500),
    "batch_size": (1, 65_536),
    "window": (1, 10_000),
    "smooth": (1, 10_000),
    "max_samples": (1, 1_000_000),
    "calibration_folds": (2, 20),
    "hidden": (1, 4096),
    "latent": (1, 1024),
    "input_size": (8, 1024),
    "bank_size": (1, 100_000),
    "coreset_projection": (1, 4096),
    "max_regimes": (1, 64),
    "n_regimes": (1, 64),
    "max_depth": (1, 64),
    "num_leaves": (2, 4096),
    "n_components": (0, 1000),
}
# Any other number must at least be finite and of a sane magnitude.
ANY_NUMBER = 1e9


def check_params(params: dict[str, Any], where: str = "params") -> None:
    problems = []
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or abs(value) > ANY_NUMBER:
            problems.append(
                InputProblem("job spec", None, f"{where}.{name}", f"{value!r} is not a usable number")
            )
            continue
        low, high = BOUNDS.get(name, (-ANY_NUMBER, ANY_NUMBER))
        if not low <= value <= high:
            problems.append(
                InputProblem("job spec", None, f"{where}.{name}", f"{value!r} is outside {low:g}..{high:g}")
            )
    if problems:
        raise InputValidationError(problems, hint="use a value inside the range; the defaults suit most data")

"""Deploying a model version that does not beat its trivial baseline needs an explicit override.

The flag comes from the version's stored metrics (``beats_baseline``, written by the model
family's ``evaluate``; see :mod:`axhub.ml.baseline`). A version without the flag was never
compared and is deployable as before.
"""

from __future__ import annotations

from typing import Any

from axhub.core.errors import ConflictError

BEATS_BASELINE = "beats_baseline"


def beats_baseline(metrics: dict[str, Any] | None) -> bool | None:
    """True/False when the version was compared with its baseline, None when it was not."""
    value = (metrics or {}).get(BEATS_BASELINE)
    if value is None:
        return None
    return bool(value)


def ensure_deployable(
    name: str, version: int, metrics: dict[str, Any] | None, *, allow_below_baseline: bool
) -> None:
    """Raise :class:`ConflictError` for a version below its baseline unless overridden."""
    if beats_baseline(metrics) is False and not allow_below_baseline:
        metrics = metrics or {}
        baselines = ", ".join(
            f"{k.removeprefix('baseline_')} {metrics.get(k.removeprefix('baseline_'))} vs baseline {v}"
            for k, v in metrics.items()
            if k.startswith("baseline_")
        )
        raise ConflictError(
            f"model {name} v{version} does not beat its trivial baseline ({baselines or 'see its metrics'})",
            hint="retrain or pick another version; to deploy it anyway pass allow_below_baseline=true "
            "(CLI: --allow-below-baseline)",
        )

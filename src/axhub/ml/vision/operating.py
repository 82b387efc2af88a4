"""Operating points: where to put the threshold, and what each choice costs.

AUROC hides what an inspector meets first: the threshold. Two policies, both stated in the
inspector's terms and both stored with the model (``PatchCore.operating_``):

**(a) good images only: a target false-alarm rate, with a confidence bound.** The held-out good
images' scores are an i.i.d. sample of normal variation. If the threshold is the ``k``-th
smallest of ``n`` such scores, the false-alarm rate ``p`` it gives on new good parts is itself
random, distributed ``Beta(n + 1 - k, k)`` (order statistics of a continuous distribution;
distribution-free). We take the *smallest* ``k`` whose ``1 - delta`` upper bound of ``p`` is at
most the target, so "at most 1 % false alarms, with 95 % confidence" is a statement that holds
whatever the score distribution is. With too few good images no ``k`` qualifies (bounding 1 %
at 95 % needs 299 images); then the threshold is the largest held-out score and the bound it
does give is reported, with the number of good images that would be needed.

**(b) a handful of labelled defects (>= 5): a target miss rate.** The threshold sits below all
but ``floor(target * m)`` of the ``m`` calibration defects' scores, halfway to the next lower
score among all calibration images (a margin on both sides). These defects are spent on
calibration: evaluations must leave them out (their hashes are kept for that).

``tradeoff`` gives the whole curve (false alarms on the calibration good images, misses on the
calibration defects, for every candidate threshold) so the dashboard can show it and the
inspector can pick a point; the pick is stored with the model version.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_DEFECTS = 5
# Below this synthetic AUROC of its self-check (``selection.py``) a model is called weak, on the
# inspection page and by ``axhub vision train``: it cannot tell even defects pasted into its own
# good images from the product's normal look (KolektorSDD 70.6 %, castings 93 %). Kept here, free
# of torch, because the API reads it.
WEAK_SELF_CHECK = 0.8


def weak_self_check(check: dict[str, Any] | None) -> bool:
    """Whether a model's stored self-check (``selection_["self_check"]``) calls it weak; a model
    whose features were given has none and is not called anything."""
    return check is not None and float(check["synthetic_auroc"]) < WEAK_SELF_CHECK


def far_upper_bound(n: int, k: int, confidence: float) -> float:
    """Upper ``confidence`` bound of the false-alarm rate of the ``k``-th smallest of ``n`` scores."""
    from scipy.stats import beta

    if k <= 0:
        return 1.0
    if k >= n + 1:
        return 0.0
    return float(beta.ppf(confidence, n + 1 - k, k))


def good_images_needed(target: float, confidence: float) -> int:
    """Held-out good images needed before the largest of them bounds ``target`` (``(1-t)^n <= 1-c``)."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - target))


def good_only_threshold(
    good: np.ndarray, target_far: float = 0.01, confidence: float = 0.95
) -> dict[str, Any]:
    """Policy (a): see the module docstring."""
    s = np.sort(np.asarray(good, dtype=float))
    n = len(s)
    if n == 0:
        raise ValueError("policy (a) needs held-out good images")
    chosen = n
    for k in range(1, n + 1):
        if far_upper_bound(n, k, confidence) <= target_far:
            chosen = k
            break
    threshold = float(s[chosen - 1])
    bound = far_upper_bound(n, chosen, confidence)
    return {
        "policy": "good-only",
        "target_false_alarm_rate": target_far,
        "confidence": confidence,
        "threshold": threshold,
        "n_good": n,
        "rank": chosen,
        "false_alarm_rate_calibration": float((s > threshold).mean()),
        "false_alarm_rate_upper_bound": bound,
        "target_met": bool(bound <= target_far),
        "good_images_needed": good_images_needed(target_far, confidence),
    }


def miss_rate_threshold(good: np.ndarray, defects: np.ndarray, target_miss: float = 0.05) -> dict[str, Any]:
    """Policy (b): see the module docstring."""
    d = np.sort(np.asarray(defects, dtype=float))
    g = np.asarray(good, dtype=float)
    m = len(d)
    if m < MIN_DEFECTS:
        raise ValueError(f"policy (b) needs at least {MIN_DEFECTS} labelled defect images, got {m}")
    allowed = math.floor(target_miss * m + 1e-9)
    lowest_caught = d[allowed]
    below = np.concatenate([g[g < lowest_caught], d[d < lowest_caught]])
    threshold = float((below.max() + lowest_caught) / 2) if len(below) else float(lowest_caught - 1e-6)
    return {
        "policy": "miss-rate",
        "target_miss_rate": target_miss,
        "threshold": threshold,
        "n_good": len(g),
        "n_defects": m,
        "miss_rate_calibration": float((d <= threshold).mean()),
        "false_alarm_rate_calibration": float((g > threshold).mean()) if len(g) else None,
    }


def tradeoff(
    good: np.ndarray, defects: np.ndarray | None = None, confidence: float = 0.95
) -> list[dict[str, Any]]:
    """False alarms vs misses on the calibration images, one point per candidate threshold
    (each distinct calibration score), lowest threshold first."""
    g = np.sort(np.asarray(good, dtype=float))
    d = np.asarray(defects if defects is not None else [], dtype=float)
    candidates = np.unique(np.concatenate([g, d]))
    n = len(g)
    points = []
    for t in candidates:
        k = int(np.searchsorted(g, t, side="right"))  # good scores <= t
        points.append(
            {
                "threshold": float(t),
                "false_alarm_rate": float((n - k) / n) if n else None,
                "false_alarm_rate_upper_bound": far_upper_bound(n, k, confidence) if n else 1.0,
                "miss_rate": float((d <= t).mean()) if len(d) else None,
            }
        )
    return points


def choose(
    good: np.ndarray,
    defects: np.ndarray | None = None,
    *,
    target_far: float = 0.01,
    target_miss: float = 0.05,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Policy (b) when enough defects were given, else policy (a); with the trade-off curve."""
    if defects is not None and len(defects) >= MIN_DEFECTS:
        point = miss_rate_threshold(good, defects, target_miss)
        point["false_alarm_rate_upper_bound"] = far_upper_bound(
            len(good), int((np.asarray(good) <= point["threshold"]).sum()), confidence
        )
    else:
        point = good_only_threshold(good, target_far, confidence)
    point["curve"] = tradeoff(good, defects, confidence)
    return point

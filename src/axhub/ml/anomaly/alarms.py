"""Alarm policies: from a score series (already divided by its threshold) to alarms.

``threshold`` raises an alarm on every row whose score ratio exceeds 1. ``latch`` adds
hysteresis for faults that persist (a closed valve, a worn bearing): an alarm starts when the
ratio exceeds 1 and holds until the ratio has stayed below ``release_level`` for ``release_rows``
consecutive rows. ``jump latch`` (:func:`jump_latch_alarms`) is the latch plus a changepoint
trigger: it also starts an alarm when the score jumps by a factor ``jump`` above its own recent
level, so a fault that lifts the score from 0.2 to 0.6 of the threshold (a step the eye sees at
once) is not lost because the threshold, set for slow drift of normal operation, sits higher.
Every policy uses only the threshold fitted on normal data; ``jump`` comes from normal data too
(:func:`jump_factor`); the other numbers are fixed beforehand, never fitted to labelled anomalies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

#: Rows of recent normal score that a jump is measured against (a quarter of SKAB's 400-row fit).
JUMP_WINDOW = 100
#: A jump is a rise that normal pseudo-runs exceed on at most this share of rows.
JUMP_QUANTILE = 0.99


def threshold_alarms(ratio: np.ndarray) -> np.ndarray:
    return np.asarray(ratio, dtype=np.float64) > 1.0


def latch_alarms(ratio: np.ndarray, release_level: float = 0.7, release_rows: int = 30) -> np.ndarray:
    """Hysteresis: on above 1, off after ``release_rows`` rows in a row below ``release_level``."""
    values = np.asarray(ratio, dtype=np.float64)
    out = np.zeros(len(values), dtype=bool)
    on, quiet = False, 0
    for i, v in enumerate(values):
        if v > 1.0:
            on, quiet = True, 0
        elif on:
            quiet = quiet + 1 if v < release_level else 0
            if quiet >= release_rows:
                on = False
        out[i] = on
    return out


def _log(ratio: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(ratio, dtype=np.float64), 1e-12))


def jump_sizes(ratio: np.ndarray, window: int = JUMP_WINDOW) -> np.ndarray:
    """Each row's ratio over the median of the ``window`` rows before it (1 for the first row)."""
    logs = _log(ratio)
    out = np.ones(len(logs))
    for i in range(1, len(logs)):
        out[i] = np.exp(logs[i] - np.median(logs[max(0, i - window) : i]))
    return out


def jump_factor(
    normal_ratios: Sequence[np.ndarray], window: int = JUMP_WINDOW, quantile: float = JUMP_QUANTILE
) -> float:
    """The ``quantile`` of :func:`jump_sizes` over score series of normal operation (at least 1.5:
    a factor near 1 would alarm on noise)."""
    sizes = np.concatenate([jump_sizes(r, window) for r in normal_ratios])
    return max(1.5, float(np.quantile(sizes, quantile)))


def jump_latch_alarms(
    ratio: np.ndarray,
    jump: float,
    window: int = JUMP_WINDOW,
    release_level: float = 0.7,
    release_rows: int = 30,
) -> np.ndarray:
    """Latch with a changepoint trigger.

    Off: an alarm starts when the ratio exceeds 1 or exceeds ``jump`` times the median of the last
    ``window`` quiet rows (the local baseline). On: the baseline is frozen at its value when the
    alarm started (a persistent fault must not become the new normal), and the alarm ends after
    ``release_rows`` rows in a row that are both below ``release_level`` and back under ``jump``
    times the frozen baseline. Those rows then join the baseline.
    """
    logs = _log(ratio)
    log_jump, log_release = np.log(jump), np.log(release_level)
    out = np.zeros(len(logs), dtype=bool)
    quiet_rows: deque[float] = deque(maxlen=window)
    on, quiet, frozen = False, 0, 0.0
    for i, v in enumerate(logs):
        if not on:
            baseline = float(np.median(quiet_rows)) if quiet_rows else v
            if v > 0.0 or v - baseline > log_jump:
                on, quiet, frozen = True, 0, baseline
            else:
                quiet_rows.append(v)
        else:
            quiet = quiet + 1 if (v < log_release and v - frozen < log_jump) else 0
            if quiet >= release_rows:
                on = False
                quiet_rows.extend(logs[i - release_rows + 1 : i + 1])
        out[i] = on
    return out

"""Alarm policies: from a score series (already divided by its threshold) to alarms.

``threshold`` raises an alarm on every row whose score ratio exceeds 1. ``latch`` adds
hysteresis for faults that persist (a closed valve, a worn bearing): an alarm starts when the
ratio exceeds 1 and holds until the ratio has stayed below ``release_level`` for ``release_rows``
consecutive rows. Both use only the threshold fitted on normal data; the policy's two numbers are
fixed beforehand, never fitted to labelled anomalies.
"""

from __future__ import annotations

import numpy as np


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

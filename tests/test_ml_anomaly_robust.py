"""Robust MSPC (anomalies inside the fitting window) and the latch alarm policies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from axhub.ml.anomaly import MSPC
from axhub.ml.anomaly.alarms import jump_factor, jump_latch_alarms, latch_alarms, threshold_alarms


def _correlated(rng: np.random.Generator, n: int) -> np.ndarray:
    latent = rng.normal(size=(n, 2))
    mixing = np.array([[1.0, 0.5, -0.3, 0.8], [0.2, -1.0, 0.7, 0.4]])
    return latent @ mixing + 0.1 * rng.normal(size=(n, 4))


def test_robust_mspc_keeps_its_threshold_when_the_fitting_window_holds_anomalies() -> None:
    rng = np.random.default_rng(0)
    train = _correlated(rng, 400)
    train[150:190] += np.array([0.0, 0.0, 3.0, -3.0])  # a fault inside the "normal" window
    test = _correlated(rng, 400)
    test[200:300] += np.array([0.0, 0.0, 1.5, -1.5])
    cols = ["a", "b", "c", "d"]
    fit, score = pd.DataFrame(train, columns=cols), pd.DataFrame(test, columns=cols)
    plain = MSPC(columns=cols).fit(fit)
    robust = MSPC(columns=cols, robust=True).fit(fit)
    truth = np.zeros(400, dtype=bool)
    truth[200:300] = True
    recall = {
        m: float(np.mean(model.predict(score)[truth])) for m, model in (("plain", plain), ("robust", robust))
    }
    false_alarm = float(np.mean(robust.predict(score)[~truth]))
    assert recall["robust"] > recall["plain"] + 0.3  # the contaminated fit hides the fault
    assert recall["robust"] > 0.8 and false_alarm < 0.1


def test_latch_holds_an_alarm_until_the_score_stays_low() -> None:
    ratio = np.array([0.2, 1.5, 0.9, 0.8, 1.2, 0.5, 0.5, 0.5, 0.2, 0.2])
    np.testing.assert_array_equal(threshold_alarms(ratio), ratio > 1)
    held = latch_alarms(ratio, release_level=0.7, release_rows=3)
    # on at the first crossing, held through 0.9/0.8 (not below 0.7), released after 3 low rows
    np.testing.assert_array_equal(held, [0, 1, 1, 1, 1, 1, 1, 0, 0, 0])


def _noisy_level(rng: np.random.Generator, levels: np.ndarray, noise: float = 0.1) -> np.ndarray:
    return levels * np.exp(noise * rng.normal(size=len(levels)))


def test_jump_latch_catches_a_step_under_the_threshold_and_holds_it_past_its_window() -> None:
    rng = np.random.default_rng(1)
    levels = np.full(900, 0.2)
    levels[300:700] = 0.6  # a fault: 3x the normal level, still under the threshold (1.0)
    ratio = _noisy_level(rng, levels)
    jump = jump_factor([_noisy_level(rng, np.full(750, 0.2)) for _ in range(4)])
    assert 1.2 < jump < 2.0  # 0.99 quantile of exp(0.1 N) over its median, well under the step
    alarms = jump_latch_alarms(ratio, jump, window=100)
    assert not latch_alarms(ratio).any()  # the plain latch never sees it
    # on within a few rows of the step, held for all 400 rows (4 windows: the baseline is frozen),
    # released within the 30 quiet rows (+ a few) after it
    assert alarms[305:700].all()
    assert not alarms[:300].any() and not alarms[740:].any()


def test_jump_latch_ignores_slow_drift_and_still_alarms_above_the_threshold() -> None:
    rng = np.random.default_rng(2)
    drift = _noisy_level(rng, np.geomspace(0.1, 0.7, 750), 0.05)  # 7x over 750 rows, never a jump
    jump = jump_factor([_noisy_level(rng, np.full(750, 0.3), 0.05) for _ in range(4)])
    assert not jump_latch_alarms(drift, jump).any()
    spike = np.full(200, 0.5)
    spike[100:110] = 1.5
    held = jump_latch_alarms(spike, jump=10.0)  # jump factor out of reach: only the threshold triggers
    # on at the crossing, released on the 30th quiet row after it (rows 110-139)
    assert held[100:139].all() and not held[:100].any() and not held[139:].any()

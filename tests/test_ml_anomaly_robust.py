"""Robust MSPC (anomalies inside the fitting window) and the latch alarm policy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from axhub.ml.anomaly import MSPC
from axhub.ml.anomaly.alarms import latch_alarms, threshold_alarms


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

"""Behaviour of the anomaly family beyond the generic contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from axhub.ml.anomaly import MSPC, IForest, best_default
from axhub.ml.anomaly.base import AnomalyEstimator
from axhub.ml.metrics import binary_detection_metrics


def _process(n: int, seed: int) -> pd.DataFrame:
    """Five correlated signals driven by two latent loads plus noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 2))
    mixing = np.array([[1.0, 0.5, -0.3, 0.8, 0.0], [0.0, 0.7, 0.9, -0.4, 1.0]])
    x = latent @ mixing + 0.1 * rng.standard_normal((n, 5))
    return pd.DataFrame(x, columns=["flow", "pressure", "current", "vibration", "temperature"])


def test_mspc_detects_injected_fault_and_blames_the_faulted_signal() -> None:
    train = _process(800, seed=1)
    test = _process(400, seed=2)
    # A sensor fault breaking the correlation structure: 'current' shifts on its own.
    test.loc[200:, "current"] += 1.0
    model = MSPC().fit(train)
    alarms = model.predict(test)
    assert alarms[200:].mean() > 0.9
    assert alarms[:200].mean() < 0.05
    contributions = model.explain(test.iloc[200:])
    top = contributions.idxmax(axis=1)
    assert (top == "current").mean() > 0.9
    # contributions are an exact split of the score
    np.testing.assert_allclose(contributions.sum(axis=1), model.score(test.iloc[200:]), rtol=1e-9)


@pytest.mark.parametrize("quantile", [0.95, 0.99])
def test_threshold_from_normal_data_gives_the_chosen_false_alarm_rate(quantile: float) -> None:
    model = MSPC(quantile=quantile).fit(_process(3000, seed=3))
    fresh = _process(20000, seed=4)
    far = model.predict(fresh).mean()
    expected = 1 - quantile
    assert expected * 0.5 <= far <= expected * 1.6, far


def test_out_of_fold_threshold_is_not_the_optimistic_in_sample_one() -> None:
    train = _process(600, seed=5)
    model = MSPC(quantile=0.99).fit(train)
    in_sample = float(np.quantile(model.score(train), 0.99))
    assert model.threshold_ >= in_sample * 0.98


def test_windowed_models_align_scores_to_rows_and_respect_groups() -> None:
    frame = _process(300, seed=6)
    model = MSPC(window=5).fit(frame)
    scores = model.score(frame)
    assert scores.shape == (300,)
    assert np.all(scores[:4] == scores[4])  # first rows take the first full window
    grouped = pd.concat([frame.iloc[:150].assign(unit=1), frame.iloc[150:].assign(unit=2)])
    g_model = MSPC(window=5, group="unit").fit(grouped)
    g_scores = g_model.score(grouped)
    # scoring one group alone gives the same values: windows never cross the group boundary
    np.testing.assert_allclose(g_model.score(grouped[grouped.unit == 2]), g_scores[150:])


def test_smoothing_is_causal_and_lowers_isolated_spikes() -> None:
    frame = _process(500, seed=7)
    spike = frame.copy()
    spike.loc[300, "pressure"] += 6.0
    raw = MSPC().fit(frame)
    smooth = MSPC(smooth=5).fit(frame)
    assert raw.predict(spike)[300]
    assert smooth.score(spike)[299] == pytest.approx(smooth.score(frame)[299])  # causal: no look-ahead
    assert smooth.score(spike)[300] / smooth.threshold_ < raw.score(spike)[300] / raw.threshold_


def test_iforest_flags_far_outliers() -> None:
    train = _process(600, seed=8)
    test = _process(200, seed=9)
    test.loc[150:] += 8.0  # far outside the training cloud on every signal
    model = IForest(n_estimators=50).fit(train)
    metrics = binary_detection_metrics(np.r_[np.zeros(150), np.ones(50)], model.predict(test))
    assert metrics["mar"] < 10 and metrics["far"] < 15


def test_best_default_is_a_configured_anomaly_estimator() -> None:
    model = best_default()
    assert isinstance(model, AnomalyEstimator)
    assert model.family == "anomaly"


def test_evaluate_requires_the_label_column() -> None:
    from axhub.core.errors import InputValidationError

    frame = _process(200, seed=10)
    model = MSPC().fit(frame)
    with pytest.raises(InputValidationError, match="anomaly"):
        model.evaluate(frame)
    result = model.evaluate(frame.assign(anomaly=0))
    assert set(result) >= {"f1", "far", "mar"}

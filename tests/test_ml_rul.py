"""Remaining useful life: targets, regime normalisation, window features, the LightGBM model
and its conformal intervals, on synthetic run-to-failure fleets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axhub.ml.base import Estimator
from axhub.ml.rul.features import padded_windows, window_feature_matrix
from axhub.ml.rul.gbm import RulGBM
from axhub.ml.rul.regimes import RegimeNormalizer
from axhub.ml.rul.synthetic import SYNTH_SENSORS, SYNTH_SETTINGS, synthetic_fleet, truncate_fleet
from axhub.ml.rul.target import phm08_score, piecewise_rul, rmse, run_to_failure_rul
from axhub.registry.bundle import BundleRunner


def test_targets_and_metrics() -> None:
    rul = run_to_failure_rul(np.array([1, 1, 1, 2, 2]), np.array([1, 2, 3, 1, 2]))
    np.testing.assert_array_equal(rul, [2, 1, 0, 1, 0])
    np.testing.assert_array_equal(piecewise_rul(np.array([300.0, 125.0, 10.0]), 125), [125, 125, 10])
    with pytest.raises(ValueError):
        piecewise_rul(np.array([1.0]), 0)
    # late by 10 costs e-1, early by 13 costs e-1: lateness is punished harder
    assert phm08_score(np.array([20.0]), np.array([10.0])) == pytest.approx(np.e - 1)
    assert phm08_score(np.array([0.0]), np.array([13.0])) == pytest.approx(np.e - 1)
    assert rmse(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(np.sqrt(2))


def test_regime_normalisation_removes_regime_offsets() -> None:
    fleet = synthetic_fleet(n_units=10, seed=1, n_regimes=3)
    settings, sensors = fleet[SYNTH_SETTINGS].to_numpy(), fleet[SYNTH_SENSORS].to_numpy()
    norm = RegimeNormalizer().fit(settings, sensors, SYNTH_SENSORS)
    assert norm.n_regimes == 3
    assert "const" not in norm.sensor_names_ and "temp" in norm.sensor_names_
    z = norm.transform(settings, sensors)
    regime = norm.assign(settings)
    temp = norm.sensor_names_.index("temp")
    raw_spread = np.ptp([sensors[regime == r, 0].mean() for r in range(3)])
    assert raw_spread > 20  # the regimes shift the raw sensor far more than wear does
    for r in range(3):
        assert abs(z[regime == r, temp].mean()) < 1e-9
    # within a regime, wear still shows: late-life readings are higher than early ones
    true = run_to_failure_rul(fleet["unit"].to_numpy(), fleet["cycle"].to_numpy())
    assert z[true < 10, temp].mean() > z[true > 50, temp].mean() + 1.0
    restored = RegimeNormalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(restored.transform(settings, sensors), z)


def test_one_noisy_operating_point_is_one_regime() -> None:
    rng = np.random.default_rng(0)
    settings = rng.normal([0.0, 0.0, 100.0], [0.002, 0.0003, 0.0], size=(3000, 3))
    sensors = rng.normal(size=(3000, 2))
    assert RegimeNormalizer().fit(settings, sensors, ["a", "b"]).n_regimes == 1


def test_window_features_are_means_and_slopes() -> None:
    window, n_signals = 6, 2
    w, meta = window_feature_matrix(n_signals, window, [3], [0.5], sensor_idx=[0], age_idx=1, baseline_rows=2)
    ramp = np.column_stack([2.0 * np.arange(window) + 1.0, np.arange(window) + 100.0])  # (lag, signal)
    values = (ramp.reshape(1, -1) @ w)[0]
    named = {kind: values[i] for i, (kind, _) in enumerate(meta)}
    assert named["mean3"] == pytest.approx((7 + 9 + 11) / 3)
    assert named["slope3"] == pytest.approx(2.0)
    assert named["slope6"] == pytest.approx(2.0)
    assert named["age"] == pytest.approx(105.0)
    assert named["drift0.5"] > 0  # rising signal drifts up from the window start
    assert len(meta) == w.shape[1]
    padded = padded_windows(np.arange(3.0)[:, None], 4)
    np.testing.assert_array_equal(padded[0, :, 0], [0, 0, 0, 0])
    np.testing.assert_array_equal(padded[2, :, 0], [0, 0, 1, 2])


def test_health_index_weights_follow_degradation_and_share_the_kernels() -> None:
    from axhub.ml.rul.features import health_weights

    rng = np.random.default_rng(0)
    cap = 50.0
    y = np.minimum(np.tile(np.arange(120.0, -1, -1), 20), cap)
    # signal 0 falls as failure nears, signal 1 is noise, signal 2 (the age) is not a sensor
    z = np.column_stack([-y / 10 + rng.normal(0, 0.5, len(y)), rng.normal(size=len(y)), y])
    weights = health_weights(z, y, sensor_idx=[0, 1], cap=cap)
    assert weights[0] < -5 and abs(weights[1]) < 0.5 and weights[2] == 0.0
    # too few degrading rows: no index
    assert not np.any(health_weights(z[:5], np.full(5, cap), [0, 1], cap))
    # every health feature is the weighted sum of the same kernel over the sensors
    window = 6
    w, meta = window_feature_matrix(3, window, [3], [0.5], [0, 1], 2, 2, health_weights=weights)
    plain, _ = window_feature_matrix(3, window, [3], [0.5], [0, 1], 2, 2)
    kinds = [kind for kind, _ in meta]
    assert w.shape[1] == plain.shape[1] + sum(k.startswith("health_") for k in kinds)
    x = rng.normal(size=(1, window * 3))
    values = dict(zip(kinds, (x @ w)[0], strict=True))
    by_signal = {(kind, sig): v for (kind, sig), v in zip(meta, (x @ w)[0], strict=True)}
    for kind in ("mean3", "slope6", "ewm0.5", "drift0.5"):
        expected = weights[0] * by_signal[(kind, 0)] + weights[1] * by_signal[(kind, 1)]
        assert values[f"health_{kind}"] == pytest.approx(expected)
        assert dict(meta)[f"health_{kind}"] == -1


@pytest.fixture(scope="module")
def fitted() -> tuple[RulGBM, pd.DataFrame, np.ndarray]:
    train = synthetic_fleet(n_units=30, seed=3, n_regimes=2)
    test, truth = truncate_fleet(synthetic_fleet(n_units=30, seed=4, n_regimes=2), seed=5)
    model = RulGBM(
        regime_columns=list(SYNTH_SETTINGS),
        window=15,
        cap=80.0,
        sub_windows=[5, 10],
        n_estimators=120,
        min_child_samples=20,
        calibration_folds=3,
        coverage=0.8,
    ).fit(train)
    return model, test, truth


def test_rul_model_learns_the_decreasing_trend(fitted: tuple[RulGBM, pd.DataFrame, np.ndarray]) -> None:
    model, test, truth = fitted
    pred = model.predict(test)
    assert len(model.centroids_) == 2
    assert "const" in model.constant_columns_
    assert pred.min() >= -5
    # along a long unit, prediction falls as failure nears
    one = synthetic_fleet(n_units=1, seed=9, n_regimes=2, min_life=150, max_life=150)
    along = model.predict(one)
    assert along[-10:].mean() < along[60:70].mean() - 30
    # a young, healthy unit is not stuck at the cap: its expected life beyond the cap comes
    # from the training lives, and it shrinks as the unit ages while still looking healthy
    assert along[:10].mean() > model.cap + 10
    assert along[:10].mean() > along[40:50].mean()
    capped = RulGBM(**{**model.get_params(), "beyond_cap": False}).fit(
        synthetic_fleet(n_units=30, seed=3, n_regimes=2)
    )
    assert capped.predict(one).max() <= model.cap + 15  # the capped model stays near its cap
    last = test.groupby("unit").tail(1).index.to_numpy()
    assert rmse(pred[last], truth) < 15  # vs a spread of true RUL of ~40 cycles
    assert np.corrcoef(pred[last], truth)[0, 1] > 0.8


def test_beyond_cap_tail_matches_its_numpy_twin(fitted: tuple[RulGBM, pd.DataFrame, np.ndarray]) -> None:
    model, _, _ = fitted
    yc = np.array([0.0, 20.0, 60.0, 79.0, 80.0, 80.0, 80.0])
    age = np.array([150.0, 100.0, 5.0, 10.0, 1.0, 60.0, 400.0])
    twin = model._beyond_cap_numpy(yc, age)
    # near failure the tail only shifts (never by more than the PHM08 search range)
    assert abs(twin[0] - yc[0]) <= 15 and abs(twin[1] - yc[1]) <= 15
    # healthy-looking: younger means longer
    assert twin[4] > twin[5] >= twin[6] - 1e-9
    import onnx
    from onnx import helper

    nodes, inits = model._beyond_cap_nodes("yc", "age", "out")
    graph = helper.make_graph(
        nodes,
        "tail",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N"]) for n in ("yc", "age")],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["N"])],
        inits,
    )
    import onnxruntime as ort

    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    proto.ir_version = 9
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"yc": yc.astype(np.float32), "age": age.astype(np.float32)})
    np.testing.assert_allclose(out, twin, rtol=1e-4, atol=1e-3)


def test_intervals_cover_the_truth_near_the_nominal_rate(
    fitted: tuple[RulGBM, pd.DataFrame, np.ndarray],
) -> None:
    model, test, truth = fitted
    pred, lower, upper = model.predict_interval(test)
    last = test.groupby("unit").tail(1).index.to_numpy()
    assert np.all(lower <= pred + 1e-6) and np.all(pred <= upper + 1e-6)
    near = truth <= 1.5 * model.cap
    covered = np.mean((truth[near] >= lower[last][near]) & (truth[near] <= upper[last][near]))
    assert covered >= 0.65  # nominal 0.8 on 30 units
    metrics = model.evaluate(synthetic_fleet(n_units=8, seed=11, n_regimes=2))
    assert 0.6 <= metrics["coverage"] <= 1.0
    assert metrics["interval_width"] < 4 * model.cap


def test_explanations_point_at_degrading_sensors(fitted: tuple[RulGBM, pd.DataFrame, np.ndarray]) -> None:
    model, test, _ = fitted
    contributions = model.explain(test)
    share = contributions.abs().mean()
    assert share["noise"] < share[["temp", "pressure", "vibration", "cycle"]].max()
    assert share["const"] == 0.0


def test_bundle_runs_without_the_training_code(
    fitted: tuple[RulGBM, pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    model, test, _ = fitted
    path = model.save(tmp_path / "rul")
    results = BundleRunner(path).run(test)
    np.testing.assert_allclose(results["prediction"], model.predict(test), rtol=1e-5, atol=1e-3)
    assert set(results) >= {"prediction", "lower", "upper"}
    loaded = Estimator.load(path)
    assert isinstance(loaded, RulGBM)
    np.testing.assert_allclose(loaded.predict_interval(test)[2], model.predict_interval(test)[2])


def test_missing_operating_settings_are_a_clear_error(
    fitted: tuple[RulGBM, pd.DataFrame, np.ndarray],
) -> None:
    model, test, _ = fitted
    from axhub.core.errors import InputValidationError

    with pytest.raises(InputValidationError, match="altitude"):
        model.predict(test.drop(columns=["altitude"]))


@pytest.mark.torch  # the 1D-CNN trains with torch
def test_cnn_learns_the_trend_and_exports_the_same_numbers(tmp_path: Path) -> None:
    from axhub.ml.rul.cnn import RulCNN

    train = synthetic_fleet(n_units=16, seed=21, n_regimes=2)
    model = RulCNN(
        regime_columns=list(SYNTH_SETTINGS),
        window=12,
        cap=80.0,
        channels=8,
        hidden=16,
        epochs=25,
        calibration_fraction=0.25,
    ).fit(train)
    one = synthetic_fleet(n_units=1, seed=22, n_regimes=2, min_life=150, max_life=150)
    along = model.predict(one)
    assert along[-10:].mean() < along[40:60].mean() - 25
    assert model.interval_offsets_[0, 0] <= 0 <= model.interval_offsets_[0, 1]
    results = BundleRunner(model.save(tmp_path / "cnn")).run(one)
    np.testing.assert_allclose(results["prediction"], along, rtol=1e-4, atol=1e-3)

"""Vibration features and the bearing fault classifier on synthetic signals with known physics."""

from __future__ import annotations

import numpy as np
import pytest

from axhub.core.errors import InputValidationError
from axhub.ml.diagnosis.synthetic import bearing_signal, synthetic_vibration_frame
from axhub.ml.diagnosis.trees import VibrationTrees
from axhub.ml.features.vibration import (
    envelope_spectrum,
    feature_names,
    time_features,
    vibration_feature_graph,
    vibration_features,
    windows_of,
)

FS = 12_000.0


def test_kurtosis_and_crest_separate_impulses_from_gaussian_noise() -> None:
    rng = np.random.default_rng(0)
    gaussian = rng.normal(size=(1, 8192))
    impulsive = gaussian.copy()
    impulsive[0, ::500] += 25.0
    names = ["log_rms", "kurtosis", "skewness", "crest", "shape", "impulse", "clearance"]
    g, i = (
        dict(zip(names, time_features(gaussian)[0], strict=True)),
        dict(zip(names, time_features(impulsive)[0], strict=True)),
    )
    assert g["kurtosis"] == pytest.approx(3.0, abs=0.3)
    assert i["kurtosis"] > 10
    assert i["crest"] > 2 * g["crest"]


@pytest.mark.parametrize("rpm", [1797.0, 1500.0])
def test_envelope_spectrum_peaks_at_the_fault_order(rpm: float) -> None:
    fault_order = 5.4152  # inner-race defect order of a 6205 bearing
    w = windows_of(bearing_signal(rpm, fault_order, 2.0), 8192, 8192)
    freqs, env = envelope_spectrum(w, FS)
    band = (freqs > 5.0) & (freqs < 500.0)
    peak_hz = freqs[band][np.argmax(env.mean(axis=0)[band])]
    assert peak_hz / (rpm / 60.0) == pytest.approx(fault_order, rel=0.05)


def test_order_features_do_not_move_with_speed() -> None:
    """The same fault at two speeds lands in the same envelope order band."""
    names = feature_names()
    env_idx = [k for k, n in enumerate(names) if n.startswith("envelope_order_band_")]
    peaks = []
    for rpm in (1797.0, 1500.0):
        w = windows_of(bearing_signal(rpm, 3.5848, 2.0, seed=1), 4096, 2048)
        feats = vibration_features(w, FS, rpm / 60.0)
        assert feats.shape[1] == len(names)
        peaks.append(int(np.argmax(feats[:, env_idx].mean(axis=0))))
    assert peaks[0] == peaks[1]


def test_onnx_features_equal_numpy_features() -> None:
    import onnxruntime as ort

    w = windows_of(bearing_signal(1772.0, 3.5848, 0.5, seed=3), 1024, 512)
    expected = vibration_features(w, FS, 1772.0 / 60.0)
    graph = vibration_feature_graph(1, 1024, FS)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    graph_input = np.stack([w, np.full_like(w, 1772.0)], axis=2).astype(np.float32)
    got = session.run(["features"], {"input": graph_input})[0]
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-3)


def test_classifier_separates_fault_classes_on_an_unseen_speed() -> None:
    model = VibrationTrees(window=1024, stride=512, n_estimators=60).fit(
        synthetic_vibration_frame(1797.0, 1.5, seed=0)
    )
    test = synthetic_vibration_frame(1730.0, 1.0, seed=100)
    metrics = model.evaluate(test)
    assert metrics["accuracy"] >= 0.95
    assert metrics["recall_Normal"] >= 0.9
    scores = model.score(test)
    predicted = model.predict(test)
    assert scores[predicted == "Normal"].mean() < scores[predicted != "Normal"].mean()
    assert (model.explain(test)["rpm"] == 0).all()


def test_speed_must_be_given_and_positive() -> None:
    frame = synthetic_vibration_frame(1797.0, 0.3, seed=0)
    with pytest.raises(InputValidationError, match="rpm"):
        VibrationTrees(window=512, stride=512, n_estimators=5).fit(frame.drop(columns=["rpm"]))
    model = VibrationTrees(window=512, stride=512, n_estimators=5).fit(frame)
    bad = frame.assign(rpm=0.0)
    with pytest.raises(InputValidationError, match=r"row 0, field 'rpm'"):
        model.predict(bad)


def test_too_short_signal_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="100 samples, the window needs 4096"):
        windows_of(np.zeros(100), 4096, 2048)

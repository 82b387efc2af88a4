"""Envelope line families read the defect type from a synthetic bearing, whatever its loudness and
speed; the envelope-family model learns the type on some fault sizes and names it on another;
``axhub bench cwru`` says why it cannot run when the data do not allow its protocols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from axhub.bench.cwru_envelope import EnvelopeFamilies
from axhub.cli.main import app
from axhub.ml.features.bearing import (
    SKF_6205,
    defect_family_features,
    defect_family_names,
    family_lines,
    line_tolerance,
)

FS = 12_000.0
BAND = (2000.0, 5000.0)


def bearing_signal(
    fault: str, rpm: float, seconds: float, amplitude: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Impulses at the defect rate ringing a 3.5 kHz resonance, in noise. An inner-race defect
    turns with the shaft, so its impulses are amplitude-modulated once per turn; a healthy
    bearing is the noise alone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    noise = 0.3 * rng.normal(size=n)
    if fault == "Normal":
        return amplitude * noise
    shaft = rpm / 60.0
    rate = SKF_6205.orders()["BPFO" if fault == "OR" else "BPFI"] * shaft
    strikes = np.zeros(n)
    hits = np.arange(0.0, seconds, 1.0 / rate)
    hits += rng.normal(scale=0.01 / rate, size=hits.size)  # a little slip, as in real bearings
    index = np.clip((hits * FS).astype(int), 0, n - 1)
    weight = 1.0 + 0.8 * np.cos(2 * np.pi * shaft * t[index]) if fault == "IR" else np.ones(index.size)
    strikes[index] = weight
    ring = np.exp(-t[:200] * 1500.0) * np.sin(2 * np.pi * 3500.0 * t[:200])
    return amplitude * (np.convolve(strikes, ring)[:n] * 3.0 + noise)


def _windows(x: np.ndarray, length: int = 4096) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, length)[::2048].copy()


def _family(features: np.ndarray) -> str:
    return ["BPFO", "BPFI", "ball"][int(np.argmax(np.median(features[:, :3], axis=0)))]


@pytest.mark.parametrize("rpm", [1797.0, 1500.0])
def test_the_outer_race_line_family_dominates_at_any_speed(rpm: float) -> None:
    w = _windows(bearing_signal("OR", rpm, 2.0))
    features = defect_family_features(w, FS, rpm / 60.0, BAND)
    assert features.shape == (len(w), len(defect_family_names()))
    assert _family(features) == "BPFO"
    assert np.median(features[:, 3]) > 0.5  # BPFO/BPFI log ratio: the outer race line is the taller


def test_an_inner_race_defect_shows_its_own_family() -> None:
    w = _windows(bearing_signal("IR", 1772.0, 2.0, seed=1))
    assert _family(defect_family_features(w, FS, 1772 / 60.0, BAND)) == "BPFI"


def test_features_do_not_change_with_the_vibration_amplitude() -> None:
    w = _windows(bearing_signal("OR", 1797.0, 1.0, seed=2))
    quiet = defect_family_features(w, FS, 1797 / 60.0, BAND)
    loud = defect_family_features(25.0 * w, FS, 1797 / 60.0, BAND)
    np.testing.assert_allclose(quiet, loud, rtol=1e-9, atol=1e-9)


def test_healthy_noise_has_no_dominant_line() -> None:
    w = _windows(bearing_signal("Normal", 1797.0, 2.0, seed=3))
    features = defect_family_features(w, FS, 1797 / 60.0, BAND)
    assert np.median(features[:, :3], axis=0).max() < 1.5  # log SNR: lines barely above the floor


def _frame(parts: list[tuple[str, int, float, float]], seed: int) -> pd.DataFrame:
    frames = []
    for k, (fault, size, amplitude, rpm) in enumerate(parts):
        x = bearing_signal(fault, rpm, 1.2, amplitude, seed=seed + k)
        frames.append(
            pd.DataFrame({"DE": x, "rpm": rpm, "fault": fault, "recording": f"{fault}{size}", "size": size})
        )
    return pd.concat(frames, ignore_index=True)


def test_the_model_names_the_fault_type_of_a_size_and_speed_it_never_saw() -> None:
    # "Sizes" differ by loudness: 7 and 14 train at 1797 rpm, a louder 21 is tested at 1772 rpm.
    train = _frame(
        [("Normal", 0, 1.0, 1797.0)]
        + [(f, s, a, 1797.0) for s, a in ((7, 1.5), (14, 2.5)) for f in ("IR", "OR")],
        seed=10,
    )
    test = _frame([("Normal", 0, 1.0, 1797.0), ("IR", 21, 5.0, 1772.0), ("OR", 21, 5.0, 1772.0)], seed=40)
    model = EnvelopeFamilies(bands=((5300.0, 5900.0), BAND), c_grid=(1.0,)).fit(train)
    assert len(model.cv_scores_) == 2  # each band scored by leave-one-size-out inside training
    assert model.cv_scores_[f"{model.band_[0]:.0f}-{model.band_[1]:.0f} Hz, C=1"] == max(
        model.cv_scores_.values()
    )
    pred, truth = model.predict_truth(test)
    for cls in ("Normal", "IR", "OR"):
        assert np.mean(pred[truth == cls] == cls) >= 0.9, cls


def test_no_line_family_reaches_into_another() -> None:
    # race defects also show +-1 shaft-order sidebands around each harmonic
    lines = family_lines(SKF_6205)
    o = SKF_6205.orders()
    shown = {
        "BPFO": [h * o["BPFO"] + s for h in (1, 2) for s in (-1.0, 0.0, 1.0)],
        "BPFI": [h * o["BPFI"] + s for h in (1, 2) for s in (-1.0, 0.0, 1.0)],
        "ball": lines["ball"],
    }
    for family, centres in lines.items():
        for centre in centres:
            for other, seen in shown.items():
                if other != family:
                    assert min(abs(centre - x) for x in seen) > line_tolerance(centre), (
                        family,
                        centre,
                        other,
                    )


def _cwru_names(root: Path, names: list[str]) -> None:
    for name in names:
        folder = root / "cwru_12k_de" / f"{name[:4]} RPM"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / name, DE=np.zeros((10, 1)))


def test_bench_cwru_needs_two_loads_and_says_what_it_found(tmp_path: Path) -> None:
    _cwru_names(tmp_path, ["1797_Normal.npz", "1797_IR_7_DE12.npz", "1797_IR_14_DE12.npz"])
    result = CliRunner().invoke(app, ["bench", "cwru", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "Nothing to benchmark" in result.output
    assert "found loads [0]" in result.output


def test_bench_cwru_rejects_sizes_it_does_not_have(tmp_path: Path) -> None:
    _cwru_names(
        tmp_path,
        [
            "1797_Normal.npz",
            "1797_IR_7_DE12.npz",
            "1772_IR_7_DE12.npz",
            "1797_B_14_DE12.npz",
            "1772_B_14_DE12.npz",
        ],
    )
    args = ["bench", "cwru", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--sizes", "7,28"])
    assert result.exit_code == 2
    assert "fault sizes [7, 28] not all found (found [7, 14])" in result.output
    result = CliRunner().invoke(app, [*args, "--sizes", "7"])
    assert result.exit_code == 2  # leaving one size out needs another size to train on
    assert "need two or more" in result.output

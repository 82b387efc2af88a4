"""Feature blocks: windows per series, causal rolling statistics, per-regime normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from axhub.ml.features import RegimeNormalizer, rolling_features, windows_by_group


def _fleet(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    regime = rng.integers(0, 3, n)
    return pd.DataFrame(
        {
            "altitude": np.array([0.0, 20.0, 40.0])[regime] + rng.normal(0, 0.1, n),
            "mach": np.array([0.0, 0.5, 0.8])[regime],
            "temperature": np.array([10.0, 50.0, 90.0])[regime] + rng.normal(0, 1, n),
            "unit": np.repeat([1, 2], n // 2),
        }
    )


def test_regime_normalisation_removes_the_regime_offset() -> None:
    fleet = _fleet()
    normaliser = RegimeNormalizer(["altitude", "mach"], n_regimes=3).fit(fleet, ["temperature"])
    z = normaliser.transform(fleet)["temperature"]
    assert abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1  # raw std is ~33 because of the regimes
    regimes = normaliser.regimes(fleet)
    for r in np.unique(regimes):
        assert fleet["temperature"][regimes == r].std() < 1.5  # each cluster is one condition
    assert normaliser.step()["op"] == "regime_standardize"


def test_windows_never_cross_series_and_report_their_end_rows() -> None:
    fleet = _fleet()
    windows, ends = windows_by_group(fleet, ["temperature"], 10, group="unit")
    assert windows.shape == (2 * (300 - 9), 10, 1)
    assert ends[0] == 9 and ends[290] == 299 and ends[291] == 309
    np.testing.assert_array_equal(windows[291, :, 0], fleet["temperature"].to_numpy()[300:310])


def test_rolling_features_are_causal_and_per_series() -> None:
    fleet = _fleet()
    features = rolling_features(fleet, ["temperature"], 5, group="unit")
    assert list(features.columns) == [f"temperature_{s}_5" for s in ("mean", "std", "min", "max")]
    values = fleet["temperature"].to_numpy()
    assert features["temperature_mean_5"].iloc[300] == values[300]  # new unit starts fresh
    assert np.isclose(features["temperature_mean_5"].iloc[10], values[6:11].mean())
    changed = fleet.copy()
    changed.loc[400, "temperature"] += 100
    after = rolling_features(changed, ["temperature"], 5, group="unit")
    pd.testing.assert_frame_equal(after.iloc[:400], features.iloc[:400])  # no look-ahead

"""Shared pieces of the edge tests: a small anomaly bundle on Korean signal names, plant frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from axhub.ml.anomaly.base import synthetic_sensor_data

KOREAN = {"flow": "유량", "pressure": "압력", "current": "전류", "temperature": "온도"}


def korean_frames(seed: int = 0, rows: int = 300, start: str = "2026-03-02T00:00:00Z") -> pd.DataFrame:
    """The synthetic process's test half (a pressure step fault in its second half), 10 Hz."""
    data = synthetic_sensor_data(seed, n_train=600, n_test=rows).test.drop(columns="anomaly")
    frame = data.rename(columns=KOREAN).reset_index(drop=True)
    frame.insert(0, "ts", pd.date_range(start, periods=len(frame), freq="100ms", unit="ns"))
    return frame


def anomaly_bundle(directory: Path, seed: int = 0) -> Path:
    """An MSPC bundle (zip) trained on the normal half, on Korean signal names."""
    from axhub.ml.base import Estimator

    train = synthetic_sensor_data(seed).train.rename(columns=KOREAN)
    cls = Estimator.lookup("anomaly", "mspc")
    model = cls(columns=list(KOREAN.values()), window=1, smooth=1).fit(train)
    return Path(model.save(directory / "mspc-bundle", make_zip=True))


def values_of(frame: pd.DataFrame, asset: str) -> set[tuple[str, str, int, float]]:
    """(asset, signal, epoch µs, value) of every reading in a plant frame."""
    ts = frame["ts"].dt.as_unit("us").astype("int64").to_numpy()
    out = set()
    for column in frame.columns:
        if column != "ts":
            out |= {
                (asset, column, int(t), float(v))
                for t, v in zip(ts, frame[column].to_numpy(np.float64), strict=True)
            }
    return out

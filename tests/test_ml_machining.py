"""Machining outcome classifier on synthetic jobs: a worn tool pulls more axis power and lags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from axhub.ml.datasets.cnc import PHASE_COLUMN, SIGNAL_COLUMNS
from axhub.ml.machining.outcome import (
    Job,
    MachiningOutcomeClassifier,
    experiment_features,
    leave_one_experiment_out,
)


def synthetic_job(worn: bool, feedrate: float, seed: int, rows: int = 400) -> Job:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(0, 0.1, size=(rows, len(SIGNAL_COLUMNS))), columns=SIGNAL_COLUMNS)
    force = 1.0 + (0.8 if worn else 0.0)
    for axis in ("X1", "Y1"):
        velocity = feedrate * np.sin(np.linspace(0, 20, rows))
        frame[f"{axis}_ActualVelocity"] = velocity
        frame[f"{axis}_CurrentFeedback"] = force * 0.3 * velocity + rng.normal(0, 0.5, rows)
        frame[f"{axis}_OutputPower"] = force * 1e-4 * np.abs(velocity) + rng.normal(0, 1e-5, rows)
        frame[f"{axis}_CommandPosition"] = np.cumsum(velocity) * 0.1
        frame[f"{axis}_ActualPosition"] = frame[f"{axis}_CommandPosition"] - force * 0.005 * velocity
    frame[PHASE_COLUMN] = ["Prep"] * 20 + ["Layer 1 Up"] * (rows - 20)
    return Job(frame, feedrate, 4.0)


@pytest.mark.parametrize("method", ["aggregate", "windows"])
def test_leave_one_experiment_out_finds_the_worn_tool(method: str) -> None:
    jobs, labels = [], []
    for k in range(10):
        worn = k % 2 == 1
        jobs.append(synthetic_job(worn, feedrate=[3.0, 6.0, 12.0, 20.0, 15.0][k // 2], seed=k))
        labels.append(worn)
    truth, proba = leave_one_experiment_out(jobs, labels, method=method, n_estimators=60)
    assert len(truth) == 10
    assert np.mean((proba >= 0.5) == truth) >= 0.8


def test_features_show_force_and_lag() -> None:
    sharp, dull = (
        experiment_features(synthetic_job(False, 6.0, 0)),
        experiment_features(synthetic_job(True, 6.0, 0)),
    )
    assert dull["X1_power"] > 1.5 * sharp["X1_power"]
    assert dull["X1_following_error"] > 1.5 * sharp["X1_following_error"]
    assert sharp["feedrate"] == 6.0


def test_unlabelled_jobs_are_skipped_and_one_class_is_predicted_as_is() -> None:
    jobs = [synthetic_job(False, 6.0, k) for k in range(3)]
    truth, proba = leave_one_experiment_out(jobs, [True, None, True])
    assert truth.tolist() == [True, True] and proba.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="method"):
        MachiningOutcomeClassifier(method="magic")

"""Machining outcome from the machine's own signals, one verdict per experiment (job).

Two variants, both evaluated leave-one-experiment-out (an experiment is never split):

``aggregate``
    one row per experiment: over the active cutting phases (``Layer ...``), the mean axis power
    and voltage, the mean absolute axis current and following error (actual - command position,
    also per unit speed) while the axis moves, the spindle power and
    current, plus the job's feedrate and clamp pressure; a standardised logistic regression
    (few parameters: only a handful of experiments exist).
``windows``
    the cutting rows cut into windows of ``window`` samples (10 s at 100 ms) with the mean,
    standard deviation and 90th percentile of each signal, plus the X/Y current, power and
    following error per unit speed while the axis moves (the job settings are left out: with
    a handful of jobs, trees memorise "feedrate X -> label" and, leaving one job out, predict
    the label of its feedrate twin), a random forest over windows
    (every experiment weighted equally), and the experiment's verdict is its mean window
    probability.

A worn tool cuts with more force, which shows as axis power and current at a given feedrate;
a job with a loose clamp moves the workpiece, which shows in the same signals and the phase
sequence (jobs stopped early never reach the later layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

WINDOW_SIGNALS = [
    "X1_CurrentFeedback", "X1_OutputPower", "X1_OutputVoltage", "X1_ActualVelocity",
    "Y1_CurrentFeedback", "Y1_OutputPower", "Y1_OutputVoltage", "Y1_ActualVelocity",
    "Z1_CurrentFeedback", "Z1_ActualVelocity",
    "S1_CurrentFeedback", "S1_OutputPower", "S1_OutputVoltage", "S1_ActualVelocity", "S1_ActualAcceleration",
]  # fmt: skip
PHASE_COLUMN = "Machining_Process"


@dataclass(frozen=True)
class Job:
    """One machining experiment: its signals and its settings."""

    signals: pd.DataFrame
    feedrate: float
    clamp_pressure: float


def cutting_rows(signals: pd.DataFrame, minimum: int = 20) -> pd.DataFrame:
    """Rows of the active cutting phases; all rows when the job barely cut (stopped early)."""
    cut = signals[signals[PHASE_COLUMN].astype(str).str.startswith("Layer")]
    return cut if len(cut) >= minimum else signals


def experiment_features(job: Job) -> dict[str, float]:
    cut = cutting_rows(job.signals)
    feats: dict[str, float] = {}
    for axis in ("X1", "Y1"):
        moving = cut[cut[f"{axis}_ActualVelocity"].abs() > 0.5]
        moving = moving if len(moving) > 5 else cut
        feats[f"{axis}_abs_current_moving"] = float(moving[f"{axis}_CurrentFeedback"].abs().mean())
        feats[f"{axis}_power"] = float(cut[f"{axis}_OutputPower"].mean())
        feats[f"{axis}_voltage"] = float(cut[f"{axis}_OutputVoltage"].mean())
        # following error: a larger cutting force (dull tool) makes the axis lag its command
        lag = (moving[f"{axis}_ActualPosition"] - moving[f"{axis}_CommandPosition"]).abs().mean()
        speed = moving[f"{axis}_ActualVelocity"].abs().mean()
        feats[f"{axis}_following_error"] = float(lag)
        feats[f"{axis}_following_error_per_speed"] = float(lag / max(speed, 1e-6))
    feats["S1_power"] = float(cut["S1_OutputPower"].mean())
    feats["S1_current"] = float(cut["S1_CurrentFeedback"].mean())
    feats["feedrate"] = float(job.feedrate)
    feats["clamp_pressure"] = float(job.clamp_pressure)
    return feats


def _per_speed(cut: pd.DataFrame, axis: str) -> np.ndarray:
    """Per row: |current|, power and |following error| of an axis divided by its speed, so that
    cutting force can be compared across feedrates (0 where the axis stands still)."""
    speed = cut[f"{axis}_ActualVelocity"].abs().to_numpy(dtype=np.float64)
    lag = (cut[f"{axis}_ActualPosition"] - cut[f"{axis}_CommandPosition"]).abs().to_numpy(dtype=np.float64)
    moving = speed > 0.5
    safe = np.where(moving, speed, 1.0)
    return np.column_stack(
        [
            np.where(moving, cut[f"{axis}_CurrentFeedback"].abs().to_numpy(dtype=np.float64) / safe, 0.0),
            np.where(moving, cut[f"{axis}_OutputPower"].to_numpy(dtype=np.float64) / safe, 0.0),
            np.where(moving, lag / safe, 0.0),
        ]
    )


def window_features(job: Job, window: int) -> np.ndarray:
    cut = cutting_rows(job.signals)
    x = cut[WINDOW_SIGNALS].to_numpy(dtype=np.float64)
    ratios = np.hstack([_per_speed(cut, "X1"), _per_speed(cut, "Y1")])
    n = max(1, len(x) // window)
    rows = []
    for k in range(n):
        part = slice(k * window, (k + 1) * window) if len(x) >= window else slice(0, len(x))
        w, r = x[part], ratios[part]
        moving = np.maximum((r != 0).sum(axis=0), 1)
        rows.append(
            np.concatenate([w.mean(0), w.std(0), np.percentile(np.abs(w), 90, axis=0), r.sum(0) / moving])
        )
    return np.asarray(rows)


class MachiningOutcomeClassifier:
    """Binary outcome per job (e.g. tool worn, job finished, passed inspection)."""

    def __init__(
        self, method: str = "aggregate", window: int = 100, n_estimators: int = 300, seed: int = 0
    ) -> None:
        if method not in ("aggregate", "windows"):
            raise ValueError(f"method must be 'aggregate' or 'windows', got {method!r}")
        self.method = method
        self.window = window
        self.n_estimators = n_estimators
        self.seed = seed

    def fit(self, jobs: list[Job], labels: list[bool]) -> Self:
        y = np.asarray(labels, dtype=bool)
        self.constant_: bool | None = bool(y[0]) if len(set(y.tolist())) == 1 else None
        if self.constant_ is not None:
            return self  # one class only: nothing to learn, predict it
        if self.method == "aggregate":
            x = pd.DataFrame([experiment_features(j) for j in jobs])
            self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(x, y)
        else:
            feats = [window_features(j, self.window) for j in jobs]
            yw = np.concatenate([[lab] * len(f) for f, lab in zip(feats, y, strict=True)])
            weight = np.concatenate([np.full(len(f), 1.0 / len(f)) for f in feats])
            self.model_ = RandomForestClassifier(
                n_estimators=self.n_estimators, min_samples_leaf=3, random_state=self.seed, n_jobs=1
            ).fit(np.vstack(feats), yw, sample_weight=weight)
        return self

    def predict_proba(self, job: Job) -> float:
        """Probability of the positive outcome (True) for one job."""
        if self.constant_ is not None:
            return float(self.constant_)
        x = (
            pd.DataFrame([experiment_features(job)])
            if self.method == "aggregate"
            else window_features(job, self.window)
        )
        proba = np.asarray(self.model_.predict_proba(x))
        classes = list(self.model_.classes_)
        return float(proba[:, classes.index(True)].mean())

    def predict(self, job: Job) -> bool:
        return self.predict_proba(job) >= 0.5


def leave_one_experiment_out(
    jobs: list[Job],
    labels: list[bool | None],
    method: str = "aggregate",
    seed: int = 0,
    n_estimators: int = 300,
) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted probability) for every job with a label, each predicted by a model that
    never saw it. Jobs without a label (e.g. inspection of an unfinished part) are skipped."""
    known = [i for i, lab in enumerate(labels) if lab is not None]
    truth, proba = [], []
    for i in known:
        train = [j for j in known if j != i]
        model = MachiningOutcomeClassifier(method=method, n_estimators=n_estimators, seed=seed).fit(
            [jobs[j] for j in train], [bool(labels[j]) for j in train]
        )
        truth.append(bool(labels[i]))
        proba.append(model.predict_proba(jobs[i]))
    return np.asarray(truth), np.asarray(proba)

"""Tool wear from the cutting phase, normalised by the job's settings, tested honestly.

A worn tool needs more force for the same cut, so the spindle and axis drives should draw more
current and power *for the same feedrate and clamp pressure*. Per job: over the cutting phases
only (``Layer ...`` rows), the log mean spindle power and current, and the log mean absolute X/Y
drive current and power while that axis moves (:func:`cutting_features`). Those depend strongly
on the feedrate, so inside every training fold a linear model ``feature ~ log(feedrate) + clamp``
is fitted on the training jobs and the classifier (a standardised logistic regression) sees only
the residuals: what the settings do not explain (:class:`SettingsNormalisedWear`).

:func:`leave_one_out` gives the balanced accuracy over jobs; :func:`permutation_p_value`
repeats it with shuffled labels to say how often chance alone does as well. :func:`matched_pairs`
lists, for jobs with identical settings but different tool condition, the difference of every
feature: the evidence of whether wear shows at all when the settings are held fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from axhub.ml.machining.outcome import Job, cutting_rows

FEATURES = ["S_power", "S_current", "X_current", "Y_current", "X_power", "Y_power"]


def cutting_features(job: Job) -> dict[str, float]:
    cut = cutting_rows(job.signals)
    feats = {
        "S_power": float(cut["S1_OutputPower"].clip(lower=0).mean()),
        "S_current": float(cut["S1_CurrentFeedback"].abs().mean()),
    }
    for axis in ("X", "Y"):
        moving = cut[np.abs(cut[f"{axis}1_ActualVelocity"].to_numpy()) > 1e-3]
        part = moving if len(moving) else cut
        feats[f"{axis}_current"] = float(part[f"{axis}1_CurrentFeedback"].abs().mean())
        feats[f"{axis}_power"] = float(part[f"{axis}1_OutputPower"].abs().mean())
    return {k: float(np.log(max(v, 1e-9))) for k, v in feats.items()}


def _settings(jobs: Sequence[Job]) -> np.ndarray:
    return np.column_stack([np.log([j.feedrate for j in jobs]), [j.clamp_pressure for j in jobs]])


class SettingsNormalisedWear:
    """Logistic regression on cutting features after removing what feedrate and clamp explain."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def fit(
        self, jobs: Sequence[Job], worn: Sequence[bool] | np.ndarray, features: np.ndarray | None = None
    ) -> Self:
        x = (
            features
            if features is not None
            else np.asarray([list(cutting_features(j).values()) for j in jobs])
        )
        self.settings_model_ = LinearRegression().fit(_settings(jobs), x)
        residual = x - self.settings_model_.predict(_settings(jobs))
        self.classifier_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.c, max_iter=1000))
        self.classifier_.fit(residual, np.asarray(worn, dtype=int))
        return self

    def predict_proba(self, jobs: Sequence[Job], features: np.ndarray | None = None) -> np.ndarray:
        x = (
            features
            if features is not None
            else np.asarray([list(cutting_features(j).values()) for j in jobs])
        )
        residual = x - self.settings_model_.predict(_settings(jobs))
        return np.asarray(self.classifier_.predict_proba(residual)[:, 1])


def balanced_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    truth, pred = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    recalls = [float(np.mean(pred[truth == c] == c)) for c in (True, False) if (truth == c).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


def leave_one_out(
    jobs: Sequence[Job], worn: Sequence[bool] | np.ndarray, features: np.ndarray | None = None
) -> np.ndarray:
    """Probability of 'worn' for every job from a model fitted on the others."""
    x = features if features is not None else np.asarray([list(cutting_features(j).values()) for j in jobs])
    y = np.asarray(worn, dtype=bool)
    proba = np.empty(len(jobs))
    for i in range(len(jobs)):
        rest = [k for k in range(len(jobs)) if k != i]
        if len(set(y[rest].tolist())) < 2:  # one class left: predict it
            proba[i] = float(y[rest][0])
            continue
        model = SettingsNormalisedWear().fit([jobs[k] for k in rest], y[rest], x[rest])
        proba[i] = model.predict_proba([jobs[i]], x[i : i + 1])[0]
    return proba


def permutation_p_value(
    jobs: Sequence[Job], worn: Sequence[bool], observed: float, n_permutations: int = 200, seed: int = 0
) -> tuple[float, np.ndarray]:
    """(p, null balanced accuracies): share of label shuffles whose leave-one-out balanced
    accuracy reaches ``observed`` (the +1 counts the observed labelling itself)."""
    x = np.asarray([list(cutting_features(j).values()) for j in jobs])
    y = np.asarray(worn, dtype=bool)
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for k in range(n_permutations):
        shuffled = rng.permutation(y)
        null[k] = balanced_accuracy(shuffled, leave_one_out(jobs, shuffled, x) >= 0.5)
    return (1 + int(np.sum(null >= observed - 1e-12))) / (n_permutations + 1), null


def matched_pairs(jobs: Sequence[Job], worn: Sequence[bool], names: Sequence[int]) -> pd.DataFrame:
    """Worn minus unworn feature values for every pair of jobs with identical settings."""
    feats = [cutting_features(j) for j in jobs]
    rows = []
    for i, a in enumerate(jobs):
        for k, b in enumerate(jobs):
            same = a.feedrate == b.feedrate and a.clamp_pressure == b.clamp_pressure
            if same and worn[i] and not worn[k]:
                diff = {f: feats[i][f] - feats[k][f] for f in FEATURES}
                rows.append(
                    {
                        "worn": names[i],
                        "unworn": names[k],
                        "feedrate": a.feedrate,
                        "clamp": a.clamp_pressure,
                        **diff,
                    }
                )
    return pd.DataFrame(rows)

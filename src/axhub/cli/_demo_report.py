"""How the demo judges and shows its detections: alarms against the simulator's truth.

Engineers think in events ("of 11 injected faults, 9 were caught; 12 of 14 alarms were real"),
data scientists in points; the demo reports both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Detection:
    """One asset's scoring result over the period after the normal (training) period."""

    asset: str
    name: str
    index: pd.DatetimeIndex
    frame: pd.DataFrame  # the signals scored, one column per signal
    score: np.ndarray
    threshold: float
    alarm: np.ndarray  # bool per row
    truth: np.ndarray  # bool per row
    truth_intervals: pd.DataFrame  # start, end, kind
    contributions: pd.DataFrame  # per-signal explanation, same rows
    normal_mean: pd.Series  # per signal, over the training (normal) period
    normal_std: pd.Series

    def how_far_off(self, signal: str, rows: slice) -> float:
        """The signal's mean over ``rows`` in standard deviations of its normal behaviour."""
        std = float(self.normal_std.get(signal, 0.0)) or 1.0
        return (float(self.frame[signal].iloc[rows].mean()) - float(self.normal_mean[signal])) / std


@dataclass(frozen=True)
class DetectionFigures:
    faults: int
    faults_caught: int
    alarm_episodes: int
    alarm_episodes_true: int
    precision: float
    recall: float

    @property
    def event_recall(self) -> float:
        return self.faults_caught / self.faults if self.faults else float("nan")

    @property
    def alarm_precision(self) -> float:
        return self.alarm_episodes_true / self.alarm_episodes if self.alarm_episodes else float("nan")


def episodes(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (first, last) row indices, inclusive."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def figures(det: Detection) -> DetectionFigures:
    alarm, truth = det.alarm.astype(bool), det.truth.astype(bool)
    tp = int((alarm & truth).sum())
    caught = 0
    for start, end in det.truth_intervals[["start", "end"]].itertuples(index=False):
        inside = (det.index >= pd.Timestamp(start)) & (det.index <= pd.Timestamp(end))
        caught += bool(alarm[inside].any())
    eps = episodes(alarm)
    true_eps = sum(bool(truth[a : b + 1].any()) for a, b in eps)
    return DetectionFigures(
        faults=len(det.truth_intervals),
        faults_caught=caught,
        alarm_episodes=len(eps),
        alarm_episodes_true=true_eps,
        precision=tp / alarm.sum() if alarm.sum() else float("nan"),
        recall=tp / truth.sum() if truth.sum() else float("nan"),
    )


def top_contributors(contributions: pd.DataFrame, rows: slice, n: int = 3) -> list[tuple[str, float]]:
    """The signals that contributed most over ``rows``, with their mean contribution."""
    mean = contributions.iloc[rows].abs().mean().sort_values(ascending=False)
    return [(str(k), float(v)) for k, v in mean.head(n).items()]


def plot_detections(detections: list[Detection], path: Path, title: str) -> Path:
    """One panel per asset: the top signals (scaled), the anomaly score, threshold and truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(detections), 1, figsize=(13, 2.8 * len(detections)), squeeze=False)
    for ax, det in zip(axes[:, 0], detections, strict=True):
        for start, end in det.truth_intervals[["start", "end"]].itertuples(index=False):
            ax.axvspan(start, end, color="tab:red", alpha=0.15, lw=0)
        ax.plot(det.index, det.score, color="tab:blue", lw=0.8, label="anomaly score")
        ax.axhline(det.threshold, color="tab:orange", ls="--", lw=1, label="threshold (from normal data)")
        alarm_idx = det.index[det.alarm.astype(bool)]
        ax.plot(
            alarm_idx,
            np.full(len(alarm_idx), det.threshold),
            "|",
            color="tab:red",
            ms=8,
            label="alarm",
        )
        ax.set_yscale("symlog")
        ax.set_title(f"{det.name} ({det.asset}) — shaded: injected faults (truth)", fontsize=10, loc="left")
        ax.legend(loc="upper left", fontsize=8, ncol=3)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

"""Streaming scorer: applies a deployed model bundle to live readings, window by window.

Readings arrive in long form (one row per asset, signal, time), often split across
messages. The scorer assembles, per asset, complete rows (every model input present at a
timestamp), keeps the last ``context`` rows so windowed models see their history, runs
the bundle (onnxruntime) on new rows and raises a model alert when the score passes the
bundle's threshold. The explanation names the signals that were off, most first, each as
reading vs normal range in engineering units (``serve.explain``), per operating state where
the model knows states; severity grows with how far past the threshold the score went.

Over-threshold rows are grouped into episodes (a gap of ``episode_gap_s``, or of three row
spacings when rows are sparser, splits them; lone barely-over rows are noise, not events), and
each episode is one event stamped with the time of ITS first readings and explained by ITS
worst row: readings that arrive in one burst (a gateway after an outage) give alerts at the
times things happened, never at the time they arrived.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from axhub.core.domain import Severity
from axhub.serve.alerts import AlertEvent, AlertManager
from axhub.serve.explain import NormalStats, explain_row, is_noise, severity_for

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the scorer needs from ``axhub.registry.bundle.BundleRunner``."""

    columns: list[str]
    threshold: float | None
    steps: list[dict[str, Any]]

    @property
    def min_rows(self) -> int: ...

    def run(self, data: Any) -> dict[str, np.ndarray]: ...


@dataclass
class ScoreStats:
    rows_scored: int = 0
    anomalous_rows: int = 0
    alerts: int = 0
    runs: int = 0
    seconds: float = 0.0
    dropped_incomplete: int = 0


@dataclass
class _AssetState:
    # time -> signal -> value; with buckets: bucket start -> signal -> {reading time: value}
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    context: np.ndarray | None = None  # last rows already scored (for windows)
    last_ts: int = -1
    # Newest bucket seen per signal: a bucket is closed once every signal has moved past it
    # (signals may arrive in separate messages; each signal's readings arrive in time order).
    newest_bucket: dict[str, int] = field(default_factory=dict)


def _standardize_stats(steps: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
    for step in steps:
        if step.get("op") == "standardize":
            return np.asarray(step["mean"], float), np.asarray(step["scale"], float)
    return None


class StreamingScorer:
    """Scores one asset's live readings with one model bundle."""

    def __init__(
        self,
        runner: Runner,
        asset: str,
        alerts: AlertManager,
        *,
        model_name: str = "model",
        threshold: float | None = None,
        top_k: int = 3,
        severity: Severity = Severity.WARNING,
        max_pending_rows: int = 10_000,
        on_alert: Callable[[AlertEvent], None] | None = None,
        on_scores: Callable[[np.ndarray, np.ndarray], None] | None = None,
        bucket_s: float = 0.0,
        normal: NormalStats | None = None,
        units: dict[str, str] | None = None,
        episode_gap_s: float = 60.0,
        graded: bool = True,
    ) -> None:
        self.runner = runner
        # A model trained on resampled data (e.g. 10 s means) must be scored on the same:
        # readings are averaged per bucket, and a bucket is scored once a later one has begun.
        self.bucket_us = round(bucket_s * 1_000_000)
        self.asset = asset
        self.alerts = alerts
        self.model_name = model_name
        self.threshold = threshold if threshold is not None else runner.threshold
        if self.threshold is None:
            raise ValueError("the bundle has no threshold; give one to the scorer")
        self.top_k = top_k
        self.severity = severity
        self.columns = list(runner.columns)
        self.context_rows = max(runner.min_rows - 1, 0)
        self.max_pending_rows = max_pending_rows
        # Normal-data statistics for z-scores: a preprocessing step, or noted as done in-graph.
        bundle = getattr(runner, "bundle", None)
        in_graph = list(getattr(bundle, "preprocessing", {}).get("in_graph", [])) if bundle else []
        self.stats_normal = _standardize_stats(list(runner.steps) + in_graph)
        self.normal = normal or NormalStats.from_bundle_steps(self.columns, list(runner.steps) + in_graph)
        self.units = units or {}
        self.episode_gap_us = round(episode_gap_s * 1_000_000)
        # Graded: severity from score / threshold; else always ``severity`` (the old behaviour).
        self.graded = graded
        self.on_alert = on_alert
        self.on_scores = on_scores  # (ts_us, score) of every scored row, e.g. for a live chart
        self.stats = ScoreStats()
        self._state = _AssetState()

    # -- assembling rows -------------------------------------------------------------------
    def _collect(self, batch: pa.Table) -> None:
        part = batch.filter(pc.equal(batch["asset"], self.asset))
        if part.num_rows == 0:
            return
        part = part.filter(pc.is_in(part["signal"], pa.array(self.columns)))
        part = part.filter(pc.is_valid(part["value"]))
        pending = self._state.pending
        ts = part["ts"].cast(pa.int64()).to_numpy()
        bucket = self.bucket_us
        for t, s, v in zip(ts.tolist(), part["signal"].to_pylist(), part["value"].to_pylist(), strict=True):
            key = t - t % bucket if bucket else t
            if key <= self._state.last_ts:
                continue  # already scored (a redelivery) or too late
            if bucket:
                # Keyed by reading time, so a redelivered reading is not averaged in twice.
                pending.setdefault(key, {}).setdefault(s, {})[t] = v
                newest = self._state.newest_bucket
                newest[s] = max(newest.get(s, -1), key)
            else:
                pending.setdefault(key, {})[s] = v

    def _value(self, cell: Any) -> float:
        return float(np.mean(list(cell.values()))) if self.bucket_us else float(cell)

    def _complete_rows(self) -> tuple[np.ndarray, np.ndarray]:
        pending = self._state.pending
        n_cols = len(self.columns)
        newest_all = min((self._state.newest_bucket.get(c, -1) for c in self.columns), default=-1)
        closed = (lambda t: t < newest_all) if self.bucket_us else (lambda t: True)
        done = sorted(t for t, row in pending.items() if len(row) == n_cols and closed(t))
        if not done:
            return np.empty(0, np.int64), np.empty((0, n_cols))
        # Rows still incomplete but older than the newest complete one will never be scored
        # in order; drop them (a signal missing at that instant).
        newest = done[-1]
        stale = [t for t in pending if t < newest and len(pending[t]) < n_cols]
        for t in stale:
            del pending[t]
        self.stats.dropped_incomplete += len(stale)
        matrix = np.array(
            [[self._value(pending[t][c]) for c in self.columns] for t in done], dtype=np.float64
        )
        for t in done:
            del pending[t]
        if len(pending) > self.max_pending_rows:  # a signal stopped coming: do not grow forever
            for t in sorted(pending)[: len(pending) - self.max_pending_rows]:
                del pending[t]
        return np.asarray(done, np.int64), matrix

    # -- scoring ---------------------------------------------------------------------------
    def explain(self, row: np.ndarray, contributions: np.ndarray | None) -> list[dict[str, Any]]:
        """The signals behind one row, most off first, with reading vs normal range."""
        explained = explain_row(row, self.columns, self.normal, contributions, self.units, self.top_k)
        if explained:
            return explained
        return self._legacy_explain(row, contributions)

    def _legacy_explain(self, row: np.ndarray, contributions: np.ndarray | None) -> list[dict[str, Any]]:
        z = None
        if self.stats_normal is not None:
            mean, scale = self.stats_normal
            z = (row - mean) / np.where(scale == 0, 1.0, scale)
        if contributions is not None and contributions.shape[-1] == len(self.columns):
            weight = np.abs(contributions)
        elif z is not None:
            weight = np.abs(z)
        else:
            return []
        total = float(weight.sum()) or 1.0
        out = []
        for j in np.argsort(-weight)[: self.top_k]:
            item: dict[str, Any] = {
                "signal": self.columns[j],
                "value": float(row[j]),
                "share": round(float(weight[j]) / total, 4),
            }
            if z is not None:
                item["z"] = round(float(z[j]), 3)
                item["normal_mean"] = float(self.stats_normal[0][j])  # type: ignore[index]
            out.append(item)
        return out

    def process(self, batch: pa.Table) -> list[AlertEvent]:
        """Score the complete new rows in ``batch``; returns the alert events raised."""
        self._collect(batch)
        stamps, rows = self._complete_rows()
        if not len(stamps):
            return []
        started = time.perf_counter()
        state = self._state
        context = state.context if state.context is not None else np.empty((0, len(self.columns)))
        data = np.vstack([context, rows])
        if len(data) < self.runner.min_rows:
            state.context = data[-self.context_rows :] if self.context_rows else None
            return []
        results = self.runner.run({c: data[:, j] for j, c in enumerate(self.columns)})
        scores = np.asarray(results["score"], dtype=np.float64)[-len(rows) :]
        contributions = results.get("contributions")
        if contributions is not None:
            contributions = np.asarray(contributions)[-len(rows) :]
        state.context = data[-self.context_rows :] if self.context_rows else None
        state.last_ts = int(stamps[-1])
        self.stats.runs += 1
        if self.on_scores is not None:
            self.on_scores(stamps, scores)
        self.stats.rows_scored += len(rows)
        events = []
        assert self.threshold is not None
        over = np.flatnonzero(scores > self.threshold)
        for episode in split_episodes(stamps, over, self.episode_gap_us):
            # One event per episode: its worst row explains it, its first row dates it.
            i = int(episode[np.argmax(scores[episode])])
            if is_noise(len(episode), float(scores[i]), self.threshold):
                continue
            contrib = contributions[i] if contributions is not None else None
            event = self._event(stamps, episode, rows[i], float(scores[i]), contrib)
            self.alerts.raise_alert(event)
            if self.on_alert is not None:
                self.on_alert(event)
            events.append(event)
        self.stats.anomalous_rows += len(over)
        self.stats.alerts += len(events)
        self.stats.seconds += time.perf_counter() - started
        return events

    def _event(
        self, stamps: np.ndarray, episode: np.ndarray, row: np.ndarray, score: float, contrib: Any
    ) -> AlertEvent:
        assert self.threshold is not None
        explanation = self.explain(row, contrib)
        return AlertEvent(
            asset=self.asset,
            ts=datetime.fromtimestamp(int(stamps[episode[0]]) / 1e6, UTC),
            severity=severity_for(score, self.threshold) if self.graded else self.severity,
            kind="model",
            source=self.model_name,
            title=alert_title(self.model_name, score, self.threshold, explanation),
            explanation=explanation,
            score=score,
            threshold=float(self.threshold),
            rows=len(episode),
            last_ts=datetime.fromtimestamp(int(stamps[episode[-1]]) / 1e6, UTC),
        )


def alert_title(model_name: str, score: float, threshold: float, explanation: list[dict[str, Any]]) -> str:
    """English title kept for logs and old clients; pages build theirs from ``explanation``."""
    top = ", ".join(f"{e['signal']} {e['text']}" if "text" in e else e["signal"] for e in explanation[:3])
    return f"{model_name}: anomaly score {score:.3g} ({score / threshold:.1f}x threshold); {top}"


def split_episodes(stamps: np.ndarray, over: np.ndarray, gap_us: int) -> list[np.ndarray]:
    """Indices of over-threshold rows, cut where two of them are more than ``gap_us`` apart."""
    if not len(over):
        return []
    if len(stamps) > 1:  # sparse rows (minute data): three row spacings still hold together
        gap_us = max(gap_us, 3 * int(np.median(np.diff(stamps))))
    gaps = np.diff(stamps[over]) > gap_us
    return np.split(over, np.flatnonzero(gaps) + 1)


class LiveScoring:
    """Everything scored after each store write: model scorers and threshold rules."""

    def __init__(self, scorers: list[StreamingScorer], rules: Any = None) -> None:
        self.scorers = scorers
        self.rules = rules

    def __call__(self, batch: pa.Table) -> None:
        for scorer in self.scorers:
            try:
                scorer.process(batch)
            except Exception:  # one broken model must not stop the others
                log.exception("scoring %s with %s failed", scorer.asset, scorer.model_name)
        if self.rules is not None:
            self.rules.process(batch)

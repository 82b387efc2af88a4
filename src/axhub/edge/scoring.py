"""Scoring live readings with the deployed bundle, on the device.

Readings arrive in long form (asset, signal, ts, value), often split over messages. Per asset the
scorer assembles complete rows (every model input present at one time, or averaged per bucket
when the model was trained on resampled data, e.g. 10 s means), keeps the last ``min_rows - 1``
rows as context for windowed models, runs the bundle and raises an alert when a row's score
crosses the threshold (one alert per episode: the row that starts it).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from axhub.registry.bundle import BundleRunner
from axhub.registry.normal_ranges import NormalStats, explain_row


@dataclass
class _AssetState:
    pending: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    newest: dict[str, int] = field(default_factory=dict)
    history: list[np.ndarray] = field(default_factory=list)
    last_ts: int = -1
    in_episode: bool = False


@dataclass
class ScoringStats:
    rows: int = 0
    runs: int = 0
    alerts: int = 0
    late_dropped: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


def model_info(runner: BundleRunner) -> dict[str, Any]:
    manifest = runner.bundle.manifest
    return {
        "family": str(manifest.get("family", "")),
        "name": str(manifest.get("name", "")),
        "version": str(manifest.get("version", "")),
    }


class LocalScorer:
    """Scores the given assets with one bundle; calls ``on_alert(alert)`` for each new episode."""

    def __init__(
        self,
        runner: BundleRunner,
        assets: list[str],
        *,
        bundle_sha: str = "",
        bucket_s: float = 0.0,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        recent_rows: int = 200,
    ) -> None:
        if runner.threshold is None:
            raise ValueError("the bundle has no threshold: it cannot raise alerts on its own")
        self.runner = runner
        self.columns = list(runner.columns)
        self.threshold = float(runner.threshold)
        self.assets = set(assets)
        self.bucket_us = round(bucket_s * 1_000_000)
        self.bundle_sha = bundle_sha
        self.model = model_info(runner)
        # The alert says why, as the hub's do: reading vs the bundle's normal range per signal.
        self.normal = NormalStats.from_bundle(
            self.columns, runner.bundle.manifest, runner.bundle.preprocessing
        )
        self.on_alert = on_alert
        self.context = max(runner.min_rows - 1, 0)
        self.stats = ScoringStats()
        self._states: dict[str, _AssetState] = {a: _AssetState() for a in assets}
        # Recent complete rows (any asset) for the health check of the next bundle.
        self.recent: deque[dict[str, float]] = deque(maxlen=recent_rows)

    # -- assembling rows ----------------------------------------------------------------------
    def feed(self, batch: pa.Table) -> list[dict[str, Any]]:
        """Take a readings batch; returns the alerts raised by the rows it completed."""
        if batch.num_rows == 0:
            return []
        wanted = set(self.columns)
        touched: set[str] = set()
        for asset, signal, ts, value in zip(
            batch.column("asset").to_pylist(),
            batch.column("signal").to_pylist(),
            batch.column("ts").cast(pa.int64()).to_pylist(),
            batch.column("value").to_pylist(),
            strict=True,
        ):
            state = self._states.get(asset)
            if state is None or signal not in wanted or value is None or not math.isfinite(value):
                continue
            key = ts - ts % self.bucket_us if self.bucket_us else ts
            if key <= state.last_ts:
                self.stats.late_dropped += 1
                continue
            cell = state.pending.setdefault(key, {}).setdefault(signal, [0.0, 0.0])
            cell[0] += value
            cell[1] += 1
            state.newest[signal] = max(state.newest.get(signal, -1), key)
            touched.add(asset)
        alerts: list[dict[str, Any]] = []
        for asset in sorted(touched):
            alerts.extend(self._score_ready(asset, self._states[asset]))
        return alerts

    def _ready_keys(self, state: _AssetState) -> list[int]:
        complete = [k for k, cells in state.pending.items() if len(cells) == len(self.columns)]
        if self.bucket_us:  # a bucket is closed once every signal has moved past it
            closed_before = min((state.newest.get(c, -1) for c in self.columns), default=-1)
            complete = [k for k in complete if k < closed_before]
        return sorted(complete)

    def _score_ready(self, asset: str, state: _AssetState) -> list[dict[str, Any]]:
        keys = self._ready_keys(state)
        if not keys:
            return []
        rows = np.array(
            [[state.pending[k][c][0] / state.pending[k][c][1] for c in self.columns] for k in keys]
        )
        for k in keys:
            del state.pending[k]
        # anything older than the newest scored row can no longer complete: drop it
        state.last_ts = keys[-1]
        for k in [k for k in state.pending if k < state.last_ts]:
            del state.pending[k]
        for row in rows:
            self.recent.append(dict(zip(self.columns, row.tolist(), strict=True)))
        data = np.vstack([*state.history, rows]) if state.history else rows
        if data.shape[0] < self.runner.min_rows:
            state.history = list(data)
            return []
        started = time.perf_counter()
        result = self.runner.run({c: data[:, i] for i, c in enumerate(self.columns)})
        self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.stats.runs += 1
        self.stats.rows += len(keys)
        state.history = list(data[-self.context :]) if self.context else []
        scores = np.asarray(result["score"], dtype=np.float64)[-len(keys) :]
        contributions = result.get("contributions")
        if contributions is not None:
            contributions = np.asarray(contributions, dtype=np.float64)[-len(keys) :]
        alerts: list[dict[str, Any]] = []
        for i, (key, score) in enumerate(zip(keys, scores, strict=True)):
            anomalous = bool(score > self.threshold)
            if anomalous and not state.in_episode:
                contrib = contributions[i] if contributions is not None else None
                alerts.append(self._alert(asset, key, float(score), rows[i], contrib))
            state.in_episode = anomalous
        for alert in alerts:
            self.stats.alerts += 1
            if self.on_alert is not None:
                self.on_alert(alert)
        return alerts

    def _alert(
        self, asset: str, ts_us: int, score: float, row: np.ndarray, contributions: np.ndarray | None
    ) -> dict[str, Any]:
        explanation = explain_row(row, self.columns, self.normal, contributions, top_k=3)
        when = datetime.fromtimestamp(ts_us / 1e6, UTC)
        ratio = score / self.threshold if self.threshold > 0 else math.inf
        return {
            "id": f"ealert_{uuid.uuid4().hex[:24]}",
            "asset": asset,
            "ts": when.isoformat(),
            "severity": "critical" if ratio >= 2 else "warning",
            "kind": "model",
            "source": f"edge:{self.model['name']}",
            "title": f"{asset}: anomaly score {score:.3g} over {self.threshold:.3g} ({self.model['name']})",
            "score": score,
            "threshold": self.threshold,
            "explanation": explanation,
            "bundle_sha256": self.bundle_sha,
        }


def health_problem(runner: BundleRunner, rows: list[dict[str, float]], max_alarm_share: float) -> str | None:
    """Why a bundle is not fit to run on these live rows (None: healthy)."""
    if runner.threshold is None:
        return "the bundle has no threshold"
    if len(rows) < runner.min_rows:
        return f"only {len(rows)} live rows, the bundle needs {runner.min_rows}"
    try:
        result = runner.run({c: np.array([r[c] for r in rows]) for c in runner.columns})
    except KeyError as exc:
        return f"live data has no signal {exc.args[0]!r} that the bundle needs"
    except Exception as exc:  # any failure to run on live data is a failed health check
        return f"the bundle fails on live data: {exc}"
    scores = np.asarray(result.get("score", []), dtype=np.float64)
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        return "the bundle gives no finite scores on live data"
    share = float(np.mean(scores > float(runner.threshold)))
    if share > max_alarm_share:
        return f"the bundle flags {share:.0%} of live rows as anomalous (limit {max_alarm_share:.0%})"
    return None

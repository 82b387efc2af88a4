"""Scoring a stored period through a model version: backtests, backfills, and files.

The same model, bundle and explanation as live scoring, over a window of the time-series
store: readings are averaged into the buckets the model was trained on, rows with a missing
signal are skipped, and windowed models get the rows before ``start`` as context. Over-threshold
rows become episodes (``split_episodes``), each one alert stamped with the time of its first
readings and explained by its worst row. A lone row only just past the threshold
(``explain.is_noise``) is noise a model tuned to a 1 % false-alarm rate produces several times
a day; it is not an alert.

* ``score_period`` returns the scores, threshold and the alerts that *would* fire (backtest);
* ``store_episodes`` stores them as alerts (backfill, and files after ingest), idempotently:
  an alert of the same model on the same machine at the same time is not stored twice;
* ``score_new_data`` scores what a file (or upload) just stored with every model deployed on
  the machines it touched: a CSV-only factory reaches alerts too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd

from axhub.core.settings import Settings
from axhub.registry.bundle import BundleRunner
from axhub.serve.alerts import AlertEvent, AlertManager, DbAlertSink
from axhub.serve.deployed import DeployedModel, active_deployments
from axhub.serve.explain import NormalStats, explain_row, is_noise, severity_for
from axhub.serve.scorer import alert_title, split_episodes
from axhub.store.db import Database
from axhub.store.models import AlertRow, AssetRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import Agg, TimeSeriesStore

log = logging.getLogger(__name__)
MAX_POINTS = 2000


@dataclass
class Episode:
    start: datetime
    end: datetime
    rows: int
    peak_score: float
    peak_at: datetime
    severity: str
    explanation: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "peak_score": self.peak_score,
            "peak_at": self.peak_at.isoformat(),
            "severity": self.severity,
            "explanation": self.explanation,
        }


@dataclass
class PeriodScores:
    asset: str
    model: str
    threshold: float
    ts: np.ndarray  # epoch microseconds of the scored rows
    scores: np.ndarray
    columns: list[str]
    episodes: list[Episode] = field(default_factory=list)
    skipped_rows: int = 0

    def points(self, max_points: int = MAX_POINTS) -> list[list[Any]]:
        """[iso time, score] for a chart; the maximum of each stretch when there are many rows."""
        n = len(self.ts)
        if n == 0:
            return []
        step = max(1, int(np.ceil(n / max_points)))
        out = []
        for a in range(0, n, step):
            j = a + int(np.argmax(self.scores[a : a + step]))
            out.append([_when(int(self.ts[j])).isoformat(), round(float(self.scores[j]), 6)])
        return out


def _when(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def score_frame(
    runner: BundleRunner,
    frame: pd.DataFrame,
    *,
    asset: str,
    model: str,
    normal: NormalStats | None,
    units: dict[str, str] | None = None,
    start: datetime | None = None,
    episode_gap_s: float = 60.0,
) -> PeriodScores:
    """Score a wide frame (``ts`` + the model's columns); rows before ``start`` are context only."""
    threshold = float(runner.threshold) if runner.threshold is not None else float("nan")
    columns = list(runner.columns)
    missing = [c for c in columns if c not in frame.columns]
    empty = PeriodScores(asset, model, threshold, np.empty(0, np.int64), np.empty(0), columns)
    if missing or frame.empty:
        empty.skipped_rows = len(frame)
        return empty
    complete = frame.dropna(subset=columns)
    skipped = len(frame) - len(complete)
    if len(complete) < runner.min_rows:
        empty.skipped_rows = len(frame)
        return empty
    stamps = pd.DatetimeIndex(pd.to_datetime(complete["ts"], utc=True)).tz_convert(None)
    ts = stamps.to_numpy(dtype="datetime64[us]").astype(np.int64)
    results = runner.run({c: complete[c].to_numpy(dtype=np.float64) for c in columns})
    scores = np.asarray(results["score"], dtype=np.float64)
    contributions = results.get("contributions")
    keep = ts >= int(start.timestamp() * 1e6) if start is not None else np.ones(len(ts), bool)
    values = complete[columns].to_numpy(dtype=np.float64)
    out = PeriodScores(asset, model, threshold, ts[keep], scores[keep], columns, skipped_rows=skipped)
    if not np.isfinite(threshold):
        return out
    idx = np.flatnonzero(keep)
    over = idx[scores[idx] > threshold]
    for episode in split_episodes(ts, over, round(episode_gap_s * 1e6)):
        i = int(episode[np.argmax(scores[episode])])
        if is_noise(len(episode), float(scores[i]), threshold):
            continue
        contrib = np.asarray(contributions)[i] if contributions is not None else None
        out.episodes.append(
            Episode(
                start=_when(int(ts[episode[0]])),
                end=_when(int(ts[episode[-1]])),
                rows=len(episode),
                peak_score=float(scores[i]),
                peak_at=_when(int(ts[i])),
                severity=str(severity_for(float(scores[i]), threshold)),
                explanation=explain_row(values[i], columns, normal, contrib, units),
            )
        )
    return out


def score_period(
    settings: Settings,
    org_id: str,
    dep: DeployedModel,
    start: datetime,
    end: datetime,
    on_progress: Callable[[float, str], None] | None = None,
) -> PeriodScores:
    """Score ``[start, end)`` of ``dep.asset`` with the model of ``dep`` (see the module docstring)."""
    runner = BundleRunner(dep.path)
    interval = dep.params.get("interval")
    step = pd.Timedelta(str(interval)) if interval else pd.Timedelta(seconds=1)
    context = step * max(runner.min_rows - 1, 0) * 3
    store = TimeSeriesStore(settings.timeseries_root)
    if on_progress:
        on_progress(0.1, "reading the period")
    frame = store.query_wide(
        org_id,
        dep.asset,
        list(runner.columns),
        start - context.to_pytimedelta(),
        end,
        str(interval) if interval else None,
        cast(Agg, str(dep.params.get("agg", "mean"))),
    )
    if on_progress:
        on_progress(0.5, f"scoring {len(frame)} rows")
    return score_frame(
        runner,
        frame,
        asset=dep.asset,
        model=dep.name,
        normal=NormalStats.from_params(runner.columns, dep.params),
        units=dep.units,
        start=start,
    )


def store_episodes(
    db: Database, org_id: str, scored: PeriodScores, manager: AlertManager | None = None
) -> list[str]:
    """Store each episode as an alert (once: the same model, machine and time is not repeated).

    Returns the ids of the alerts stored now."""
    sink = DbAlertSink(db, org_id)
    manager = manager or AlertManager(sink, max_new_per_window=1_000_000)
    stored: list[str] = []
    with db.session() as session:
        scope = OrgScope(session, org_id)
        asset = scope.find(AssetRow, slug=scored.asset)
        asset_id = asset.id if asset is not None else scored.asset
        known = {row.ts for row in scope.list(AlertRow, asset_id=asset_id, kind="model", source=scored.model)}
    for ep in scored.episodes:
        if ep.start in known:
            continue
        event = AlertEvent(
            asset=scored.asset,
            ts=ep.start,
            severity=severity_for(ep.peak_score, scored.threshold),
            kind="model",
            source=scored.model,
            title=alert_title(scored.model, ep.peak_score, scored.threshold, ep.explanation),
            explanation=ep.explanation,
            score=ep.peak_score,
            threshold=scored.threshold,
            rows=ep.rows,
            last_ts=ep.end,
        )
        before = len(sink.added)
        manager.raise_alert(event)
        stored += sink.added[before:]
    return stored


def score_new_data(
    db: Database,
    settings: Settings,
    org_id: str,
    assets: set[str],
    start: datetime | None,
    end: datetime | None,
) -> list[str]:
    """Score what was just stored on ``assets`` in ``[start, end]`` with every deployed model;
    store the alerts. Returns the new alert ids. A model that fails is logged, never fatal."""
    if start is None or end is None or not assets:
        return []
    new = _apply_rules(db, settings, org_id, assets, start, end)
    for dep in active_deployments(db, settings, org_id, assets):
        try:
            scored = score_period(settings, org_id, dep, start, end + timedelta(microseconds=1))
            new += store_episodes(db, org_id, scored)
        except Exception:
            log.exception("scoring new data of %s with %s failed", dep.asset, dep.name)
    return new


def _apply_rules(
    db: Database, settings: Settings, org_id: str, assets: set[str], start: datetime, end: datetime
) -> list[str]:
    """The organisation's limit and rate rules over the readings just stored on ``assets``."""
    import pyarrow as pa

    from axhub.serve.alerts import RuleEngine
    from axhub.serve.deployed import rules_from_db

    found = [r for r in rules_from_db(db, org_id) if r.asset in assets]
    if not found:
        return []
    sink = DbAlertSink(db, org_id)
    engine = RuleEngine(found, AlertManager(sink, max_new_per_window=1_000_000))
    store = TimeSeriesStore(settings.timeseries_root)
    for slug in sorted({r.asset for r in found}):
        frame = store.query(
            org_id,
            slug,
            sorted({r.signal for r in found if r.asset == slug}),
            start,
            end + timedelta(microseconds=1),
        )
        if frame.empty:
            continue
        frame = frame.assign(asset=slug).sort_values("ts")
        engine.process(pa.Table.from_pandas(frame[["asset", "signal", "ts", "value"]], preserve_index=False))
    return list(sink.added)

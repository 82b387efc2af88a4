"""Live scoring and alerts: streaming scorer on a real bundle, rules, de-duplication, rate
limiting, storage in the metadata DB and acknowledgement, and MQTT → alert latency."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
import pyarrow as pa
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from axhub.core.domain import Severity
from axhub.core.errors import NotFoundError
from axhub.core.readings import make_batch
from axhub.ingest.connectors.mqtt import MqttSource
from axhub.ingest.deadletter import DeadLetterStore
from axhub.ingest.tag_mapping import MqttConfig
from axhub.ingest.worker import IngestWorker
from axhub.ml.anomaly import MSPC
from axhub.registry.bundle import BundleRunner
from axhub.serve.alerts import (
    AlertEvent,
    AlertManager,
    DbAlertSink,
    LimitRule,
    MemoryAlertSink,
    RateOfChangeRule,
    RuleEngine,
    acknowledge_alert,
    list_alerts,
)
from axhub.serve.scorer import LiveScoring, StreamingScorer
from axhub.store.db import Database
from axhub.store.platform import create_org
from axhub.store.timeseries import TimeSeriesStore

COLUMNS = ["flow", "pressure", "current"]
T0_US = 1_735_689_600_000_000


def process(n: int, seed: int) -> pd.DataFrame:
    """Three correlated signals of a pump (flow drives pressure and current)."""
    rng = np.random.default_rng(seed)
    flow = 50 + 5 * rng.standard_normal(n)
    return pd.DataFrame(
        {
            "flow": flow,
            "pressure": 2.0 + 0.04 * flow + 0.05 * rng.standard_normal(n),
            "current": 10 + 0.2 * flow + 0.1 * rng.standard_normal(n),
        }
    )


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "mspc"
    MSPC(columns=COLUMNS).fit(process(1500, seed=1)).save(path)
    return path


@pytest.fixture(scope="module")
def windowed_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "mspc-w"
    MSPC(columns=COLUMNS, window=4).fit(process(1500, seed=1)).save(path)
    return path


def long_batches(frame: pd.DataFrame, asset: str, start: int = 0) -> list[pa.Table]:
    """One batch per signal (as if each came in its own MQTT message)."""
    ts = T0_US + (start + np.arange(len(frame))) * 1_000_000
    return [make_batch(asset, col, ts, frame[col].to_numpy()) for col in frame.columns]


def test_scorer_raises_one_explained_alert_per_episode(bundle_dir: Path) -> None:
    sink = MemoryAlertSink()
    manager = AlertManager(sink, dedup_window_s=30)
    scorer = StreamingScorer(BundleRunner(bundle_dir), "pump-01", manager, model_name="mspc")
    normal = process(300, seed=2)
    for batch in long_batches(normal, "pump-01"):
        scorer.process(batch)
    assert scorer.stats.rows_scored == 300
    false_alarms = scorer.stats.anomalous_rows
    assert false_alarms <= 9  # ~1 % false-alarm rate by calibration
    fault = process(50, seed=3)
    fault["current"] += 1.5  # current no longer follows flow: a motor problem
    for batch in long_batches(fault, "pump-01", start=300):
        scorer.process(batch)
    assert scorer.stats.anomalous_rows - false_alarms >= 45
    episode = [
        a
        for a in sink.alerts.values()
        if a.last_seen and a.last_seen >= datetime.fromtimestamp(T0_US / 1e6 + 300, UTC)
    ]
    assert len(episode) == 1  # de-duplicated into one alert ...
    alert = episode[0]
    assert alert.count >= 45  # ... that counts its readings
    top = alert.event.explanation[0]
    assert top["signal"] == "current" and top["z"] > 1.0
    assert alert.event.score is not None and alert.event.threshold is not None
    assert alert.event.score > alert.event.threshold
    assert "x threshold" in alert.event.title and "current" in alert.event.title


def test_streaming_windows_match_batch_scoring(windowed_bundle_dir: Path) -> None:
    runner = BundleRunner(windowed_bundle_dir)
    data = process(120, seed=4)
    data.loc[80:, "pressure"] += 0.5
    expected = runner.run({c: data[c].to_numpy() for c in COLUMNS})["score"]
    got: dict[int, float] = {}

    def keep(ts: np.ndarray, scores: np.ndarray) -> None:
        for t, v in zip(ts.tolist(), scores.tolist(), strict=True):
            assert t not in got  # each row is scored once
            got[t] = v

    scorer = StreamingScorer(runner, "pump-01", AlertManager(MemoryAlertSink()), on_scores=keep)
    batches = long_batches(data, "pump-01")
    for lo in range(0, 120, 17):  # uneven chunks, each signal in its own batch
        for b in batches:
            scorer.process(b.slice(lo, 17))
        scorer.process(batches[0].slice(lo, 3))  # a redelivered piece changes nothing
    stamps = T0_US + np.arange(120) * 1_000_000
    # Every row is scored once, with its window's history carried across batches, as in batch.
    assert runner.min_rows == 4
    assert sorted(got) == stamps.tolist()
    np.testing.assert_allclose([got[t] for t in stamps], expected, rtol=1e-5)


def test_limit_and_rate_rules_explain_how_far_off() -> None:
    sink = MemoryAlertSink()
    engine = RuleEngine(
        [
            LimitRule("pump-01", "bearing_temp", high=80.0, severity=Severity.CRITICAL),
            RateOfChangeRule("pump-01", "pressure", max_per_s=0.5),
        ],
        AlertManager(sink),
    )
    ts = T0_US + np.arange(5) * 1_000_000
    engine.process(make_batch("pump-01", "bearing_temp", ts, [70, 75, 79, 88, 90]))
    engine.process(make_batch("pump-01", "pressure", ts[:3], [2.0, 2.1, 2.2]))
    engine.process(make_batch("pump-01", "pressure", ts[3:], [4.2, 4.3]))  # +2.0 bar in 1 s
    alerts = sorted(sink.alerts.values(), key=lambda a: a.event.source)
    assert [a.event.source for a in alerts] == ["limit:bearing_temp", "rate:pressure"]
    limit = alerts[0]
    assert limit.count == 2 and limit.event.severity is Severity.CRITICAL
    assert limit.event.explanation[0]["excess"] == pytest.approx(8.0)
    assert limit.event.explanation[0]["times_limit"] == pytest.approx(1.1)
    rate = alerts[1].event.explanation[0]
    assert rate["rate_per_s"] == pytest.approx(2.0) and rate["times_limit"] == pytest.approx(4.0)


def _event(asset: str, source: str, minute: float) -> AlertEvent:
    return AlertEvent(
        asset,
        datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minute),
        Severity.WARNING,
        "rule",
        source,
        "x",
    )


def test_dedup_window_and_rate_limit() -> None:
    sink = MemoryAlertSink()
    manager = AlertManager(sink, dedup_window_s=300, max_new_per_window=2, rate_window_s=3600)
    assert manager.raise_alert(_event("a", "r1", 0)) == "new"
    assert manager.raise_alert(_event("a", "r1", 4)) == "merged"
    assert manager.raise_alert(_event("a", "r1", 8.9)) == "merged"  # window follows the last one
    assert manager.raise_alert(_event("a", "r1", 20)) == "new"  # a new episode
    assert manager.raise_alert(_event("a", "r2", 21)) == "suppressed"  # third new alert in an hour
    assert manager.raise_alert(_event("b", "r2", 21)) == "new"  # the limit is per asset
    assert manager.raise_alert(_event("a", "r3", 90)) == "new"  # the hour has passed
    assert len(sink.alerts) == 4 and manager.suppressed == 1


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    database.migrate()
    return database


def test_alerts_stored_merged_listed_and_acknowledged_in_the_db(db: Database) -> None:
    with db.session() as session:
        org = create_org(session, "Acme").id
        other = create_org(session, "Other").id
    manager = AlertManager(DbAlertSink(db, org), dedup_window_s=300)
    first = _event("pump-01", "limit:temp", 0)
    first = AlertEvent(**{**first.__dict__, "explanation": [{"signal": "temp", "excess": 3.0}]})
    manager.raise_alert(first)
    manager.raise_alert(_event("pump-01", "limit:temp", 1))
    rows = list_alerts(db, org)
    assert (
        len(rows) == 1 and rows[0].count == 2 and rows[0].explanation == [{"signal": "temp", "excess": 3.0}]
    )
    assert list_alerts(db, other) == []
    with pytest.raises(NotFoundError):
        acknowledge_alert(db, other, rows[0].id, "mallory")  # another org's alert looks missing
    acked = acknowledge_alert(db, org, rows[0].id, "kim")
    assert acked.acknowledged_by == "kim" and acked.acknowledged_at is not None
    assert list_alerts(db, org, open_only=True) == []


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.mqtt
def test_mqtt_reading_to_stored_alert_under_a_second(bundle_dir: Path, db: Database, tmp_path: Path) -> None:
    if not _broker_up():
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883")
    with db.session() as session:
        org = create_org(session, "Acme").id
    prefix = f"lat{uuid.uuid4().hex[:6]}"
    stored_at: list[float] = []
    sink = DbAlertSink(db, org)
    scorer = StreamingScorer(
        BundleRunner(bundle_dir),
        "pump-01",
        AlertManager(sink),
        model_name="mspc",
        on_alert=lambda _e: stored_at.append(time.time()),
    )
    cfg = MqttConfig.model_validate(
        {
            "port": 1883,
            "client_id": f"lat-{uuid.uuid4().hex[:6]}",
            "topics": [{"topic": f"{prefix}/{{asset}}/batch"}],
        }
    )
    source = MqttSource(cfg)
    worker = IngestWorker(
        source,
        TimeSeriesStore(tmp_path / "ts"),
        "acme",
        DeadLetterStore(tmp_path / "dl"),
        flush_interval_s=0.05,
        on_written=LiveScoring([scorer]),
    )
    source.connect()
    assert source.wait_connected(5)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"connect": False}, daemon=True)
    thread.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    normal = process(20, seed=5)
    rows = [
        {"signal": c, "ts": (T0_US // 1000) + i * 1000, "value": float(normal[c][i])}
        for i in range(20)
        for c in COLUMNS
    ]
    pub.publish(f"{prefix}/pump-01/batch", json.dumps(rows), qos=1).wait_for_publish(5)
    time.sleep(0.3)
    fault = {"flow": 50.0, "pressure": 4.0, "current": 25.0}
    published = time.time()
    rows = [{"signal": c, "ts": (T0_US // 1000) + 20_000, "value": v} for c, v in fault.items()]
    pub.publish(f"{prefix}/pump-01/batch", json.dumps(rows), qos=1).wait_for_publish(5)
    deadline = time.time() + 5
    while not stored_at and time.time() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    pub.disconnect()
    pub.loop_stop()
    assert stored_at, "no alert stored"
    assert stored_at[0] - published < 1.0
    alerts = list_alerts(db, org)
    assert len(alerts) == 1 and alerts[0].kind == "model" and alerts[0].explanation


def test_bucketed_scorer_scores_closed_bucket_means_once(bundle_dir: Path) -> None:
    """A model trained on 10 s means is scored on 10 s means of the live 1 Hz readings."""
    runner = BundleRunner(bundle_dir)
    data = process(35, seed=6)
    got: dict[int, float] = {}

    def keep(ts: np.ndarray, scores: np.ndarray) -> None:
        for t, v in zip(ts.tolist(), scores.tolist(), strict=True):
            assert t not in got  # each bucket is scored once
            got[t] = v

    scorer = StreamingScorer(runner, "pump-01", AlertManager(MemoryAlertSink()), on_scores=keep, bucket_s=10)
    batches = long_batches(data, "pump-01")
    for lo in range(0, 35, 7):
        for b in batches:
            scorer.process(b.slice(lo, 7))
        scorer.process(batches[1].slice(0, lo + 7))  # redelivered readings are not averaged twice
    means = data.iloc[:30].groupby(np.arange(30) // 10).mean()
    expected = runner.run({c: means[c].to_numpy() for c in COLUMNS})["score"]
    # Buckets 0-10 s, 10-20 s and 20-30 s are closed; 30-40 s is still open.
    assert sorted(got) == [T0_US + k * 10_000_000 for k in range(3)]
    np.testing.assert_allclose([got[t] for t in sorted(got)], expected, rtol=1e-5)

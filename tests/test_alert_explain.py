"""Alerts that explain themselves: signals most off first (barely-off ones dropped), reading vs
normal range in engineering units per operating state, graded severity, and an alert's time is
the time of the readings that triggered it, even when hours of readings arrive in one burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axhub.core.readings import make_batch
from axhub.ml.anomaly import MSPC
from axhub.registry.bundle import BundleRunner
from axhub.serve.alerts import AlertManager, MemoryAlertSink
from axhub.serve.explain import NormalStats, describe, explain_row, fit_normal_states, severity_for
from axhub.serve.scorer import StreamingScorer

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
T0_US = int(T0.timestamp() * 1e6)


def machine(n: int, seed: int) -> pd.DataFrame:
    """A spindle that idles and cuts: speed, load and vibration move together per state."""
    rng = np.random.default_rng(seed)
    cutting = (np.arange(n) // 60) % 2 == 1
    return pd.DataFrame(
        {
            "speed": np.where(cutting, 8000.0, 800.0) + rng.normal(0, 20, n),
            "load": np.where(cutting, 60.0, 5.0) + rng.normal(0, 1.0, n),
            "vibration": np.where(cutting, 2.0, 0.5) + rng.normal(0, 0.05, n),
        }
    )


def test_normal_states_keep_idle_and_cutting_apart() -> None:
    frame = machine(1200, seed=1)
    states = fit_normal_states(frame, list(frame.columns))
    assert len(states) == 2
    means = sorted(s["mean"][0] for s in states)
    assert means[0] == pytest.approx(800, abs=10) and means[1] == pytest.approx(8000, abs=10)
    normal = NormalStats.from_params(list(frame.columns), {"normal_states": states})
    assert normal is not None
    # Cutting with a vibration of 4.4: compared with cutting (2.0 ± 0.05), not the average of both.
    row = np.array([8010.0, 61.0, 4.4])
    explained = explain_row(row, list(frame.columns), normal, units={"vibration": "mm/s", "speed": "rpm"})
    assert [e["signal"] for e in explained] == ["vibration"]  # speed and load are normal: dropped
    top = explained[0]
    assert top["normal_mean"] == pytest.approx(2.0, abs=0.01) and top["unit"] == "mm/s"
    assert top["text"].startswith("4.40 mm/s, normal 2.00 ± 0.05")
    assert top["text_ko"].startswith("4.40 mm/s, 정상 2.00 ± 0.05")
    # One state for noise around one mean.
    flat = pd.DataFrame(
        {"a": np.random.default_rng(2).normal(0, 1, 1000), "b": np.random.default_rng(3).normal(5, 1, 1000)}
    )
    assert len(fit_normal_states(flat, ["a", "b"])) == 1


def test_severity_grows_with_how_far_past_the_threshold() -> None:
    assert severity_for(1.1, 1.0) == "info"
    assert severity_for(2.0, 1.0) == "warning"
    assert severity_for(98.0, 1.0) == "critical"
    assert describe({"value": 5361.0, "normal_mean": 5200.0, "normal_std": 12.3, "unit": "rpm"}) == (
        "5,361 rpm, normal 5,200 ± 12"
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "mspc"
    MSPC(columns=["speed", "load", "vibration"]).fit(machine(2400, seed=4)).save(path)
    return path


def test_burst_delivery_dates_each_alert_at_its_own_readings(bundle: Path) -> None:
    # Three hours of one-second readings arrive in ONE batch (a gateway after an outage);
    # the vibration goes bad only from 08:07 on.
    n = 3 * 3600
    frame = machine(n, seed=5)
    fault_at = 2 * 3600 + 7 * 60
    frame.loc[fault_at : fault_at + 120, "vibration"] += 2.0
    ts = T0_US + np.arange(n) * 1_000_000
    batch = None
    import pyarrow as pa

    batch = pa.concat_tables([make_batch("cnc-01", c, ts, frame[c].to_numpy()) for c in frame.columns])
    sink = MemoryAlertSink()
    scorer = StreamingScorer(
        BundleRunner(bundle), "cnc-01", AlertManager(sink, max_new_per_window=100), model_name="mspc"
    )
    events = scorer.process(batch)
    assert events
    fault_time = datetime.fromtimestamp((T0_US + fault_at * 1_000_000) / 1e6, UTC)  # 08:07
    fault = max(events, key=lambda e: e.score or 0.0)
    assert abs(fault.ts - fault_time) <= timedelta(seconds=30)  # not 06:00, not the arrival time
    assert fault.explanation[0]["signal"] == "vibration" and fault.explanation[0]["value"] > 2.5
    assert fault.last_ts is not None and fault.last_ts - fault_time <= timedelta(minutes=3)
    # Anything else in the burst is dated and explained by its own readings, and is mild.
    for event in events:
        if event is not fault:
            assert event.last_ts is not None and (event.last_ts < fault.ts or event.ts > fault.last_ts)
            assert event.severity != "critical"
    # Stored: the fault is its own critical alert, not merged into an earlier mild one.
    stored = [a for a in sink.alerts.values() if abs(a.event.ts - fault_time) <= timedelta(seconds=30)]
    assert len(stored) == 1 and stored[0].event.severity == "critical"
    assert all(abs(e["z"]) >= 1.0 for e in fault.explanation)
    assert fault.severity == "critical"

"""Edge alerts explain themselves like hub-scored ones: reading vs the bundle's normal range per
signal, computed on the device, and the hub adds the machine's units when they arrive."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _edge import KOREAN, anomaly_bundle
from axhub.edge.buffer import ALERTS_KIND, encode_events, readings_table
from axhub.edge.bundles import BundleSlots
from axhub.edge.scoring import LocalScorer
from axhub.fleet.service import device_for, enrol, issue_token, receive_batch, sign_archive
from axhub.ml.anomaly.base import synthetic_sensor_data
from axhub.registry.signing import load_or_create_hub_key
from axhub.store.db import Database
from axhub.store.models import AlertRow
from axhub.store.platform import ensure_org
from axhub.store.scoped import OrgScope

COLUMNS = list(KOREAN.values())


FAULT_AT = 100  # row where pressure jumps far out of its normal range (+5 bar)


def _pump_rows() -> pd.DataFrame:
    frame = synthetic_sensor_data(0).train.rename(columns=KOREAN).iloc[:130].reset_index(drop=True)
    frame.loc[FAULT_AT:, "압력"] += 5.0
    frame.insert(0, "ts", pd.date_range("2026-03-02T00:00:00Z", periods=len(frame), freq="100ms", unit="ns"))
    return frame


def _device_alert(tmp_path: Path, params: dict[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """Sign a bundle as a rollout does, install it on a device, score the pump there: the alert
    raised by the pressure fault."""
    key = load_or_create_hub_key(tmp_path / "hub")
    signed = sign_archive(anomaly_bundle(tmp_path), key, params)
    data = signed.read_bytes()
    shutil.rmtree(signed.parent)
    sha = hashlib.sha256(data).hexdigest()
    slots = BundleSlots(tmp_path / "device", key.public_pem)
    slots.install(data, sha)
    runner = slots.runner(sha)
    assert runner is not None
    scorer = LocalScorer(runner, ["펌프-1"], bundle_sha=sha)
    frame = _pump_rows()
    ts = frame["ts"].astype("int64").to_numpy() // 1000
    long = [(c, int(t), float(v)) for c in COLUMNS for t, v in zip(ts, frame[c], strict=True)]
    n = len(long)
    table = readings_table(
        ["펌프-1"] * n, [s for s, _, _ in long], [t for _, t, _ in long], [v for *_, v in long], [0] * n
    )
    fault_ts = frame["ts"][FAULT_AT]
    raised = [a for a in scorer.feed(table) if pd.Timestamp(a["ts"]) == fault_ts]
    assert len(raised) == 1, "the pressure fault must raise an alert on its first row"
    return raised[0], runner


def test_device_alert_explains_reading_against_the_recorded_normal_states(tmp_path: Path) -> None:
    train = synthetic_sensor_data(0).train.rename(columns=KOREAN).iloc[:300]  # not the bundle's own
    states = [{"mean": train[COLUMNS].mean().tolist(), "std": train[COLUMNS].std(ddof=0).tolist()}]
    alert, runner = _device_alert(tmp_path, {"normal_states": states, "interval": "1s"})
    # the training record travels inside the signed manifest (only what the device needs)
    assert runner.bundle.manifest["params"]["normal_states"] == states
    assert "interval" not in runner.bundle.manifest["params"]
    why = alert["explanation"]
    assert why and why[0]["signal"] == "압력"  # the fault is on pressure
    j = COLUMNS.index("압력")
    assert why[0]["value"] == pytest.approx(_pump_rows()["압력"][FAULT_AT])
    assert why[0]["normal_mean"] == pytest.approx(states[0]["mean"][j])
    assert why[0]["normal_std"] == pytest.approx(states[0]["std"][j])
    assert why[0]["z"] >= 3
    assert "normal" in why[0]["text"] and "정상" in why[0]["text_ko"]


def test_device_alert_without_training_record_uses_the_bundle_standardisation(tmp_path: Path) -> None:
    alert, runner = _device_alert(tmp_path, None)
    why = alert["explanation"]
    assert why and why[0]["signal"] == "압력"
    in_graph = next(s for s in runner.bundle.preprocessing["in_graph"] if s["op"] == "standardize")
    j = COLUMNS.index("압력")
    assert why[0]["normal_mean"] == pytest.approx(in_graph["mean"][j])
    assert why[0]["normal_std"] == pytest.approx(in_graph["scale"][j])
    assert "share" in why[0]  # the model's own contributions ride along, as on the hub


def test_hub_keeps_the_device_explanation_and_adds_the_machines_units(
    database: Database, tmp_path: Path
) -> None:
    alert = {
        "id": "ealert_" + "a" * 24,
        "asset": "pump-01",
        "ts": "2026-03-02T00:00:20+00:00",
        "severity": "warning",
        "score": 5.0,
        "threshold": 1.7,
        "explanation": [
            {"signal": "압력", "value": 3.61, "z": 4.4, "normal_mean": 2.99, "normal_std": 0.14, "unit": ""},
        ],
    }
    with database.session() as session:
        org = ensure_org(session, "한빛정밀", "hanbit")
        scope = OrgScope(session, org.id)
        scope.register_signals([("pump-01", "압력", "bar")])
        token, _row = issue_token(scope, "gw", created_by="test")
        credential = enrol(session, token, "gw", "test")["credential"]
        scope, device, state = device_for(session, credential)
        receive_batch(
            scope,
            device,
            state,
            batch_id="b1",
            kind=ALERTS_KIND,
            payload=encode_events([alert]),
            timeseries=None,
        )
    with database.session() as session:
        stored = session.get(AlertRow, alert["id"])
        assert stored is not None
        item = stored.explanation[0]
    assert item["unit"] == "bar" and item["z"] == 4.4
    assert item["text"] == "3.61 bar, normal 2.99 ± 0.14"
    assert item["text_ko"] == "3.61 bar, 정상 2.99 ± 0.14"
    assert np.isclose(item["normal_mean"], 2.99)

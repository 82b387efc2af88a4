"""The demo end to end: simulate, ingest CSV exports, train, score, alert, register, log in."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from _torch import HAS_TORCH
from axhub.cli import demo as demo_cli
from axhub.cli.main import app as cli_app
from axhub.core.settings import Settings
from axhub.sim import simulate_plant
from axhub.store.db import Database
from axhub.store.models import AlertRow, DeploymentRow, ModelVersionRow, OrganizationRow

DAYS, SEED = 0.5, 3


def _counts(settings: Settings) -> dict[str, int]:
    db = Database(settings.database_url)
    with db.session() as s:
        org = s.scalars(select(OrganizationRow).where(OrganizationRow.slug == settings.default_org)).one()
        alerts = s.scalars(select(AlertRow).where(AlertRow.org_id == org.id)).all()
        production = s.scalars(
            select(ModelVersionRow).where(
                ModelVersionRow.org_id == org.id, ModelVersionRow.stage == "production"
            )
        ).all()
        active = s.scalars(
            select(DeploymentRow).where(DeploymentRow.org_id == org.id, DeploymentRow.active.is_(True))
        ).all()
        # Each alert names the signals behind it and how far off they were (z vs normal data).
        explained = all(
            a.explanation and all(e["signal"] and abs(e["z"]) < 1e6 for e in a.explanation) for a in alerts
        )
        explained = explained and any(abs(e["z"]) >= 2 for a in alerts for e in a.explanation)
        out = {"alerts": len(alerts), "production": len(production), "deployed": len(active)}
        out["explained"] = int(explained)
    db.dispose()
    return out


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-home")


def test_demo_runs_end_to_end_and_finds_injected_faults(demo_home: Path) -> None:
    settings = Settings(home=demo_home)
    result = demo_cli.run_demo(settings, days=DAYS, seed=SEED)

    plant = simulate_plant(days=DAYS, seed=SEED)
    prod = result.production
    assert prod is not None
    # every simulated reading (sensors, machine states and part counts), stored once
    assert result.points_stored == plant.n_points + prod.points
    assert prod.oee == pytest.approx(prod.true_oee, rel=1e-9) and 0.3 < prod.oee < 0.95
    assert prod.top_losses and prod.availability is not None and prod.availability < 1
    assert result.bytes_on_disk / result.points_stored < 4
    assert len(result.detections) == len(plant.assets)
    faults = sum(demo_cli.figures(d).faults for d in result.detections)
    caught = sum(demo_cli.figures(d).faults_caught for d in result.detections)
    assert faults > 0 and caught >= faults // 2, (caught, faults)
    assert result.plot is not None and result.plot.stat().st_size > 10_000
    counts = _counts(settings)
    assert counts["alerts"] == result.alerts_created > 0
    assert counts["explained"] == 1  # each alert names the signals behind it
    assert counts["production"] == counts["deployed"] == len(plant.assets)
    ins = result.inspection
    if not HAS_TORCH:  # the vision model needs torch: the rest of the demo runs without it
        assert ins is None
        return
    assert ins is not None and ins.parts == 12 and ins.defects_true == 4
    assert ins.defects_caught >= 3 and ins.false_alarms <= 2, ins  # learned from good parts only


def test_deployed_demo_models_score_replayed_readings(demo_home: Path) -> None:
    """The models the demo deployed become live scorers that raise explained alerts."""
    import pandas as pd

    from axhub.core.readings import make_batch
    from axhub.serve.alerts import AlertManager, MemoryAlertSink
    from axhub.serve.deployed import deployed_scorers
    from axhub.serve.scorer import LiveScoring
    from axhub.store.timeseries import TimeSeriesStore

    settings = Settings(home=demo_home)
    plant = simulate_plant(days=DAYS, seed=SEED)
    db = Database(settings.database_url)
    with db.session() as s:
        org = s.scalars(select(OrganizationRow).where(OrganizationRow.slug == settings.default_org)).one()
        org_id = org.id
    sink = MemoryAlertSink()
    scorers = deployed_scorers(db, settings, org_id, AlertManager(sink))
    assert sorted(sc.asset for sc in scorers) == sorted(plant.assets)
    live = LiveScoring(scorers)
    store = TimeSeriesStore(settings.timeseries_root)
    # Replay the raw 1 Hz readings of the scored period: the scorers average them into the
    # 10 s buckets the models were trained on (the interval recorded with each model version).
    assert all(sc.bucket_us == 10_000_000 for sc in scorers)
    for asset in plant.assets:
        frame = store.query(org_id, asset, start=plant.normal_end, end=plant.end)
        ts = pd.DatetimeIndex(frame["ts"]).as_unit("us").asi8
        live(make_batch(asset, frame["signal"].to_numpy(), ts, frame["value"].to_numpy(dtype=float)))
    buckets = (plant.end - plant.normal_end).total_seconds() / 10
    for sc in scorers:  # every closed 10 s bucket scored once (the last one stays open)
        assert buckets - 3 <= sc.stats.rows_scored <= buckets, (sc.asset, sc.stats.rows_scored, buckets)
    assert sum(sc.stats.anomalous_rows for sc in scorers) > 0
    assert sink.alerts and all(a.event.explanation for a in sink.alerts.values())
    db.dispose()


def test_demo_rerun_is_idempotent_and_login_works(demo_home: Path) -> None:
    settings = Settings(home=demo_home)
    before = _counts(settings)
    result = demo_cli.run_demo(settings, days=DAYS, seed=SEED)
    assert result.production is not None
    # no duplicates
    assert result.points_stored == simulate_plant(days=DAYS, seed=SEED).n_points + result.production.points
    after = _counts(settings)
    assert after["alerts"] == before["alerts"]  # replaced, not piled up
    assert after["deployed"] == before["deployed"]  # one active deployment per asset

    from axhub.api.main import create_app

    with TestClient(create_app(settings, executor="none", secure_cookies=False)) as client:
        login = client.post(
            "/api/v1/auth/login", json={"email": demo_cli.DEMO_EMAIL, "password": demo_cli.DEMO_PASSWORD}
        )
        assert login.status_code == 200, login.text
        page = client.get("/")
        assert page.status_code == 200 and "/login" not in str(page.url)
        for asset in simulate_plant(days=DAYS, seed=SEED).assets:  # the plant overview lists them all
            assert asset in page.text
        if not HAS_TORCH:
            return  # no inspection without torch (checked in the first test)
        inspection = client.get("/inspection")
        assert inspection.text.count('class="card part ') == 12  # the demo's inspected parts
        heat = inspection.text.split('class="heat" src="')[1].split('"')[0]
        assert client.get(heat).headers["content-type"] == "image/png"  # heatmaps are served
        # one colour scale anchored to the threshold, said beside each verdict
        assert "half the threshold" in inspection.text and inspection.text.count("× threshold") == 12


def test_demo_command_prints_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "160")
    demo_cli.get_settings.cache_clear()
    try:
        out = CliRunner().invoke(cli_app, ["demo", "--days", str(DAYS), "--seed", str(SEED), "--no-serve"])
    finally:
        demo_cli.get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "precision" in out.output and "points stored" in out.output
    assert ("torch is not installed" in out.output) is not HAS_TORCH
    assert (tmp_path / "home" / "demo" / "detections.png").exists()

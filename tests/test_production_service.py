"""OEE from stored data: the simulator's states and counts go through the real time-series store
and metadata DB, and the service's figures equal the simulator's minute-by-minute truth."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pytest

from axhub.core.readings import READINGS_SCHEMA
from axhub.production.service import ProductionService
from axhub.sim.production import ProductionSpec, simulate_production, true_oee
from axhub.store.db import Database
from axhub.store.models import AssetRow, DowntimeReasonRow, ProductionConfigRow, ShiftCalendarRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

SEOUL = ZoneInfo("Asia/Seoul")


def _store_readings(store: TimeSeriesStore, org: str, machine: str, frame: pd.DataFrame) -> None:
    table = pa.table(
        {
            "asset": pa.array([machine] * len(frame), pa.string()),
            "signal": pa.array(frame["signal"].tolist(), pa.string()),
            "ts": pa.array(frame["ts"].dt.tz_convert("UTC"), READINGS_SCHEMA.field("ts").type),
            "value": pa.array(frame["value"].to_numpy(dtype=float), pa.float64()),
            "quality": pa.array([0] * len(frame), pa.uint8()),
        },
        schema=READINGS_SCHEMA,
    )
    store.write(org, table)


@pytest.fixture
def plant(database: Database, tmp_path):
    spec = ProductionSpec(shifts=((6, 14), (14, 22), (22, 6)), ideal_cycle_s=60.0)
    run = simulate_production(["cnc-01", "cnc-02"], "2026-03-02", days=3, seed=11, spec=spec)
    store = TimeSeriesStore(tmp_path / "ts")
    with database.session() as session:
        org = create_org(session, "Hanbit Precision")
        scope = OrgScope(session, org.id)
        site = scope.ensure_site("Changwon", timezone="Asia/Seoul")
        line = scope.add(AssetRow(site_id=site.id, name="Line 1", slug="line-1", kind="line"))
        scope.add(
            ShiftCalendarRow(
                site_id=site.id,
                shifts=[
                    {"name": "A", "start": "06:00", "end": "14:00"},
                    {"name": "B", "start": "14:00", "end": "22:00"},
                    {"name": "C", "start": "22:00", "end": "06:00"},
                ],
            )
        )
        for machine in run.readings:
            asset = scope.ensure_asset(site, machine, slug=machine, kind="cnc")
            asset.parent_id = line.id
            scope.add(
                ProductionConfigRow(
                    asset_id=asset.id,
                    state_source="tag",
                    state_signal="state",
                    good_signal="good_count",
                    scrap_signal="scrap_count",
                    ideal_cycle_s=60.0,
                )
            )
            _store_readings(store, org.id, machine, run.readings[machine])
        session.commit()
        yield session, org.id, store, run, line.id, site.id


def _day(minutes: pd.DataFrame, day: str) -> pd.DataFrame:
    local = minutes["ts"].dt.tz_convert(SEOUL)
    # A shift belongs to the day it starts: the night shift (22-06) of `day` runs into the next morning.
    start = pd.Timestamp(day, tz=SEOUL) + pd.Timedelta(hours=6)
    return minutes[(local >= start) & (local < start + pd.Timedelta(days=1))]


def test_machine_oee_from_the_store_equals_the_simulated_truth(plant) -> None:
    session, org_id, store, run, _, _ = plant
    service = ProductionService(OrgScope(session, org_id), store)
    start = datetime(2026, 3, 3, 6, tzinfo=SEOUL)
    report = service.report("machine", _asset_id(session, org_id, "cnc-01"), start, start + timedelta(days=1))
    truth = true_oee(_day(run.minutes["cnc-01"], "2026-03-03"), 60.0)
    for key in ("availability", "performance", "quality", "oee"):
        assert getattr(report.total, key) == pytest.approx(truth[key], rel=1e-9), key
    assert report.total.micro_stops > 0 and report.total.down_s > 0


def test_line_aggregates_its_machines_and_days_follow_the_local_calendar(plant) -> None:
    session, org_id, store, run, line_id, _ = plant
    service = ProductionService(OrgScope(session, org_id), store)
    start = datetime(2026, 3, 3, 0, tzinfo=SEOUL)
    report = service.report("line", line_id, start, start + timedelta(days=2), by="day")
    assert sorted(report.machines) == ["cnc-01", "cnc-02"]
    # Shifts of 2026-03-02's night (22:00-06:00) that fall after midnight belong to the 2nd.
    assert list(report.by_period["day"]) == ["2026-03-02", "2026-03-03", "2026-03-04"]
    both = pd.concat([_day(run.minutes[m], "2026-03-03") for m in ("cnc-01", "cnc-02")])
    row = report.by_period.set_index("day").loc["2026-03-03"]
    assert row["oee"] == pytest.approx(true_oee(both, 60.0)["oee"], rel=1e-9)


def test_stops_list_and_operator_reasons_feed_the_pareto(plant) -> None:
    session, org_id, store, run, _, _ = plant
    scope = OrgScope(session, org_id)
    service = ProductionService(scope, store)
    asset = scope.asset_by_slug("cnc-01")
    start = datetime(2026, 3, 3, 6, tzinfo=SEOUL)
    stops = service.stops(asset, start, start + timedelta(days=1), min_s=300)
    truth = run.stops[(run.stops["machine"] == "cnc-01")]
    truth = truth[(truth["start"] >= start) & (truth["start"] < start + timedelta(days=1))]
    assert len(stops) >= len(truth) > 0
    first = stops[0]
    scope.add(
        DowntimeReasonRow(asset_id=asset.id, start=first["start"], end=first["end"], reason="tool_change")
    )
    session.flush()
    report = service.report("machine", asset.id, start, start + timedelta(days=1))
    causes = dict(zip(report.losses["cause"], report.losses["seconds"], strict=True))
    assert causes["tool_change"] == pytest.approx(
        min(first["duration_s"], (first["end"] - max(first["start"], start)).total_seconds())
    )
    assert service.stops(asset, start, start + timedelta(days=1), min_s=300)[0]["reason"] == "tool_change"


def _asset_id(session, org_id: str, slug: str) -> str:
    return OrgScope(session, org_id).asset_by_slug(slug).id

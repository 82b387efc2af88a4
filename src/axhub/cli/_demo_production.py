"""The demo's production step: the CNC machines report states and part counts, OEE is set up
on their line, and the figures the hub computes are printed beside the simulator's truth."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from axhub.core.readings import READINGS_SCHEMA
from axhub.core.settings import Settings
from axhub.store.db import Database
from axhub.store.models import AssetRow, SiteRow
from axhub.store.scoped import OrgScope

MACHINES = ("cnc-01", "cnc-02")
SHIFTS = ((6, 14), (14, 22))  # two shifts; nights are planned stops
IDEAL_CYCLE_S = 45.0


@dataclass(frozen=True)
class ProductionSummary:
    days: list[str]
    oee: float | None
    true_oee: float
    availability: float | None
    performance: float | None
    quality: float | None
    top_losses: list[tuple[str, float]]
    points: int  # readings the machines sent (state changes and counts)


def _batch(machine: str, frame: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            "asset": pa.array([machine] * len(frame), pa.string()),
            "signal": pa.array(frame["signal"].tolist(), pa.string()),
            "ts": pa.array(frame["ts"], READINGS_SCHEMA.field("ts").type),
            "value": pa.array(frame["value"].to_numpy(dtype=float), pa.float64()),
            "quality": pa.array([0] * len(frame), pa.uint8()),
        },
        schema=READINGS_SCHEMA,
    )


def run_production(settings: Settings, db: Database, org_id: str, plant: Any, seed: int) -> ProductionSummary:
    from axhub.production.config import configure_machine, set_shifts
    from axhub.production.service import ProductionService
    from axhub.sim.production import ProductionSpec, simulate_production, true_oee
    from axhub.store.timeseries import TimeSeriesStore

    tz = plant.spec.timezone
    first = min(a.frame["ts"].iloc[0] for a in plant.assets.values())
    start = pd.Timestamp(first).tz_convert(tz).floor("D")
    end = pd.Timestamp(plant.end).tz_convert(tz)
    days = max(1, math.ceil((end - start) / pd.Timedelta(days=1)))
    spec = ProductionSpec(shifts=SHIFTS, timezone=tz, ideal_cycle_s=IDEAL_CYCLE_S)
    run = simulate_production(list(MACHINES), start, days, seed=seed, spec=spec)
    store = TimeSeriesStore(settings.timeseries_root)
    points = 0
    for machine, frame in run.readings.items():
        sent = frame[frame["ts"] < end]
        store.write(org_id, _batch(machine, sent))
        points += len(sent)
    with db.session() as session:
        scope = OrgScope(session, org_id)
        first_asset = scope.asset_by_slug(MACHINES[0])
        site = scope.get(SiteRow, first_asset.site_id)
        line = scope.find(AssetRow, slug="line-1") or scope.add(
            AssetRow(site_id=site.id, name="Machining line 1 / 가공 1라인", slug="line-1", kind="line")
        )
        for machine in MACHINES:
            asset = scope.asset_by_slug(machine)
            asset.parent_id = line.id
            scope.ensure_signal(asset, "state", description="machine state code / 설비 상태 코드")
            scope.ensure_signal(asset, "good_count", unit="ea", description="good parts / 양품 수")
            scope.ensure_signal(asset, "scrap_count", unit="ea", description="scrap parts / 불량 수")
            configure_machine(
                scope,
                asset,
                {
                    "state_source": "tag",
                    "state_signal": "state",
                    "good_signal": "good_count",
                    "scrap_signal": "scrap_count",
                    "ideal_cycle_s": IDEAL_CYCLE_S,
                },
            )
        set_shifts(
            scope,
            site,
            [
                {"name": n, "start": f"{s:02d}:00", "end": f"{e:02d}:00"}
                for n, (s, e) in zip("AB", SHIFTS, strict=True)
            ],
        )
        session.commit()
        # Whole production days only (a shift belongs to the day it starts).
        lo = start.to_pydatetime()
        hi = (end.floor("D") if end.floor("D") > start else end.floor("min")).to_pydatetime()
        report = ProductionService(scope, store).report("line", line.id, lo, hi, by="day")
    minutes = pd.concat(
        [m[(m["ts"] >= pd.Timestamp(lo)) & (m["ts"] < pd.Timestamp(hi))] for m in run.minutes.values()]
    )
    truth = true_oee(minutes, IDEAL_CYCLE_S)["oee"]
    t = report.total
    return ProductionSummary(
        days=[str(d) for d in report.by_period.get("day", [])],
        oee=t.oee,
        true_oee=truth,
        availability=t.availability,
        performance=t.performance,
        quality=t.quality,
        points=points,
        top_losses=[
            (str(c), float(s)) for c, s in zip(report.losses["cause"], report.losses["seconds"], strict=True)
        ][:3],
    )

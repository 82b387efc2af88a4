"""``axhub demo``: a whole plant simulated, stored, learned, scored and explained.

The demo goes through the same paths a real factory uses: the simulator writes the CSV
exports a plant would, ``axhub.ingest.files`` ingests them into the time-series store, the
anomaly model is trained on what the store returns for the normal period, and alerts with
their explanations land in the metadata database.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from axhub.cli._context import console, friendly_errors, open_database
from axhub.cli._demo_inspection import InspectionSummary, run_inspection
from axhub.cli._demo_production import ProductionSummary, run_production
from axhub.cli._demo_report import Detection, episodes, figures, plot_detections, top_contributors
from axhub.core.settings import Settings, get_settings
from axhub.store.db import Database
from axhub.store.models import AlertRow, AssetRow, DeploymentRow
from axhub.store.platform import ensure_org
from axhub.store.scoped import OrgScope

DEMO_ORG_NAME = "Hanbit Precision (demo)"
SCORE_INTERVAL = "10s"
# The demo company's engineer, for logging in to the dashboard the demo serves.
DEMO_EMAIL = "engineer@hanbit.example"
DEMO_PASSWORD = "axhub-demo"


@dataclass
class DemoResult:
    org_id: str
    org_slug: str
    points_stored: int
    bytes_on_disk: int
    ingest_points_per_s: float
    detections: list[Detection] = field(default_factory=list)
    alerts_created: int = 0
    models_registered: int = 0
    inspection: InspectionSummary | None = None
    production: ProductionSummary | None = None
    plot: Path | None = None
    seconds: float = 0.0


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _create_plant_metadata(db: Database, org_slug: str, plant: Any) -> str:
    """Company, site, assets and signals (with Korean and English descriptions)."""
    meta = plant.metadata()
    with db.session() as session:
        org = ensure_org(session, DEMO_ORG_NAME, org_slug)
        scope = OrgScope(session, org.id)
        site = scope.ensure_site(f"{meta['site']} / {meta['site_ko']}", timezone=meta["timezone"])
        for asset in meta["assets"]:
            row = scope.ensure_asset(
                site,
                f"{asset['name']} / {asset['name_ko']}",
                slug=asset["id"],
                kind=asset["kind"],
                description=asset.get("model", ""),
            )
            for sig in asset["signals"]:
                scope.ensure_signal(
                    row,
                    sig["name"],
                    unit=sig["unit"],
                    description=f"{sig['description_en']} / {sig['description_ko']}",
                )
        return org.id


def _ingest_exports(settings: Settings, org_id: str, files_dir: Path, plant: Any) -> tuple[int, float]:
    """Ingest every asset's CSV export exactly as a user would with ``axhub ingest``."""
    from axhub.ingest.file_mapping import FileMapping
    from axhub.ingest.files import ingest_file
    from axhub.store.timeseries import TimeSeriesStore

    store = TimeSeriesStore(settings.timeseries_root)
    points, seconds = 0, 0.0
    for asset_id in plant.assets:
        mapping = FileMapping(asset=asset_id, time_column="ts", timezone=plant.spec.timezone)
        report = ingest_file(files_dir / f"{asset_id}.csv", store=store, org=org_id, mapping=mapping)
        # Written + duplicates: a re-run re-reads everything but stores nothing twice.
        points += report.points_written + report.duplicates
        seconds += report.elapsed_s
    store.compact(org_id)  # many small appends -> few files, as the scheduled compaction would
    return points, points / seconds if seconds else float("nan")


def _score_assets(
    settings: Settings, org_id: str, plant: Any, bundles_dir: Path
) -> list[tuple[Detection, Path]]:
    """Train on the normal period as returned by the store, score the rest, save each model."""
    from axhub.ml.anomaly import best_default
    from axhub.store.timeseries import TimeSeriesStore

    store = TimeSeriesStore(settings.timeseries_root)
    detections: list[tuple[Detection, Path]] = []
    for asset_id, data in plant.assets.items():
        # The machine's sensors only: the same asset also reports states and part counts (OEE).
        wide = store.query_wide(
            org_id,
            asset_id,
            data.spec.signal_names,
            start=plant.start,
            end=plant.end + pd.Timedelta(seconds=1),
            interval=SCORE_INTERVAL,
        )
        wide = wide.set_index("ts").sort_index().dropna()
        train = wide[wide.index < plant.normal_end]
        test = wide[wide.index >= plant.normal_end]
        model = best_default().fit(train)
        score = np.asarray(model.score(test), dtype=float)
        alarm = np.asarray(model.predict(test), dtype=bool)
        gt = plant.ground_truth
        detection = Detection(
            asset=asset_id,
            name=data.spec.name,
            index=pd.DatetimeIndex(test.index),
            frame=test,
            score=score,
            threshold=float(model.threshold_),
            alarm=alarm,
            truth=plant.is_anomaly(asset_id, test.index),
            truth_intervals=gt[gt["asset"] == asset_id].reset_index(drop=True),
            contributions=model.explain(test),
            normal_mean=train.mean(),
            normal_std=train.std(),
        )
        fig = figures(detection)
        metrics = {"precision": fig.precision, "recall": fig.recall, "threshold": detection.threshold}
        bundle = model.save(bundles_dir / asset_id, metrics=metrics)
        detections.append((detection, bundle))
    return detections


def _register_models(db: Database, settings: Settings, org_id: str, bundles: dict[str, Path]) -> int:
    """Each asset's model into the registry, promoted to production and deployed on its asset."""
    from axhub.registry.store import ModelRegistry
    from axhub.store.blobs import BlobStore

    with db.session() as session:
        scope = OrgScope(session, org_id)
        registry = ModelRegistry(scope, BlobStore(settings.blob_root))
        asset_ids = {a.slug: a.id for a in scope.list(AssetRow)}
        for asset, bundle in bundles.items():
            # The interval tells live scoring to average readings the way training did.
            version = registry.register(
                bundle, name=f"{asset}-anomaly", extra_params={"interval": SCORE_INTERVAL, "agg": "mean"}
            )
            registry.set_stage(version.id, "production")
            for old in scope.list(DeploymentRow, asset_id=asset_ids[asset], active=True):
                old.active = False
            scope.add(DeploymentRow(model_version_id=version.id, asset_id=asset_ids[asset], target="hub"))
    return len(bundles)


def _ensure_demo_user(db: Database, org_slug: str) -> None:
    from axhub.api.bootstrap import create_user
    from axhub.store.accounts_repo import users_by_email

    with db.session() as session:
        exists = bool(users_by_email(session, DEMO_EMAIL, org_slug))
    if not exists:
        create_user(db, org_slug, DEMO_EMAIL, DEMO_PASSWORD, "admin", org_name=DEMO_ORG_NAME)


def _store_alerts(db: Database, org_id: str, detections: list[Detection]) -> int:
    """One alert per alarm episode, explained by its top contributing signals.

    A re-run replaces the demo's model alerts instead of piling up copies of them."""
    created = 0
    with db.session() as session:
        scope = OrgScope(session, org_id)
        for old in scope.list(AlertRow, kind="model", source="anomaly model"):
            scope.delete(old)
        asset_ids = {a.slug: a.id for a in scope.list(AssetRow)}
        for det in detections:
            for first, last in episodes(det.alarm):
                rows = slice(first, last + 1)
                top = [
                    (name, value, det.how_far_off(name, rows))
                    for name, value in top_contributors(det.contributions, rows)
                ]
                peak = float(det.score[rows].max())
                # Same wording as the live scorer's alerts: which signal, how far off.
                names = ", ".join(f"{name} (z {z:+.1f})" for name, _, z in top)
                scope.add(
                    AlertRow(
                        asset_id=asset_ids.get(det.asset, det.asset),
                        ts=det.index[first].to_pydatetime(),
                        severity="critical" if peak > 3 * det.threshold else "warning",
                        kind="model",
                        source="anomaly model",
                        title=f"Unusual behaviour on {det.name}: {names} / 이상 징후: {names}",
                        score=peak,
                        threshold=det.threshold,
                        explanation=[
                            {"signal": name, "contribution": round(value, 4), "z": round(z, 2)}
                            for name, value, z in top
                        ],
                        dedup_key=f"{det.asset}:model",
                        last_seen_at=det.index[last].to_pydatetime(),
                    )
                )
                created += 1
    return created


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def run_demo(settings: Settings, *, days: float = 2.0, seed: int = 7) -> DemoResult:
    """Run the whole demo; returns its figures (the CLI prints them, tests check them)."""
    from axhub.sim import simulate_plant
    from axhub.sim.files import write_plant
    from axhub.store.timeseries import TimeSeriesStore

    started = time.perf_counter()
    db = open_database(settings)
    org_slug = settings.default_org
    with _progress() as progress:
        task = progress.add_task("Simulating the plant / 공장 시뮬레이션", total=6)
        plant = simulate_plant(days=days, seed=seed)
        progress.advance(task)
        files_dir = settings.home / "demo" / "plant-exports"
        write_plant(plant, files_dir, fleet_units=(20, 10))
        progress.update(task, description="Registering company, site, assets / 메타데이터 등록")
        progress.advance(task)
        org_id = _create_plant_metadata(db, org_slug, plant)
        progress.update(task, description="Ingesting CSV exports / CSV 적재")
        _written, rate = _ingest_exports(settings, org_id, files_dir, plant)
        progress.advance(task)
        progress.update(task, description="Training and scoring / 학습 및 점수화")
        scored = _score_assets(settings, org_id, plant, settings.home / "demo" / "models")
        detections = [d for d, _ in scored]
        alerts = _store_alerts(db, org_id, detections)
        models = _register_models(db, settings, org_id, {d.asset: b for d, b in scored})
        _ensure_demo_user(db, org_slug)
        progress.advance(task)
        progress.update(task, description="Inspecting part images / 부품 영상 검사")
        # The vision model trains with torch, which some installs lack (no wheel for Python 3.12
        # here): the rest of the demo runs, and the summary says the inspection was left out.
        inspection = run_inspection(settings, db, org_id, seed=seed) if _has_torch() else None
        progress.advance(task)
        progress.update(task, description="Production performance (OEE) / 설비종합효율")
        production = run_production(settings, db, org_id, plant, seed=seed)
        progress.advance(task)
    store = TimeSeriesStore(settings.timeseries_root)
    plot = plot_detections(
        detections,
        settings.home / "demo" / "detections.png",
        f"AX Hub demo: anomaly scores vs injected faults ({days:g} days, seed {seed})",
    )
    return DemoResult(
        org_id=org_id,
        org_slug=org_slug,
        points_stored=store.count(org_id),
        bytes_on_disk=store.stats(org_id).bytes,
        ingest_points_per_s=rate,
        detections=detections,
        alerts_created=alerts,
        models_registered=models,
        inspection=inspection,
        production=production,
        plot=plot,
        seconds=time.perf_counter() - started,
    )


def _print_summary(result: DemoResult) -> None:
    table = Table(title="What the demo found / 탐지 결과 (after the normal training period)")
    for col in (
        "asset / 설비",
        "faults / 고장",
        "caught / 탐지",
        "alarms / 알람",
        "true alarms / 정탐",
        "precision",
        "recall",
    ):
        table.add_column(col, justify="right" if col != "asset / 설비" else "left")
    total = [0, 0, 0, 0]
    for det in result.detections:
        fig = figures(det)
        total = [
            total[0] + fig.faults,
            total[1] + fig.faults_caught,
            total[2] + fig.alarm_episodes,
            total[3] + fig.alarm_episodes_true,
        ]
        table.add_row(
            det.name,
            str(fig.faults),
            str(fig.faults_caught),
            str(fig.alarm_episodes),
            str(fig.alarm_episodes_true),
            f"{fig.precision:.2f}",
            f"{fig.recall:.2f}",
        )
    table.add_row("all", *[str(v) for v in total], "", "", style="bold")
    console.print(table)
    console.print(
        f"points stored / 저장 포인트: [bold]{result.points_stored:,}[/] "
        f"({result.bytes_on_disk / max(result.points_stored, 1):.2f} bytes/point), "
        f"ingest {result.ingest_points_per_s:,.0f} points/s; alerts stored: {result.alerts_created}; "
        f"models registered and deployed: {result.models_registered}"
    )
    console.print(
        "precision/recall are per 10-second step; 'caught' counts faults with at least one alarm "
        "inside them; 'true alarms' are alarm episodes overlapping a fault."
    )
    if result.inspection is not None:
        ins = result.inspection
        console.print(
            f"visual inspection / 외관 검사 ({ins.model_name}, trained on good parts only): "
            f"{ins.parts} parts, {ins.defects_true} defective; flagged {ins.defects_flagged} "
            f"({ins.defects_caught} true defects, {ins.false_alarms} false alarms)"
        )
    else:
        console.print(
            "visual inspection / 외관 검사: skipped, torch is not installed (the 'vision' extra) / "
            "torch가 설치되지 않아 생략"
        )
    if result.production is not None and result.production.oee is not None:
        prod = result.production
        losses = ", ".join(f"{cause} {seconds / 3600:.1f} h" for cause, seconds in prod.top_losses)
        console.print(
            f"OEE / 설비종합효율 (line-1, {len(prod.days)} days): [bold]{prod.oee:.1%}[/] "
            f"(simulator truth {prod.true_oee:.1%}); availability {prod.availability:.1%}, "
            f"performance {prod.performance:.1%}, quality {prod.quality:.1%}; largest losses: {losses}"
        )
    console.print(f"plot / 그래프: [bold]{result.plot}[/]   ({result.seconds:.0f} s)")


def _serve_dashboard(settings: Settings, host: str, port: int) -> None:
    """Serve the API and dashboard in this process until Ctrl+C."""
    import uvicorn

    from axhub.api.main import create_app

    url = f"http://{host}:{port}/"
    console.rule("Dashboard / 대시보드")
    console.print(f"open [bold]{url}[/] and log in as [bold]{DEMO_EMAIL}[/] / [bold]{DEMO_PASSWORD}[/]")
    console.print(f"API docs: {url}docs   (Ctrl+C stops the server / 종료: Ctrl+C)")
    # Plain http on the local machine: session cookies must not require https here.
    app = create_app(settings, secure_cookies=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@friendly_errors
def demo(
    days: float = typer.Option(
        2.0, min=0.5, max=30, help="Days of plant data to simulate. / 시뮬레이션 일수."
    ),
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same plant."),
    serve: bool = typer.Option(
        True, help="Serve the dashboard when done (--no-serve just prints the results). / 대시보드 실행."
    ),
    host: str = typer.Option("127.0.0.1", help="Address for the dashboard."),
    port: int = typer.Option(8000, help="Port for the dashboard."),
) -> None:
    """Simulate a plant, learn what normal looks like, flag what is not, serve the dashboard.

    / 데모: 공장 데이터 생성·저장·학습·이상 탐지 후 대시보드 실행."""
    settings = get_settings()
    result = run_demo(settings, days=days, seed=seed)
    _print_summary(result)
    if serve:
        _serve_dashboard(settings, host, port)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

"""``axhub machines|datasets|train|backtest|deploy|score``: from a machine's own data to a
deployed model, on this computer (the embedded hub). Times are read and shown in the
machine's site zone. The work is ``jobs.learning`` and ``serve`` (shared with the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from axhub.cli._context import console, friendly_errors, open_database
from axhub.cli._lang import current_lang, lang_option, t
from axhub.cli._where import asset_and_zone, org_scope_id, parse_local, show_local

TEXTS = {
    "machine.added": (
        "machine {name} ('{slug}') on site {site} ({zone})",
        "설비 {name}('{slug}') 등록, 현장 {site}({zone})",
    ),
    "train.done": (
        "model version {id} ({name} v{version}) trained on {rows} rows",
        "모델 버전 {id}({name} v{version}) 학습 완료, {rows}행",
    ),
    "train.normal": ("normal ranges learned", "학습한 정상 범위"),
    "train.failed": ("the job failed: {error}", "작업 실패: {error}"),
    "backtest.title": (
        "Alerts that would have fired — {model} on {asset}",
        "발생했을 알람 — {asset}, {model}",
    ),
    "backtest.summary": (
        "{rows} rows scored, threshold {threshold:.3g}, {n} alert(s); events marked: {events}",
        "{rows}행 점검, 임계값 {threshold:.3g}, 알람 {n}건; 기록된 이벤트: {events}",
    ),
    "deploy.done": ("deployed {model} on {asset} (replaced {n})", "{asset}에 {model} 배포(기존 {n}건 대체)"),
    "score.none": (
        "no model is deployed on {asset}: run 'axhub deploy' first",
        "{asset}에 배포된 모델이 없습니다: 먼저 'axhub deploy'",
    ),
    "score.done": ("{n} alert(s) stored", "알람 {n}건 저장"),
    "col.start": ("start ({zone})", "시작({zone})"),
    "col.end": ("end", "끝"),
    "col.signals": ("signals (reading vs normal)", "신호(측정값 대 정상)"),
    "col.name": ("name", "이름"),
    "col.version": ("version", "버전"),
    "col.source": ("source", "출처"),
    "col.rows": ("rows", "행"),
    "col.created": ("created", "생성"),
    "dataset.made": ("dataset {name} v{version} ({id})", "데이터셋 {name} v{version}({id})"),
}


def _t(key: str, **params: Any) -> str:
    en, ko = TEXTS[key]
    return (ko if current_lang() == "ko" else en).format(**params)


def signals_text(explanation: list[dict[str, Any]], lang: str) -> str:
    from axhub.serve.explain import describe

    parts = []
    for e in explanation[:3]:
        if e.get("value") is None:
            parts.append(str(e.get("signal")))
        else:
            parts.append(f"{e.get('signal')}: {describe(e, lang)}")
    return "; ".join(parts)


def register(app: typer.Typer) -> None:
    machines = typer.Typer(help="Sites and machines of your company. / 현장과 설비.", no_args_is_help=True)
    app.add_typer(machines, name="machines")

    @machines.command("add")
    @friendly_errors
    def machines_add(
        name: str = typer.Argument(..., help="The machine's name (Korean is fine). / 설비 이름."),
        slug: str | None = typer.Option(None, "--slug", help="Stable id: letters, digits, '-', '_'."),
        site: str = typer.Option("Default site", "--site", help="Site name (created when new). / 현장."),
        tz: str | None = typer.Option(None, "--tz", help="Site time zone (default: the company's)."),
        kind: str = typer.Option("other", "--kind", help="cnc, pump, press, compressor, other..."),
        org: str | None = typer.Option(None, "--org"),
        lang: str | None = lang_option(),
    ) -> None:
        """Register a machine (and its site). / 설비 등록."""
        from axhub.core.timeutil import parse_timezone
        from axhub.store.scoped import OrgScope

        db = open_database()
        org_id = org_scope_id(db, org)
        with db.session() as session:
            scope = OrgScope(session, org_id)
            if tz:
                parse_timezone(tz)
            site_row = scope.ensure_site(site, tz)
            row = scope.ensure_asset(site_row, name, slug=slug, kind=kind)
            console.print(
                _t("machine.added", name=row.name, slug=row.slug, site=site_row.name, zone=site_row.timezone)
            )
        del lang

    @machines.command("list")
    @friendly_errors
    def machines_list(
        org: str | None = typer.Option(None, "--org"), lang: str | None = lang_option()
    ) -> None:
        """Machines of your company. / 설비 목록."""
        from rich.table import Table

        from axhub.store.models import AssetRow, SiteRow
        from axhub.store.scoped import OrgScope

        db = open_database()
        with db.session() as session:
            scope = OrgScope(session, org_scope_id(db, org))
            sites = {s.id: s for s in scope.list(SiteRow)}
            table = Table("id", "slug", _t("col.name"), "site", "zone")
            for a in scope.list(AssetRow, order_by=AssetRow.slug):
                site = sites.get(a.site_id)
                table.add_row(a.id, a.slug, a.name, site.name if site else "", site.timezone if site else "")
        console.print(table)
        del lang

    datasets = typer.Typer(help="Datasets to train on. / 학습 데이터셋.", no_args_is_help=True)
    app.add_typer(datasets, name="datasets")

    @datasets.command("list")
    @friendly_errors
    def datasets_list(
        org: str | None = typer.Option(None, "--org"), lang: str | None = lang_option()
    ) -> None:
        """Datasets of your company, newest first. / 데이터셋 목록."""
        from rich.table import Table

        from axhub.store.models import DatasetRow
        from axhub.store.scoped import OrgScope

        db = open_database()
        with db.session() as session:
            scope = OrgScope(session, org_scope_id(db, org))
            zone = scope.org_timezone()
            table = Table("id", _t("col.name"), _t("col.version"), _t("col.source"), _t("col.created"))
            for d in scope.list(DatasetRow, order_by=DatasetRow.created_at.desc(), limit=100):
                source = d.spec.get("source", "")
                if source == "readings":
                    source = (
                        f"{d.spec.get('asset')} {d.spec.get('start', '')[:16]} – {d.spec.get('end', '')[:16]}"
                    )
                table.add_row(d.id, d.name, str(d.version), str(source), show_local(d.created_at, zone))
        console.print(table)
        del lang

    @datasets.command("create")
    @friendly_errors
    def datasets_create(
        asset: str = typer.Option(..., "--asset", help="Machine (id or slug). / 설비."),
        start: str = typer.Option(..., "--start", help="From, in the site's time (e.g. 2026-03-02 08:00)."),
        end: str = typer.Option(..., "--end", help="Until (exclusive), in the site's time."),
        signals: str | None = typer.Option(None, "--signals", help="Comma-separated (default: all)."),
        interval: str = typer.Option(
            "10s", "--interval", help="Average readings into buckets, e.g. 10s, 1min."
        ),
        name: str | None = typer.Option(None, "--name"),
        org: str | None = typer.Option(None, "--org"),
        lang: str | None = lang_option(),
    ) -> None:
        """A dataset from a time window of a machine's readings. / 기간으로 데이터셋 만들기."""
        from axhub.core.settings import get_settings
        from axhub.jobs.learning import window_dataset
        from axhub.store.models import AssetRow
        from axhub.store.scoped import OrgScope

        settings = get_settings()
        db = open_database(settings)
        org_id = org_scope_id(db, org, settings)
        asset_id, _slug, zone = asset_and_zone(db, org_id, asset)
        with db.session() as session:
            scope = OrgScope(session, org_id)
            row = window_dataset(
                settings,
                scope,
                scope.get(AssetRow, asset_id),
                parse_local(start, zone),  # type: ignore[arg-type]
                parse_local(end, zone),  # type: ignore[arg-type]
                signals=[s.strip() for s in signals.split(",")] if signals else None,
                interval=interval,
                name=name,
            )
            console.print(_t("dataset.made", name=row.name, version=row.version, id=row.id))
        del lang

    @app.command("train")
    @friendly_errors
    def train(
        asset: str = typer.Option(..., "--asset", help="Machine (id or slug). / 설비."),
        start: str = typer.Option(..., "--start", help="Start of a NORMAL period, in the site's time."),
        end: str = typer.Option(..., "--end", help="End of the normal period (exclusive)."),
        signals: str | None = typer.Option(None, "--signals", help="Comma-separated (default: all)."),
        interval: str = typer.Option("10s", "--interval", help="Bucket length, e.g. 10s, 60s."),
        estimator: str = typer.Option("anomaly/mspc", "--estimator", help="'<family>/<name>'."),
        name: str | None = typer.Option(None, "--name", help="Model name (default '<machine>-anomaly')."),
        org: str | None = typer.Option(None, "--org"),
        lang: str | None = lang_option(),
    ) -> None:
        """Learn what normal looks like from a period you know was normal. / 정상 기간으로 학습."""
        from axhub.core.settings import get_settings
        from axhub.jobs.learning import run_here, submit_training
        from axhub.jobs.queue import JobQueue
        from axhub.store.models import AssetRow, ModelVersionRow
        from axhub.store.scoped import OrgScope

        settings = get_settings()
        db = open_database(settings)
        org_id = org_scope_id(db, org, settings)
        asset_id, _slug, zone = asset_and_zone(db, org_id, asset)
        with db.session() as session:
            scope = OrgScope(session, org_id)
            job, _dataset = submit_training(
                settings,
                JobQueue(db),
                scope,
                scope.get(AssetRow, asset_id),
                parse_local(start, zone),  # type: ignore[arg-type]
                parse_local(end, zone),  # type: ignore[arg-type]
                signals=[s.strip() for s in signals.split(",")] if signals else None,
                interval=interval,
                estimator=estimator,
                model_name=name,
                actor="cli",
            )
            job_id = job.id
        with console.status("training…"):
            done = run_here(db, settings, job_id)
        if done.state != "succeeded":
            console.print(f"[bold red]{_t('train.failed', error=done.error)}[/]")
            raise typer.Exit(1)
        with db.session() as session:
            version = OrgScope(session, org_id).get(ModelVersionRow, done.result["model_version_id"])
            console.print(
                _t(
                    "train.done",
                    id=version.id,
                    name=version.name,
                    version=version.version,
                    rows=done.result["rows_train"],
                )
            )
            states = version.params.get("normal_states") or []
            columns = version.params.get("signals") or []
            console.print(_t("train.normal") + ":")
            for k, state in enumerate(states):
                ranges = ", ".join(
                    f"{c} {m:.3g} ± {s:.2g}"
                    for c, m, s in zip(columns, state["mean"], state["std"], strict=False)
                )
                console.print(f"  [{k}] {ranges}")
        del lang

    @app.command("backtest")
    @friendly_errors
    def backtest(
        asset: str = typer.Option(..., "--asset", help="Machine (id or slug). / 설비."),
        model: str = typer.Option(..., "--model", help="Model version id. / 모델 버전."),
        start: str | None = typer.Option(None, "--start", help="From (site time; default: first reading)."),
        end: str | None = typer.Option(None, "--end", help="Until (site time; default: last reading)."),
        store_alerts: bool = typer.Option(False, "--store-alerts", help="Backfill: store the alerts."),
        org: str | None = typer.Option(None, "--org"),
        lang: str | None = lang_option(),
    ) -> None:
        """Score a past period through a model: the alerts that would have fired, beside the events
        people marked. / 과거 기간 점검(백테스트)."""
        from rich.table import Table

        from axhub.core.settings import get_settings
        from axhub.jobs.learning import run_here, submit_backtest
        from axhub.jobs.queue import JobQueue
        from axhub.store.models import AssetRow
        from axhub.store.scoped import OrgScope

        settings = get_settings()
        db = open_database(settings)
        org_id = org_scope_id(db, org, settings)
        asset_id, slug, zone = asset_and_zone(db, org_id, asset)
        with db.session() as session:
            scope = OrgScope(session, org_id)
            job = submit_backtest(
                settings,
                JobQueue(db),
                scope,
                scope.get(AssetRow, asset_id),
                model,
                parse_local(start, zone),
                parse_local(end, zone),
                store_alerts=store_alerts,
                actor="cli",
            )
            job_id = job.id
        with console.status("backtest…"):
            done = run_here(db, settings, job_id)
        if done.state != "succeeded":
            console.print(f"[bold red]{_t('train.failed', error=done.error)}[/]")
            raise typer.Exit(1)
        result = done.result
        from datetime import datetime

        table = Table(
            _t("col.start", zone=zone),
            _t("col.end"),
            t("col.severity"),
            _t("col.signals"),
            title=_t("backtest.title", model=result["model"], asset=slug),
        )
        for a in result["alerts"]:
            table.add_row(
                show_local(datetime.fromisoformat(a["start"]), zone),
                show_local(datetime.fromisoformat(a["end"]), zone),
                t(f"severity.{a['severity']}"),
                signals_text(a["explanation"], current_lang()),
            )
        console.print(table)
        marked = ", ".join(
            f"{show_local(datetime.fromisoformat(e['start']), zone)} {e['title']}" for e in result["events"]
        )
        console.print(
            _t(
                "backtest.summary",
                rows=result["rows_scored"],
                threshold=result["threshold"],
                n=len(result["alerts"]),
                events=marked or "-",
            )
        )
        del lang

    @app.command("deploy")
    @friendly_errors
    def deploy_cmd(
        model: str = typer.Argument(..., help="Model version id. / 모델 버전."),
        asset: str = typer.Option(..., "--asset", help="Machine (id or slug). / 설비."),
        allow_below_baseline: bool = typer.Option(
            False, "--allow-below-baseline", help="Deploy even if it did not beat its trivial baseline."
        ),
        org: str | None = typer.Option(None, "--org"),
        lang: str | None = lang_option(),
    ) -> None:
        """Deploy a model version on a machine: new data on it is scored. / 모델 배포."""
        from axhub.core.settings import get_settings
        from axhub.jobs.learning import deploy
        from axhub.store.blobs import BlobStore
        from axhub.store.models import AssetRow, ModelVersionRow
        from axhub.store.scoped import OrgScope

        settings = get_settings()
        db = open_database(settings)
        org_id = org_scope_id(db, org, settings)
        asset_id, slug, _zone = asset_and_zone(db, org_id, asset)
        with db.session() as session:
            scope = OrgScope(session, org_id)
            _row, replaced = deploy(
                scope,
                BlobStore(settings.blob_root),
                model,
                scope.get(AssetRow, asset_id),
                allow_below_baseline=allow_below_baseline,
            )
            version = scope.get(ModelVersionRow, model)
            console.print(
                _t("deploy.done", model=f"{version.name} v{version.version}", asset=slug, n=len(replaced))
            )
        del lang

    @app.command("score")
    @friendly_errors
    def score(
        file: Path | None = typer.Argument(None, help="A file to store and score (else --start/--end)."),
        asset: str = typer.Option(..., "--asset", help="Machine (id or slug). / 설비."),
        start: str | None = typer.Option(None, "--start", help="A stored period: from (site time)."),
        end: str | None = typer.Option(None, "--end", help="A stored period: until (site time)."),
        org: str | None = typer.Option(None, "--org"),
        lang: str | None = lang_option(),
    ) -> None:
        """Score a file, or a stored period, with the machine's deployed models; alerts are
        stored. / 배포 모델로 파일 또는 기간 점검."""
        from rich.table import Table

        from axhub.core.settings import get_settings
        from axhub.serve.batch import score_period, store_episodes
        from axhub.serve.deployed import active_deployments
        from axhub.serve.files import ingest_onto_asset
        from axhub.store.models import AlertRow
        from axhub.store.scoped import OrgScope

        settings = get_settings()
        db = open_database(settings)
        org_id = org_scope_id(db, org, settings)
        asset_id, slug, zone = asset_and_zone(db, org_id, asset)
        deployed = active_deployments(db, settings, org_id, {slug})
        if not deployed:
            console.print(f"[yellow]{_t('score.none', asset=slug)}[/]")
            raise typer.Exit(1)
        if file is not None:
            ids = ingest_onto_asset(
                db,
                settings,
                org_id,
                file,
                asset=asset_id,
                label=str(file),
                actor="cli",
                progress=True,
                console=console,
            ).alerts
        else:
            begin, finish = parse_local(start, zone), parse_local(end, zone)
            if begin is None or finish is None:
                raise typer.BadParameter("give a FILE, or --start and --end")
            ids = []
            for dep in deployed:
                ids += store_episodes(db, org_id, score_period(settings, org_id, dep, begin, finish))
        table = Table("id", t("col.time", zone=zone), t("col.severity"), _t("col.signals"))
        with db.session() as session:
            scope = OrgScope(session, org_id)
            for alert_id in ids:
                a = scope.get(AlertRow, alert_id)
                table.add_row(
                    a.id,
                    show_local(a.ts, zone),
                    t(f"severity.{a.severity}"),
                    signals_text(a.explanation, current_lang()),
                )
        console.print(table)
        console.print(_t("score.done", n=len(ids)))
        del lang

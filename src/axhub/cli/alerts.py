"""``axhub alerts list|show|ack|resolve|note``: alerts raised by deployed models and rules, in the
machines' local time and one language (``--lang``)."""

from __future__ import annotations

from typing import Any

import typer

from axhub.cli._context import console, friendly_errors, open_database
from axhub.cli._lang import current_lang, lang_option, t
from axhub.store.db import Database


def _why(explanation: list[dict[str, Any]]) -> str:
    from axhub.cli.learn import signals_text

    items = [e for e in explanation or [] if isinstance(e, dict)]
    if any("value" in e for e in items):
        return signals_text(items, current_lang())
    return "; ".join(f"{e.get('signal')}: {float(e.get('times_limit') or 0):.2f}x" for e in items[:3])


def register(app: typer.Typer) -> None:
    alerts_app = typer.Typer(
        help="Alerts from deployed models and rules: list, show, acknowledge, resolve. / 알람.",
        no_args_is_help=True,
    )

    def _org_id(org: str | None) -> tuple[Database, str]:
        from axhub.cli._where import org_scope_id

        db = open_database()
        return db, org_scope_id(db, org)

    @alerts_app.command("list")
    @friendly_errors
    def list_cmd(
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        open_only: bool = typer.Option(False, "--open", help="Only alerts nobody has acknowledged yet."),
        limit: int = typer.Option(50, help="How many (newest first)."),
        lang: str | None = lang_option(),
    ) -> None:
        """Newest alerts, in each machine's local time, with the signals behind them."""
        from rich.table import Table

        from axhub.cli._where import show_local
        from axhub.serve.alerts import list_alerts
        from axhub.store.models import AssetRow
        from axhub.store.scoped import OrgScope

        db, org_id = _org_id(org)
        rows = list_alerts(db, org_id, open_only=open_only, limit=limit)
        with db.session() as session:
            scope = OrgScope(session, org_id)
            assets = {a.id: (a.slug, scope.timezone_for_asset(a)) for a in scope.list(AssetRow)}
            zone_default = scope.org_timezone()
        zones = {z for _s, z in assets.values()} or {zone_default}
        zone_label = next(iter(zones)) if len(zones) == 1 else "local"
        table = Table(title=t("alerts.title"))
        for key in ("col.id", "col.time", "col.asset", "col.severity", "col.why", "col.count", "col.state"):
            table.add_column(t(key, zone=zone_label))
        for r in rows:
            slug, zone = assets.get(r.asset_id, (r.asset_id, zone_default))
            state = "resolved" if r.resolved_at else "ack" if r.acknowledged_at else ""
            if current_lang() == "ko":
                state = {"resolved": "해결", "ack": "확인", "": ""}[state]
            table.add_row(
                r.id,
                show_local(r.ts, zone),
                slug,
                t(f"severity.{r.severity}"),
                _why(r.explanation),
                str(r.count),
                state,
            )
        console.print(table)
        del lang

    @alerts_app.command("show")
    @friendly_errors
    def show_cmd(
        alert_id: str = typer.Argument(..., help="The alert id shown by 'axhub alerts list'."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        lang: str | None = lang_option(),
    ) -> None:
        """One alert: when (local time), how severe, each signal as reading vs normal range, notes."""
        from axhub.cli._where import show_local
        from axhub.serve.explain import describe
        from axhub.store.models import AlertNoteRow, AlertRow, AssetRow
        from axhub.store.scoped import OrgScope

        db, org_id = _org_id(org)
        lang_now = current_lang()
        with db.session() as session:
            scope = OrgScope(session, org_id)
            a = scope.get(AlertRow, alert_id)
            asset = scope.find(AssetRow, id=a.asset_id)
            zone = scope.timezone_for_asset(asset) if asset else scope.org_timezone()
            name = asset.name if asset else a.asset_id
            ko = lang_now == "ko"
            console.print(f"[bold]{a.id}[/] {name} — {t(f'severity.{a.severity}')}")
            span = f"{show_local(a.ts, zone)} – {show_local(a.last_seen_at, zone)} ({zone})"
            console.print(f"{'시각' if ko else 'time'}: {span}")
            if a.score is not None and a.threshold:
                console.print(f"{'점수' if ko else 'score'}: {a.score:.3g} ({a.score / a.threshold:.1f}x)")
            for e in a.explanation or []:
                if e.get("value") is not None:
                    z = f" (z {e['z']:+.1f})" if "z" in e else ""
                    console.print(f"  • {e.get('signal')}: {describe(e, lang_now)}{z}")
            for note in scope.list(AlertNoteRow, alert_id=a.id, order_by=AlertNoteRow.created_at):
                console.print(f"  ✎ {show_local(note.created_at, zone)} {note.author}: {note.text}")
            if a.acknowledged_at:
                when = show_local(a.acknowledged_at, zone)
                console.print(f"{'확인' if ko else 'acknowledged'}: {a.acknowledged_by} {when}")
            if a.resolved_at:
                console.print(
                    f"{'해결' if ko else 'resolved'}: {a.resolved_by} {show_local(a.resolved_at, zone)}"
                )
        del lang

    @alerts_app.command("ack")
    @friendly_errors
    def ack_cmd(
        alert_id: str = typer.Argument(..., help="The alert id shown by 'axhub alerts list'."),
        user: str = typer.Option("cli", "--by", help="Who acknowledges it."),
        note: str | None = typer.Option(None, "--note", help="A note kept with the alert. / 메모."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        lang: str | None = lang_option(),
    ) -> None:
        """Acknowledge an alert (it stays in the history), optionally with a note. / 알람 확인."""
        from axhub.serve.alerts import acknowledge_alert
        from axhub.store.models import AlertNoteRow, AlertRow
        from axhub.store.scoped import OrgScope

        db, org_id = _org_id(org)
        row = acknowledge_alert(db, org_id, alert_id, user)
        if note:
            with db.session() as session:
                scope = OrgScope(session, org_id)
                scope.add(
                    AlertNoteRow(alert_id=scope.get(AlertRow, alert_id).id, author=user[:40], text=note)
                )
            console.print(t("alerts.note"))
        console.print(t("alerts.acked", id=row.id, by=row.acknowledged_by))
        del lang

    @alerts_app.command("resolve")
    @friendly_errors
    def resolve_cmd(
        alert_id: str = typer.Argument(...),
        user: str = typer.Option("cli", "--by", help="Who resolved it."),
        note: str | None = typer.Option(None, "--note", help="What was done. / 조치 내용."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        lang: str | None = lang_option(),
    ) -> None:
        """Mark an alert resolved (who and when are recorded). / 알람 해결."""
        from axhub.core.timeutil import utcnow
        from axhub.store.models import AlertNoteRow, AlertRow
        from axhub.store.scoped import OrgScope

        db, org_id = _org_id(org)
        with db.session() as session:
            scope = OrgScope(session, org_id)
            row = scope.get(AlertRow, alert_id)
            now = utcnow()
            if row.acknowledged_at is None:
                row.acknowledged_by, row.acknowledged_at = user[:40], now
            if row.resolved_at is None:
                row.resolved_by, row.resolved_at = user[:40], now
            if note:
                scope.add(AlertNoteRow(alert_id=row.id, author=user[:40], text=note))
            console.print(t("alerts.resolved", id=row.id, by=row.resolved_by))
        del lang

    app.add_typer(alerts_app, name="alerts")

"""``axhub alerts list|ack``: the alerts raised by live scoring and threshold rules."""

from __future__ import annotations

import typer

from axhub.cli._context import console, friendly_errors, open_database


def register(app: typer.Typer) -> None:
    alerts_app = typer.Typer(
        help="Alerts from live scoring and rules: list and acknowledge. / 알람 조회·확인.",
        no_args_is_help=True,
    )

    def _org_id(org: str | None) -> tuple[object, str]:
        from axhub.core.settings import get_settings
        from axhub.store.platform import org_by_slug

        db = open_database()
        with db.session() as session:
            org_id = org_by_slug(session, org or get_settings().default_org).id
        return db, org_id

    @alerts_app.command("list")
    @friendly_errors
    def list_cmd(
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        open_only: bool = typer.Option(False, "--open", help="Only alerts nobody has acknowledged yet."),
        limit: int = typer.Option(50, help="How many (newest first)."),
    ) -> None:
        """Newest alerts with their explanation (top signals and how far off)."""
        from rich.table import Table

        from axhub.serve.alerts import list_alerts

        db, org_id = _org_id(org)
        rows = list_alerts(db, org_id, open_only=open_only, limit=limit)
        table = Table(title="Alerts / 알람")
        for col in ("id", "time (UTC)", "asset", "severity", "title", "why", "count", "ack"):
            table.add_column(col)
        for r in rows:
            why = "; ".join(
                f"{e.get('signal')}: "
                + (f"z {e['z']:+.1f}" if "z" in e else f"{e.get('times_limit', 0) or 0:.2f}x limit")
                for e in (r.explanation or [])[:3]
            )
            table.add_row(
                r.id,
                f"{r.ts:%Y-%m-%d %H:%M:%S}",
                r.asset_id,
                r.severity,
                r.title,
                why,
                str(r.count),
                r.acknowledged_by or "",
            )
        console.print(table)

    @alerts_app.command("ack")
    @friendly_errors
    def ack_cmd(
        alert_id: str = typer.Argument(..., help="The alert id shown by 'axhub alerts list'."),
        user: str = typer.Option("cli", "--by", help="Who acknowledges it."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
    ) -> None:
        """Acknowledge an alert (it stays in the history). / 알람 확인."""
        from axhub.serve.alerts import acknowledge_alert

        db, org_id = _org_id(org)
        row = acknowledge_alert(db, org_id, alert_id, user)
        console.print(f"[green]acknowledged[/] {row.id} by {row.acknowledged_by}")

    app.add_typer(alerts_app, name="alerts")

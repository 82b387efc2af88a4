"""``axhub oee``: set up machines and shifts for OEE, enter downtime reasons, and show OEE."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

import typer
from rich.table import Table

from axhub.cli._context import console, friendly_errors, open_database

oee_app = typer.Typer(
    help="Production performance (OEE, ISO 22400). / 설비종합효율(OEE).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(oee_app, name="oee")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _local_time(text: str | None, tz: str, default: datetime) -> datetime:
    """A time typed by a person: in the site's zone unless it carries an offset."""
    import pandas as pd

    if not text:
        return default
    ts = pd.Timestamp(text)
    return (ts.tz_localize(tz) if ts.tzinfo is None else ts).to_pydatetime()


@oee_app.command("setup")
@friendly_errors
def setup_command(
    machine: str = typer.Argument(..., help="Machine (asset slug). / 설비."),
    state_tag: str | None = typer.Option(None, "--state-tag", help="Signal carrying the state code."),
    good: str | None = typer.Option(None, "--good", help="Signal counting good parts."),
    scrap: str | None = typer.Option(None, "--scrap", help="Signal counting scrap parts."),
    cumulative: bool = typer.Option(False, "--cumulative", help="Counters are cumulative (PLC counters)."),
    ideal_cycle: float = typer.Option(60.0, "--ideal-cycle", help="Ideal cycle time per part, seconds."),
    micro_stop: float = typer.Option(
        120.0, "--micro-stop", help="Stops shorter than this are micro-stops (s)."
    ),
    org: str | None = typer.Option(None, "--org", help="Organisation (default: settings). / 조직."),
) -> None:
    """Say where a machine's states and part counts come from. / 설비 상태·생산 수량 설정."""
    from axhub.cli._context import org_id_for
    from axhub.core.settings import get_settings
    from axhub.production.config import configure_machine
    from axhub.store.scoped import OrgScope

    settings = get_settings()
    db = open_database(settings)
    org_id = org_id_for(db, org or settings.default_org)
    with db.session() as session:
        scope = OrgScope(session, org_id)
        asset = scope.asset_by_slug(machine)
        configure_machine(
            scope,
            asset,
            {
                "state_source": "tag" if state_tag else "none",
                "state_signal": state_tag,
                "good_signal": good,
                "scrap_signal": scrap,
                "count_mode": "cumulative" if cumulative else "increment",
                "ideal_cycle_s": ideal_cycle,
                "micro_stop_s": micro_stop,
            },
        )
        session.commit()
    console.print(f"{machine}: OEE set up (ideal cycle {ideal_cycle:g} s)")


@oee_app.command("shifts")
@friendly_errors
def shifts_command(
    site: str = typer.Argument(..., help="Site name. / 사업장."),
    shift: list[str] = typer.Option(..., "--shift", help="NAME=HH:MM-HH:MM, e.g. A=06:00-14:00 (repeat)."),
    weekdays_only: bool = typer.Option(False, "--weekdays", help="Shifts run Monday to Friday only."),
    org: str | None = typer.Option(None, "--org", help="Organisation (default: settings). / 조직."),
) -> None:
    """Set a site's shifts (a shift ending before it starts runs past midnight). / 근무조 설정."""
    from axhub.cli._context import org_id_for
    from axhub.core.errors import AxHubError, NotFoundError
    from axhub.core.settings import get_settings
    from axhub.production.config import set_shifts
    from axhub.store.models import SiteRow
    from axhub.store.scoped import OrgScope

    parsed = []
    for item in shift:
        name, _, span = item.partition("=")
        start, _, end = span.partition("-")
        if not (name and start and end):
            raise AxHubError(f"cannot read shift {item!r}", hint="write it as A=06:00-14:00")
        days = [0, 1, 2, 3, 4] if weekdays_only else [0, 1, 2, 3, 4, 5, 6]
        parsed.append({"name": name.strip(), "start": start.strip(), "end": end.strip(), "days": days})
    settings = get_settings()
    db = open_database(settings)
    org_id = org_id_for(db, org or settings.default_org)
    with db.session() as session:
        scope = OrgScope(session, org_id)
        row = scope.find(SiteRow, name=site)
        if row is None:
            raise NotFoundError(f"site '{site}' not found")
        stored = set_shifts(scope, row, parsed)
        session.commit()
    console.print(f"{site}: " + ", ".join(f"{s['name']} {s['start']}-{s['end']}" for s in stored))


@oee_app.command("show")
@friendly_errors
def show_command(
    machine: str | None = typer.Option(None, "--machine", help="One machine (asset slug)."),
    line: str | None = typer.Option(None, "--line", help="A line (asset slug of kind line)."),
    site: str | None = typer.Option(None, "--site", help="A site (name)."),
    start: str | None = typer.Option(None, "--start", help="From (site time unless an offset is given)."),
    end: str | None = typer.Option(None, "--end", help="Until (default now)."),
    by: str = typer.Option("day", "--by", help="shift | day | week."),
    org: str | None = typer.Option(None, "--org", help="Organisation (default: settings). / 조직."),
) -> None:
    """OEE with availability, performance, quality and the largest losses. / OEE와 손실."""
    from axhub.cli._context import org_id_for
    from axhub.core.errors import AxHubError, NotFoundError
    from axhub.core.settings import get_settings
    from axhub.core.timeutil import utcnow
    from axhub.production.service import Level, Period, ProductionService
    from axhub.store.models import SiteRow
    from axhub.store.scoped import OrgScope
    from axhub.store.timeseries import TimeSeriesStore

    if by not in ("shift", "day", "week"):
        raise typer.BadParameter("use shift, day or week", param_hint="--by")
    settings = get_settings()
    db = open_database(settings)
    org_id = org_id_for(db, org or settings.default_org)
    with db.session() as session:
        scope = OrgScope(session, org_id)
        level: Level = "company"
        target: str | None = None
        tz = "Asia/Seoul"
        if machine or line:
            asset = scope.asset_by_slug(machine or line or "")
            level, target = ("machine" if machine else "line"), asset.id
            tz = scope.get(SiteRow, asset.site_id).timezone
        elif site:
            site_row = scope.find(SiteRow, name=site)
            if site_row is None:
                raise NotFoundError(f"site '{site}' not found")
            level, target, tz = "site", site_row.id, site_row.timezone
        else:
            sites = scope.list(SiteRow, order_by=SiteRow.name, limit=1)
            tz = sites[0].timezone if sites else tz
        hi = _local_time(end, tz, utcnow())
        lo = _local_time(start, tz, hi - timedelta(days=7))
        if not lo < hi:
            raise AxHubError("--start must be before --end")
        series = TimeSeriesStore(settings.timeseries_root)
        report = ProductionService(scope, series).report(level, target, lo, hi, cast(Period, by))
    if not report.machines:
        console.print("no machine has OEE set up here yet (axhub oee setup MACHINE --state-tag ...)")
        return
    t = report.total
    console.print(
        f"[bold]OEE {_pct(t.oee)}[/]  availability {_pct(t.availability)} · performance {_pct(t.performance)}"
        f" · quality {_pct(t.quality)}  ({', '.join(report.machines)}; times in {tz})"
    )
    table = Table(by, "OEE", "availability", "performance", "quality", "good", "scrap", "micro-stops")
    for period in report.by_period.to_dict("records"):
        row = {str(k): v for k, v in period.items()}
        table.add_row(
            str(row[by]),
            _pct(row["oee"]),
            _pct(row["availability"]),
            _pct(row["performance"]),
            _pct(row["quality"]),
            f"{row['good']:,.0f}",
            f"{row['scrap']:,.0f}",
            str(row["micro_stops"]),
        )
    console.print(table)
    losses = Table("loss", "kind", "hours", "share")
    for loss in report.losses.head(8).to_dict("records"):
        row = {str(k): v for k, v in loss.items()}
        losses.add_row(
            str(row["cause"]), str(row["kind"]), f"{row['seconds'] / 3600:.2f}", _pct(row["share"])
        )
    console.print(losses)

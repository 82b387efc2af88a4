"""``axhub query ASSET``: read stored readings, optionally resampled, to the screen or a CSV."""

from __future__ import annotations

from pathlib import Path

import typer

from axhub.cli._context import console, existing_org_id, friendly_errors, open_database
from axhub.cli._lang import lang_option, t
from axhub.cli._where import parse_local


def register(app: typer.Typer) -> None:
    app.command("query")(query_command)


@friendly_errors
def query_command(
    asset: str = typer.Argument(..., help="Machine to read. / 설비 이름."),
    signals: str | None = typer.Option(None, "--signals", help="Comma-separated signals (default all)."),
    start: str | None = typer.Option(
        None, "--start", help="From, in the machine's site time unless an offset is given. / 시작."
    ),
    end: str | None = typer.Option(None, "--end", help="Until, exclusive (site time). / 끝."),
    every: str | None = typer.Option(None, "--every", help="Resample, e.g. 10s, 1min, 1h. / 집계 간격."),
    agg: str = typer.Option("mean", "--agg", help="mean | min | max | last (with --every)."),
    wide: bool = typer.Option(False, "--wide", help="One column per signal. / 신호별 열."),
    org: str | None = typer.Option(None, "--org", help="Organisation (default: settings). / 조직."),
    csv: Path | None = typer.Option(None, "--csv", help="Write the result to this CSV file."),
    limit: int = typer.Option(20, "--limit", help="Rows shown on screen."),
    lang: str | None = lang_option(),
) -> None:
    """Show the readings of one machine in a time window. / 설비 데이터 조회."""
    from axhub.core.settings import get_settings
    from axhub.store.models import AssetRow, OrganizationRow
    from axhub.store.scoped import OrgScope
    from axhub.store.timeseries import TimeSeriesStore, exact_values

    settings = get_settings()
    org_slug = org or settings.default_org
    db = open_database(settings)
    # A store filled without metadata (e.g. by a script) is keyed by the slug itself.
    org_id = existing_org_id(db, org_slug) or org_slug
    if agg not in {"mean", "min", "max", "last"}:
        raise typer.BadParameter("use mean, min, max or last", param_hint="--agg")
    # Times are read and shown in the machine's site zone (the company's when it has no site).
    zone = "UTC"
    with db.session() as session:
        if session.get(OrganizationRow, org_id) is not None:
            scope = OrgScope(session, org_id)
            row = scope.find(AssetRow, slug=asset)
            zone = scope.timezone_for_asset(row) if row else scope.org_timezone()
    store = TimeSeriesStore(settings.timeseries_root)
    names = [s.strip() for s in signals.split(",") if s.strip()] if signals else None
    call = store.query_wide if wide else store.query
    # Raw readings with their exact integers (beyond +-2^53, which float64 rounds) shown and
    # written digit for digit; resampled ones are float64 aggregates.
    exact = every is None
    frame = call(
        org_id,
        asset,
        names,
        parse_local(start, zone),
        parse_local(end, zone),
        every,
        agg,  # type: ignore[arg-type]
        exact=exact,
    )
    if exact and not wide:
        frame["value"] = exact_values(frame)
        frame = frame.drop(columns="value_int")
    if not frame.empty:
        frame["ts"] = frame["ts"].dt.tz_convert(zone)
    if csv is not None:
        frame.to_csv(csv, index=False)
        console.print(t("query.written", n=f"{len(frame):,}", path=csv))
        return
    if frame.empty:
        known = store.list_signals(org_id, asset)
        console.print(t("query.none", asset=asset, known=known))
        return
    console.print(frame.head(limit).to_string(index=False))
    if len(frame) > limit:
        console.print(t("query.more", n=f"{len(frame) - limit:,}"))
    del lang

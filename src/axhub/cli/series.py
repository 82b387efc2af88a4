"""``axhub series delete MACHINE [--signal NAME]``: delete stored readings (the write-ahead
log's included), for an operator or administrator working on the hub's own machine."""

from __future__ import annotations

import typer

from axhub.cli._context import console, existing_org_id, friendly_errors, open_database
from axhub.cli._lang import TEXTS, lang_option, t

TEXTS.update(
    {
        "series.confirm_asset": (
            "Delete every stored reading of machine '{asset}'? This cannot be undone.",
            "'{asset}' 설비의 저장된 데이터를 모두 지울까요? 되돌릴 수 없습니다.",
        ),
        "series.confirm_signal": (
            "Delete every stored reading of '{signal}' on '{asset}'? This cannot be undone.",
            "'{asset}' 설비의 '{signal}' 신호 데이터를 모두 지울까요? 되돌릴 수 없습니다.",
        ),
        "series.deleted": ("deleted {rows} readings", "데이터 {rows}건을 지웠습니다"),
        "series.no_org": ("no company '{org}' on this hub", "이 허브에 '{org}' 회사가 없습니다"),
        "series.no_asset": ("no machine '{asset}' in '{org}'", "'{org}'에 '{asset}' 설비가 없습니다"),
        "series.kept": ("nothing deleted", "지우지 않았습니다"),
    }
)

app = typer.Typer(help="Stored time series. / 저장된 시계열.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="series")


@app.command("delete")
@friendly_errors
def delete_command(
    asset: str = typer.Argument(..., help="Machine (its slug). / 설비 이름."),
    signal: str | None = typer.Option(None, "--signal", help="Only this signal. / 이 신호만."),
    org: str | None = typer.Option(None, "--org", help="Company slug (default: settings). / 회사."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask. / 묻지 않음."),
    lang: str | None = lang_option(),
) -> None:
    """Delete a machine's or one signal's stored readings; the machine and signal stay. / 데이터 삭제."""
    from axhub.core.settings import get_settings
    from axhub.store.models import AssetRow
    from axhub.store.scoped import OrgScope
    from axhub.store.timeseries import TimeSeriesStore

    settings = get_settings()
    org_slug = org or settings.default_org
    db = open_database(settings)
    org_id = existing_org_id(db, org_slug)
    if org_id is None:
        console.print(f"[red]{t('series.no_org', org=org_slug)}[/red]")
        raise typer.Exit(2)
    with db.session() as session:
        if OrgScope(session, org_id).find(AssetRow, slug=asset) is None:
            console.print(f"[red]{t('series.no_asset', asset=asset, org=org_slug)}[/red]")
            raise typer.Exit(2)
    question = (
        t("series.confirm_signal", signal=signal, asset=asset)
        if signal
        else t("series.confirm_asset", asset=asset)
    )
    if not yes and not typer.confirm(question):
        console.print(t("series.kept"))
        raise typer.Exit(1)
    store = TimeSeriesStore(settings.timeseries_root)
    try:
        rows = store.delete_signal(org_id, asset, signal) if signal else store.delete_asset(org_id, asset)
    finally:
        store.close()
    console.print(t("series.deleted", rows=rows))

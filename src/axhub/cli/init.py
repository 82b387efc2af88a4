"""``axhub init``: create the embedded home (~/.axhub), the database and a company."""

from __future__ import annotations

import os

import typer

from axhub.cli._context import console, friendly_errors, open_database
from axhub.core.settings import get_settings, save_default_org
from axhub.store.platform import ensure_org


@friendly_errors
def init(
    org: str = typer.Option(
        "", "--org", help="Company name to create, e.g. 'Hanbit Precision'. / 생성할 회사 이름."
    ),
    slug: str = typer.Option(
        "", help="Short id for the company (letters, digits, '-'); default from the name."
    ),
) -> None:
    """Prepare AX Hub on this machine: data folders and the metadata database. / 초기화."""
    settings = get_settings()
    db = open_database(settings)
    console.print(f"AX Hub home: [bold]{settings.home}[/]")
    console.print(f"database:    {db.engine.url.render_as_string(hide_password=True)}")
    console.print(f"data:        {settings.data_root}")
    if org:
        with db.session() as session:
            row = ensure_org(session, org, slug or None)
            console.print(f"company:     [bold]{row.name}[/] (id '{row.slug}')")
            chosen = row.slug
        # Later commands without --org work in this company (AXHUB_DEFAULT_ORG still wins).
        save_default_org(settings.home, chosen)
        if not os.environ.get("AXHUB_DEFAULT_ORG"):
            settings.default_org = chosen  # this process's later commands too (settings are cached)
    console.print("[green]ready.[/] Next: 'axhub ingest FILE --asset NAME' or 'axhub demo'.")


def register(app: typer.Typer) -> None:
    app.command("init")(init)

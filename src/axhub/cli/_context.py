"""What every command needs: settings, a migrated database, the org and a console."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from axhub.core.errors import AxHubError
from axhub.core.settings import Settings, get_settings
from axhub.store.db import Database

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def open_database(settings: Settings | None = None) -> Database:
    """The metadata database, created and migrated on first use."""
    settings = settings or get_settings()
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    return db


def org_id_for(db: Database, slug: str) -> str:
    """The id of organisation ``slug`` (created when new): the time-series store is keyed by
    organisation id, never by the slug people type, so every path agrees on one key."""
    from axhub.store.platform import ensure_org

    with db.session() as session:
        return ensure_org(session, slug, slug).id


def existing_org_id(db: Database, slug: str) -> str | None:
    """The id of organisation ``slug``, or None when there is none (unlike ``org_id_for``,
    nothing is created: for commands that only read or delete)."""
    from axhub.core.errors import NotFoundError
    from axhub.store.platform import org_by_slug

    with db.session() as session:
        try:
            return org_by_slug(session, slug).id
        except NotFoundError:
            return None


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Show AX Hub errors as one red line with the hint, not a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from axhub.cli._lang import current_lang, t
        from axhub.core.errors import InputValidationError

        try:
            return func(*args, **kwargs)
        except InputValidationError as exc:
            message, hint = exc.render(current_lang())
            err_console.print(f"[bold red]{t('error')}:[/] {message}" + (f" ({hint})" if hint else ""))
            raise typer.Exit(code=1) from exc
        except AxHubError as exc:
            render = getattr(exc, "render", None)  # errors that can speak Korean (e.g. bundle refusals)
            if callable(render):
                message, hint = render(current_lang())
                err_console.print(f"[bold red]{t('error')}:[/] {message}" + (f" ({hint})" if hint else ""))
            else:
                err_console.print(f"[bold red]{t('error')}:[/] {exc}")
            raise typer.Exit(code=1) from exc

    return wrapper

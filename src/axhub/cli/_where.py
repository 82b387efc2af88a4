"""Organisation, machine and local time for the embedded CLI commands: times are read and shown
in the machine's site zone (sites default to the company's zone)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from axhub.core.errors import AxHubError
from axhub.core.settings import Settings, get_settings
from axhub.store.db import Database
from axhub.store.models import AssetRow
from axhub.store.scoped import OrgScope


def org_scope_id(db: Database, org: str | None, settings: Settings | None = None) -> str:
    from axhub.cli._context import org_id_for

    settings = settings or get_settings()
    return org_id_for(db, org or settings.default_org)


def asset_and_zone(db: Database, org_id: str, ref: str) -> tuple[str, str, str]:
    """(asset id, slug, zone) of a machine given by id or slug."""
    from axhub.serve.files import find_asset

    with db.session() as session:
        scope = OrgScope(session, org_id)
        asset: AssetRow = find_asset(scope, ref)
        return asset.id, asset.slug, scope.timezone_for_asset(asset)


def org_zone(db: Database, org_id: str) -> str:
    with db.session() as session:
        return OrgScope(session, org_id).org_timezone()


def parse_local(value: str | None, zone: str) -> datetime | None:
    """A time typed by a person: with an offset as given, else in ``zone``."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise AxHubError(f"cannot read {value!r} as a time", hint="write e.g. 2026-03-02 09:00") from exc
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(ZoneInfo(zone))
    return stamp.to_pydatetime()


def show_local(value: datetime | None, zone: str) -> str:
    return "" if value is None else f"{value.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M:%S}"

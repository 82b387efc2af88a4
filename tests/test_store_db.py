"""Metadata store on SQLite and real PostgreSQL: migrations, tenant scoping, types."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from axhub.core.errors import AxHubError, ConflictError, NotFoundError
from axhub.store.db import Database
from axhub.store.models import AlertRow, AssetRow, Base, OrganizationRow, SignalRow
from axhub.store.platform import create_org, ensure_org, usage_by_org
from axhub.store.scoped import OrgScope


def test_migrations_match_models(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrate_is_idempotent(database: Database) -> None:
    database.migrate()
    with database.session() as s:
        ensure_org(s, "Acme Castings")
    database.migrate()
    with database.session() as s:
        assert s.scalars(select(OrganizationRow)).one().slug == "acme-castings"


def test_org_scope_hides_other_orgs_rows(database: Database) -> None:
    with database.session() as s:
        a, b = create_org(s, "Company A"), create_org(s, "Company B")
        site_a = OrgScope(s, a.id).ensure_site("Changwon 1")
        asset_a = OrgScope(s, a.id).ensure_asset(site_a, "CNC 01", kind="cnc")
        a_id, b_id, asset_id = a.id, b.id, asset_a.id
    with database.session() as s:
        scope_b = OrgScope(s, b_id)
        with pytest.raises(NotFoundError):
            scope_b.get(AssetRow, asset_id)
        assert scope_b.list(AssetRow) == []
        assert scope_b.count(AssetRow) == 0
        assert OrgScope(s, a_id).get(AssetRow, asset_id).slug == "cnc-01"


def test_add_always_stamps_own_org(database: Database) -> None:
    with database.session() as s:
        a, b = create_org(s, "A"), create_org(s, "B")
        scope_a = OrgScope(s, a.id)
        site = scope_a.ensure_site("S")
        # A caller trying to write into another organisation is overridden by the scope.
        row = scope_a.add(AssetRow(org_id=b.id, site_id=site.id, name="x", slug="x"))
        assert row.org_id == a.id


def test_register_signals_creates_assets_and_is_idempotent(database: Database) -> None:
    with database.session() as s:
        org = create_org(s, "A")
        scope = OrgScope(s, org.id)
        created = scope.register_signals([("pump-1", "flow", "m3/h"), ("pump-1", "current", "A")])
        again = scope.register_signals([("pump-1", "flow", "m3/h")])
        assert (created, again) == (2, 0)
        asset = scope.asset_by_slug("pump-1")
        names = sorted(sig.name for sig in scope.list(SignalRow, asset_id=asset.id))
        assert names == ["current", "flow"]


def test_duplicate_org_and_unsafe_names_are_refused(database: Database) -> None:
    with database.session() as s:
        create_org(s, "Acme")
        with pytest.raises(ConflictError):
            create_org(s, "Acme")
    with database.session() as s, pytest.raises(AxHubError):
        create_org(s, "x", slug="../etc")


def test_datetimes_round_trip_as_utc_and_json_columns(database: Database) -> None:
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    with database.session() as s:
        org = create_org(s, "A")
        scope = OrgScope(s, org.id)
        scope.add(
            AlertRow(
                asset_id="a1",
                ts=when,
                title="vibration high",
                explanation=[{"signal": "vibration_rms", "z": 6.5}],
            )
        )
        org_id = org.id
    with database.session() as s:
        alert = OrgScope(s, org_id).list(AlertRow)[0]
        assert alert.ts == when and alert.ts.tzinfo is not None
        assert alert.explanation == [{"signal": "vibration_rms", "z": 6.5}]
        assert usage_by_org(s)[org_id] == {"users": 0, "assets": 0, "jobs": 0}

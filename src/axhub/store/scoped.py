"""Tenant isolation in one place: every read and write of tenant data goes through an
``OrgScope``, which takes the organisation from the authenticated principal and never
lets a query see another organisation's rows.

Another organisation's id looks exactly like a missing id (``NotFoundError``): callers can't
even learn that it exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from axhub.core.errors import AxHubError, NotFoundError
from axhub.core.ids import check_path_safe, slugify
from axhub.store.models import TENANT_TABLES, AssetRow, Base, SignalRow, SiteRow

T = TypeVar("T", bound=Base)


class OrgScope:
    """Data access for one organisation inside one session."""

    def __init__(self, session: Session, org_id: str) -> None:
        if not org_id:
            raise AxHubError("an organisation is required for tenant data access")
        self.session = session
        self.org_id = org_id

    # -- generic, org-filtered access -------------------------------------------------
    @staticmethod
    def _check_tenant(model: type[Base]) -> None:
        if model not in TENANT_TABLES:
            raise AxHubError(f"{model.__name__} is not tenant data; use the platform repository")

    def select(self, model: type[T]) -> Select[Any]:
        """A SELECT over ``model`` already restricted to this organisation."""
        self._check_tenant(model)
        return select(model).where(model.org_id == self.org_id)  # type: ignore[attr-defined]

    def get(self, model: type[T], id_: str) -> T:
        row = cast(T | None, self.session.scalars(self.select(model).where(model.id == id_)).first())  # type: ignore[attr-defined]
        if row is None:
            raise NotFoundError(f"{model.__tablename__.rstrip('s')} '{id_}' not found")
        return row

    def find(self, model: type[T], **equals: Any) -> T | None:
        stmt = self.select(model)
        for key, value in equals.items():
            stmt = stmt.where(getattr(model, key) == value)
        return cast(T | None, self.session.scalars(stmt).first())

    def list(
        self,
        model: type[T],
        *,
        order_by: Any = None,
        limit: int | None = None,
        offset: int = 0,
        **equals: Any,
    ) -> Sequence[T]:
        stmt = self.select(model)
        for key, value in equals.items():
            stmt = stmt.where(getattr(model, key) == value)
        if order_by is not None:
            stmt = stmt.order_by(order_by)
        if limit is not None:
            stmt = stmt.limit(limit)
        return cast(Sequence[T], self.session.scalars(stmt.offset(offset)).all())

    def count(self, model: type[T], **equals: Any) -> int:
        self._check_tenant(model)
        stmt = select(func.count()).select_from(model).where(model.org_id == self.org_id)  # type: ignore[attr-defined]
        for key, value in equals.items():
            stmt = stmt.where(getattr(model, key) == value)
        return int(self.session.scalar(stmt) or 0)

    def add(self, row: T) -> T:
        """Insert a row owned by this organisation (``org_id`` is set here, not by callers)."""
        self._check_tenant(type(row))
        row.org_id = self.org_id  # type: ignore[attr-defined]
        self.session.add(row)
        self.session.flush()
        return row

    def add_unless_exists(self, row: T, **key: Any) -> T:
        """Insert ``row`` unless one with the same unique ``key`` exists, and return whichever is
        there. Two requests registering the same new signal at once both succeed (INSERT .. ON
        CONFLICT DO NOTHING on SQLite and PostgreSQL) instead of one failing on the unique key."""
        model = type(row)
        self._check_tenant(model)
        row.org_id = self.org_id  # type: ignore[attr-defined]
        table = model.__table__
        values = {c.key: getattr(row, c.key) for c in table.columns if getattr(row, c.key, None) is not None}
        from sqlalchemy.dialects import postgresql, sqlite

        postgres = self.session.get_bind().dialect.name == "postgresql"
        insert = postgresql.insert(model) if postgres else sqlite.insert(model)
        self.session.execute(insert.values(**values).on_conflict_do_nothing())
        found = self.find(model, **key)
        if found is None:
            raise AxHubError(f"{model.__tablename__}: could not insert or find {key}")
        return found

    def delete(self, row: Base) -> None:
        self._check_tenant(type(row))
        if row.org_id != self.org_id:  # type: ignore[attr-defined]
            raise NotFoundError("not found")
        self.session.delete(row)
        self.session.flush()

    # -- plant structure ----------------------------------------------------------------
    def org_timezone(self) -> str:
        """The company's zone (sites default to it)."""
        from axhub.store.models import OrganizationRow

        org = self.session.get(OrganizationRow, self.org_id)
        return org.timezone if org is not None and org.timezone else "Asia/Seoul"

    def timezone_for_asset(self, asset: AssetRow) -> str:
        """The zone of a machine's naive times: its site's, else the company's."""
        site = self.session.get(SiteRow, asset.site_id)
        return site.timezone if site is not None and site.timezone else self.org_timezone()

    def ensure_site(self, name: str, timezone: str | None = None) -> SiteRow:
        return self.find(SiteRow, name=name) or self.add(
            SiteRow(name=name, timezone=timezone or self.org_timezone())
        )

    def ensure_asset(
        self, site: SiteRow, name: str, *, slug: str | None = None, kind: str = "other", description: str = ""
    ) -> AssetRow:
        slug = check_path_safe(slug or slugify(name), "asset")
        existing = self.find(AssetRow, slug=slug)
        if existing is not None:
            return existing
        return self.add_unless_exists(
            AssetRow(site_id=site.id, name=name, slug=slug, kind=kind, description=description), slug=slug
        )

    def asset_by_slug(self, slug: str) -> AssetRow:
        row = self.find(AssetRow, slug=slug)
        if row is None:
            raise NotFoundError(f"asset '{slug}' not found", hint="list assets with 'axhub assets'")
        return row

    def ensure_signal(
        self,
        asset: AssetRow,
        name: str,
        *,
        unit: str = "",
        description: str = "",
        source_address: str | None = None,
    ) -> SignalRow:
        existing = self.find(SignalRow, asset_id=asset.id, name=name)
        if existing is not None:
            if unit and not existing.unit:
                existing.unit = unit
            return existing
        return self.add_unless_exists(
            SignalRow(
                asset_id=asset.id,
                name=name,
                unit=unit,
                description=description,
                source_address=source_address,
            ),
            asset_id=asset.id,
            name=name,
        )

    def register_signals(
        self, signals: Sequence[tuple[str, str, str]], *, site_name: str = "Default site"
    ) -> int:
        """Register (asset slug, signal, unit) triples seen by ingestion; returns new signals.

        Assets unknown so far are created on a default site, so data is never refused for
        lack of metadata; people can rename and move them later.
        """
        created = 0
        site: SiteRow | None = None
        for asset_slug, signal, unit in signals:
            asset = self.find(AssetRow, slug=asset_slug)
            if asset is None:
                site = site or self.ensure_site(site_name)
                asset = self.ensure_asset(site, asset_slug, slug=asset_slug)
            if self.find(SignalRow, asset_id=asset.id, name=signal) is None:
                created += 1
            self.ensure_signal(asset, signal, unit=unit)
        return created

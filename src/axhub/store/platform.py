"""Data access above any one tenant: creating organisations and the operator's views.

Only the platform-operator role (the data center) and bootstrap code (``axhub init``,
the demo) use this; everything tenant-owned goes through ``OrgScope``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axhub.core.errors import ConflictError, NotFoundError
from axhub.core.ids import check_path_safe, slugify
from axhub.store.models import AssetRow, JobRow, OrganizationRow, UserRow


def create_org(session: Session, name: str, slug: str | None = None) -> OrganizationRow:
    slug = check_path_safe(slug or slugify(name), "organisation")
    if session.scalars(select(OrganizationRow).where(OrganizationRow.slug == slug)).first():
        raise ConflictError(f"organisation '{slug}' already exists", hint="pick another name or slug")
    org = OrganizationRow(name=name, slug=slug)
    session.add(org)
    session.flush()
    return org


def ensure_org(session: Session, name: str, slug: str | None = None) -> OrganizationRow:
    slug = check_path_safe(slug or slugify(name), "organisation")
    existing = session.scalars(select(OrganizationRow).where(OrganizationRow.slug == slug)).first()
    return existing or create_org(session, name, slug)


def org_by_slug(session: Session, slug: str) -> OrganizationRow:
    org = session.scalars(select(OrganizationRow).where(OrganizationRow.slug == slug)).first()
    if org is None:
        raise NotFoundError(f"organisation '{slug}' not found", hint="create it with 'axhub init --org NAME'")
    return org


def list_orgs(session: Session) -> Sequence[OrganizationRow]:
    return session.scalars(select(OrganizationRow).order_by(OrganizationRow.created_at)).all()


def usage_by_org(session: Session) -> dict[str, dict[str, int]]:
    """Per-organisation counts for the operator's view (users, assets, jobs)."""
    keys = ("users", "assets", "jobs")
    usage = {org.id: dict.fromkeys(keys, 0) for org in list_orgs(session)}
    for model, key in ((UserRow, "users"), (AssetRow, "assets"), (JobRow, "jobs")):
        rows = session.execute(select(model.org_id, func.count()).group_by(model.org_id)).all()
        for org_id, n in rows:
            if org_id in usage:
                usage[org_id][key] = int(n)
    return usage


def consenting_orgs(session: Session) -> list[tuple[OrganizationRow, bool]]:
    """Organisations whose consent to the industrial-complex view is in force, and whether each
    may be named. Withdrawing consent (``revoked_at``) removes a company from every aggregate at
    once, since aggregates are computed from this list on every request."""
    from axhub.store.models import ComplexConsentRow

    rows = session.execute(
        select(OrganizationRow, ComplexConsentRow.named)
        .join(ComplexConsentRow, ComplexConsentRow.org_id == OrganizationRow.id)
        .where(ComplexConsentRow.revoked_at.is_(None))
        .order_by(OrganizationRow.created_at)
    ).all()
    return [(org, bool(named)) for org, named in rows]

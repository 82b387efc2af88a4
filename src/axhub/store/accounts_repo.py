"""Look-ups that happen *before* an organisation is known: signing in and checking API keys.

These are the only reads of users and keys not scoped by an organisation; they return the row
whose organisation then scopes everything else the request does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from axhub.store.models import ApiKeyRow, OrganizationRow, UserRow, new_share_code


def users_by_email(session: Session, email: str, company: str | None = None) -> list[UserRow]:
    """The accounts signing in as ``email`` (one per company at most), oldest first; only the one
    in ``company`` (its slug) when given."""
    query = select(UserRow).where(UserRow.email == email.strip().lower())
    if company:
        query = query.join(OrganizationRow, OrganizationRow.id == UserRow.org_id).where(
            OrganizationRow.slug == company.strip().lower()
        )
    return list(session.scalars(query.order_by(UserRow.created_at, UserRow.id)))


def user_in_org(session: Session, org_id: str, email: str) -> UserRow | None:
    """The account of ``email`` in this one company (e-mails are unique per company only)."""
    return session.scalars(
        select(UserRow).where(UserRow.org_id == org_id, UserRow.email == email.strip().lower())
    ).first()


def org_by_share_code(session: Session, code: str) -> OrganizationRow | None:
    return session.scalars(select(OrganizationRow).where(OrganizationRow.share_code == code.strip())).first()


def share_code_of(session: Session, org: OrganizationRow) -> str:
    """The company's share code, made on first use for companies created before codes existed."""
    if not org.share_code:
        org.share_code = new_share_code()
        session.flush()
    return org.share_code


def user_by_id(session: Session, user_id: str) -> UserRow | None:
    return session.get(UserRow, user_id)


def keys_by_prefix(session: Session, prefix: str) -> list[ApiKeyRow]:
    return list(
        session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix, ApiKeyRow.revoked_at.is_(None)))
    )


def org_by_id(session: Session, org_id: str) -> OrganizationRow | None:
    return session.get(OrganizationRow, org_id)


def end_sessions(user: UserRow) -> None:
    """Invalidate every session cookie issued to ``user`` so far (they carry the old generation)."""
    user.session_version = (user.session_version or 0) + 1


def revoke_keys_of(session: Session, user_id: str, when: datetime) -> int:
    """Revoke every live API key ``user_id`` created (the owner is gone, so are their keys)."""
    rows = session.scalars(
        select(ApiKeyRow).where(ApiKeyRow.user_id == user_id, ApiKeyRow.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at = when
    return len(rows)

"""Creating the first accounts: the platform operator and a company with its administrator."""

from __future__ import annotations

from axhub.api.security import hash_password, new_api_key
from axhub.core.domain import Role
from axhub.core.errors import ConflictError
from axhub.store import accounts_repo, platform
from axhub.store.db import Database
from axhub.store.models import ApiKeyRow, UserRow
from axhub.store.scoped import OrgScope

PLATFORM_ORG_SLUG = "platform"


def create_user(
    db: Database, org_slug: str, email: str, password: str, role: str, *, org_name: str | None = None
) -> str:
    """Create a user (and the organisation if new); returns the user id."""
    with db.session() as s:
        org = platform.ensure_org(s, org_name or org_slug, org_slug)
        if accounts_repo.user_in_org(s, org.id, email) is not None:
            raise ConflictError(f"a user with e-mail {email} already exists in {org_slug}")
        user = OrgScope(s, org.id).add(
            UserRow(email=email.lower(), password_hash=hash_password(password), role=Role(role).value)
        )
        return user.id


def create_operator(db: Database, email: str, password: str) -> str:
    return create_user(db, PLATFORM_ORG_SLUG, email, password, Role.OPERATOR.value, org_name="Platform")


def create_key(db: Database, user_id: str, name: str, scopes: list[str]) -> str:
    """A key for an existing user with that user's role; returns the secret (shown once)."""
    with db.session() as s:
        user = accounts_repo.user_by_id(s, user_id)
        if user is None:
            raise ConflictError(f"no user {user_id}")
        new = new_api_key()
        OrgScope(s, user.org_id).add(
            ApiKeyRow(
                name=name,
                user_id=user.id,
                prefix=new.prefix,
                key_hash=new.key_hash,
                scopes=sorted(set(scopes)),
                role=user.role,
            )
        )
        return new.key

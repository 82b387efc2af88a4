"""Users of your organisation (administrators manage them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from axhub.api import password_policy
from axhub.api.deps import Admin, AdminScope, State, forget_keys
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.routes._util import page_of
from axhub.api.schemas.accounts import UserCreate, UserOut, UserUpdate
from axhub.api.schemas.common import Deleted, Page, Paging, paging
from axhub.api.security import hash_password
from axhub.core.errors import ConflictError
from axhub.core.timeutil import utcnow
from axhub.store import accounts_repo
from axhub.store.models import UserRow

router = APIRouter(prefix="/users", tags=["users"], responses=ERROR_RESPONSES)


@router.get("", operation_id="list_users", response_model=Page[UserOut])
def list_users(scope: AdminScope, pg: Annotated[Paging, Depends(paging)]) -> Page[UserOut]:
    return page_of(scope, UserRow, UserOut, pg, order_by=UserRow.created_at)


@router.post("", operation_id="create_user", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, scope: AdminScope) -> UserOut:
    password_policy.check(body.password, body.email)
    # Only this company's accounts are looked at: whether the address has an account in another
    # company is not this company's business (sign-in names are per company).
    if accounts_repo.user_in_org(scope.session, scope.org_id, body.email) is not None:
        raise ConflictError(
            "your company already has an account with this e-mail address",
            hint="edit that account instead",
        )
    row = scope.add(
        UserRow(
            email=body.email.lower(),
            name=body.name,
            password_hash=hash_password(body.password),
            role=body.role,
            locale=body.locale,
        )
    )
    return UserOut.model_validate(row)


@router.get("/{user_id}", operation_id="get_user", response_model=UserOut)
def get_user(user_id: str, scope: AdminScope) -> UserOut:
    return UserOut.model_validate(scope.get(UserRow, user_id))


@router.patch("/{user_id}", operation_id="update_user", response_model=UserOut)
def update_user(user_id: str, body: UserUpdate, scope: AdminScope, principal: Admin, state: State) -> UserOut:
    """Change a user. A new role, deactivation or a password reset ends that user's sessions, and
    their API keys act with the new role at once (deactivated: not at all)."""
    row = scope.get(UserRow, user_id)
    data = body.model_dump(exclude_unset=True)
    if row.id == principal.user_id and (
        data.get("role", row.role) != row.role or data.get("is_active") is False
    ):
        raise ConflictError("you cannot demote or deactivate yourself", hint="ask another administrator")
    rights_change = (data.get("role") or row.role) != row.role or (
        data.get("is_active") is not None and data["is_active"] != row.is_active
    )
    if "password" in data:
        password = data.pop("password")
        if password is not None:
            password_policy.check(password, row.email)
            row.password_hash = hash_password(password)
            rights_change = True
    for key, value in data.items():
        if value is not None:
            setattr(row, key, value)
    if rights_change:
        accounts_repo.end_sessions(row)
        forget_keys(state)
    scope.session.flush()
    return UserOut.model_validate(row)


@router.post("/{user_id}/sign-out", operation_id="end_user_sessions", response_model=UserOut)
def end_user_sessions(user_id: str, scope: AdminScope, state: State) -> UserOut:
    """End every session of this user at once (a lost laptop, a shared screen); they sign in again."""
    row = scope.get(UserRow, user_id)
    accounts_repo.end_sessions(row)
    forget_keys(state)
    scope.session.flush()
    return UserOut.model_validate(row)


@router.delete("/{user_id}", operation_id="delete_user", response_model=Deleted)
def delete_user(user_id: str, scope: AdminScope, principal: Admin, state: State) -> Deleted:
    """Delete a user; their API keys are revoked with them."""
    row = scope.get(UserRow, user_id)
    if row.id == principal.user_id:
        raise ConflictError("you cannot delete yourself", hint="ask another administrator")
    accounts_repo.revoke_keys_of(scope.session, row.id, utcnow())
    scope.delete(row)
    forget_keys(state)
    return Deleted(id=user_id)

"""API keys for machines and the SDK: created once (secret shown once), listed, revoked.

A key never has a higher role than the person who made it; administrators see and revoke every
key of their organisation, others only their own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from axhub.api.deps import ROLE_RANK, Principal, Writer, WriteScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.schemas.accounts import KeyCreate, KeyCreated, KeyOut
from axhub.api.schemas.common import Page, Paging, paging
from axhub.api.security import new_api_key
from axhub.core.domain import Role
from axhub.core.errors import NotFoundError, PermissionDeniedError
from axhub.core.timeutil import utcnow
from axhub.store.models import ApiKeyRow
from axhub.store.scoped import OrgScope

router = APIRouter(prefix="/keys", tags=["api keys"], responses=ERROR_RESPONSES)

_RANK = ROLE_RANK


def _visible(scope: OrgScope, principal: Principal, key_id: str) -> ApiKeyRow:
    row = scope.get(ApiKeyRow, key_id)
    if principal.role not in (Role.ADMIN, Role.OPERATOR) and row.user_id != principal.user_id:
        raise NotFoundError(f"api key '{key_id}' not found")
    return row


@router.get("", operation_id="list_keys", response_model=Page[KeyOut])
def list_keys(scope: WriteScope, principal: Writer, pg: Annotated[Paging, Depends(paging)]) -> Page[KeyOut]:
    filters = {} if principal.role in (Role.ADMIN, Role.OPERATOR) else {"user_id": principal.user_id}
    rows = scope.list(ApiKeyRow, order_by=ApiKeyRow.created_at, limit=pg.limit, offset=pg.offset, **filters)
    return Page[KeyOut](
        items=[KeyOut.model_validate(r) for r in rows],
        total=scope.count(ApiKeyRow, **filters),
        limit=pg.limit,
        offset=pg.offset,
    )


@router.post("", operation_id="create_key", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, scope: WriteScope, principal: Writer) -> KeyCreated:
    role = body.role or principal.role
    if _RANK.get(role, 0) > _RANK.get(principal.role, 0):
        raise PermissionDeniedError(f"a key cannot have a higher role than yours ({principal.role})")
    if "admin" in body.scopes and role not in (Role.ADMIN, Role.OPERATOR):
        raise PermissionDeniedError("only administrators' keys may have the 'admin' scope")
    if principal.via == "key" and not set(body.scopes) <= principal.scopes:
        raise PermissionDeniedError("a key cannot create a key with more scopes than its own")
    new = new_api_key()
    row = scope.add(
        ApiKeyRow(
            name=body.name,
            user_id=principal.user_id,
            prefix=new.prefix,
            key_hash=new.key_hash,
            scopes=sorted(set(body.scopes)),
            role=role,
        )
    )
    return KeyCreated(**KeyOut.model_validate(row).model_dump(), key=new.key)


@router.delete("/{key_id}", operation_id="revoke_key", response_model=KeyOut)
def revoke_key(key_id: str, scope: WriteScope, principal: Writer) -> KeyOut:
    row = _visible(scope, principal, key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        scope.session.flush()
    return KeyOut.model_validate(row)

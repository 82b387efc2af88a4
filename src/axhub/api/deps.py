"""Request dependencies: who is calling (session cookie or API key), what they may do, and the
organisation-scoped data access (:class:`~axhub.store.scoped.OrgScope`) built from that.

Routes never filter by organisation themselves: they receive an ``OrgScope`` whose org comes
from the authenticated principal, so another company's ids simply are not found (404).
"""

from __future__ import annotations

import functools
import hmac
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from axhub.api.errors import ApiError
from axhub.api.login_guard import LoginGuard
from axhub.api.security import (
    CSRF_HEADER,
    SESSION_COOKIE,
    SessionSigner,
    key_prefix,
    keys_match,
)
from axhub.api.streams import StreamSlots
from axhub.core.domain import Role
from axhub.core.settings import Settings
from axhub.core.timeutil import utcnow
from axhub.store import accounts_repo
from axhub.store.blobs import BlobStore
from axhub.store.db import Database
from axhub.store.scoped import OrgScope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_SCOPES = ("read", "write", "ingest", "admin")


class Need(StrEnum):
    """What a route requires of the caller."""

    READ = "read"  # any member; keys with 'read'
    WRITE = "write"  # engineer or admin; keys with 'write'
    INGEST = "ingest"  # engineer or admin; keys with 'ingest' or 'write'
    ADMIN = "admin"  # organisation admin; keys with 'admin'
    OPERATOR = "operator"  # the data center's platform operator
    APPROVE = "approve"  # approve setpoint writes: admin or approver, signed in (no key can)


_ROLES: dict[Need, frozenset[str]] = {
    Need.READ: frozenset({Role.ADMIN, Role.ENGINEER, Role.VIEWER, Role.OPERATOR, Role.APPROVER}),
    Need.WRITE: frozenset({Role.ADMIN, Role.ENGINEER, Role.OPERATOR, Role.APPROVER}),
    Need.INGEST: frozenset({Role.ADMIN, Role.ENGINEER, Role.OPERATOR, Role.APPROVER}),
    Need.ADMIN: frozenset({Role.ADMIN, Role.OPERATOR}),
    Need.OPERATOR: frozenset({Role.OPERATOR}),
    Need.APPROVE: frozenset({Role.ADMIN, Role.APPROVER}),
}
_KEY_SCOPES: dict[Need, frozenset[str]] = {
    Need.READ: frozenset({"read"}),
    Need.WRITE: frozenset({"write"}),
    Need.INGEST: frozenset({"ingest", "write"}),
    Need.ADMIN: frozenset({"admin"}),
    Need.OPERATOR: frozenset({"admin"}),
    Need.APPROVE: frozenset(),
}


@dataclass(frozen=True)
class Principal:
    org_id: str
    role: str
    via: str  # 'session' or 'key'
    user_id: str | None = None
    key_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    csrf: str | None = None

    def allows(self, need: Need) -> bool:
        if self.role not in _ROLES[need]:
            return False
        return self.via == "session" or bool(self.scopes & _KEY_SCOPES[need])

    @property
    def actor(self) -> str:
        return self.user_id or f"key:{self.key_id}"


@dataclass
class AppState:
    settings: Settings
    db: Database
    blobs: BlobStore
    signer: SessionSigner
    secure_cookies: bool = True
    max_upload_bytes: int = 50 * 1024 * 1024
    executor: Any = None  # LocalExecutor | RayExecutor | None (jobs wait for an outside worker)
    queue: Any = None
    # API keys checked recently: hash lookups are cheap, but a DB round trip per request is not
    # free under load. Revoking a key takes effect within KEY_CACHE_S.
    key_cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    key_cache_lock: threading.Lock = field(default_factory=threading.Lock)
    KEY_CACHE_S: float = 5.0
    # (org id, asset id) -> asset slug, for the readings routes. Slugs never change; deleting an
    # asset takes effect within ASSET_CACHE_S in other processes (at once in this one). Keyed by
    # the caller's organisation: an entry only exists after that org's scoped lookup found it.
    asset_cache: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    ASSET_CACHE_S: float = 5.0
    login_guard: LoginGuard = field(default_factory=LoginGuard)
    streams: StreamSlots = field(default_factory=StreamSlots)
    # Uploads are parsed and checked in worker threads: a few at a time per caller and company,
    # so one tenant's stream of (bomb) files cannot occupy the whole thread pool.
    uploads: StreamSlots = field(default_factory=lambda: StreamSlots(2, 4, "uploads in progress"))


def app_state(request: Request) -> AppState:
    return request.app.state.axhub


async def _app_state(request: Request) -> AppState:
    # async: FastAPI would run a plain function in the thread pool (a hop per request)
    return app_state(request)


ROLE_RANK = {
    Role.VIEWER.value: 0,
    Role.ENGINEER.value: 1,
    Role.APPROVER.value: 2,
    Role.ADMIN.value: 3,
    Role.OPERATOR.value: 4,
}


def weaker_role(a: str, b: str) -> str:
    """The lower of two roles (a key acts with at most its owner's current rights)."""
    return a if ROLE_RANK.get(a, -1) <= ROLE_RANK.get(b, -1) else b


def forget_keys(state: AppState) -> None:
    """Drop cached key checks (after an owner's role, status or existence changed)."""
    with state.key_cache_lock:
        state.key_cache.clear()


def _from_key(state: AppState, key: str) -> Principal:
    now = time.monotonic()
    cached = state.key_cache.get(key)
    if cached is not None and now - cached[0] < state.KEY_CACHE_S:
        return cached[1]
    prefix = key_prefix(key)
    if prefix is None:
        raise ApiError(401, "unauthorized", "malformed API key", hint="keys look like axk_xxxxxxxx_...")
    with state.db.session() as s:
        for row in accounts_repo.keys_by_prefix(s, prefix):
            if keys_match(key, row.key_hash):
                # The key acts with at most its owner's CURRENT rights, and dies with the owner:
                # demoting, deactivating or deleting the person who made it reaches the key too.
                owner = accounts_repo.user_by_id(s, row.user_id) if row.user_id else None
                if owner is None or not owner.is_active or owner.org_id != row.org_id:
                    break
                principal = Principal(
                    org_id=row.org_id,
                    role=weaker_role(row.role, owner.role),
                    via="key",
                    user_id=row.user_id,
                    key_id=row.id,
                    scopes=frozenset(row.scopes),
                )
                stamp = utcnow()
                if row.last_used_at is None or stamp - row.last_used_at > timedelta(minutes=1):
                    row.last_used_at = stamp
                with state.key_cache_lock:
                    if len(state.key_cache) > 10_000:
                        state.key_cache.clear()
                    state.key_cache[key] = (now, principal)
                return principal
    raise ApiError(
        401, "unauthorized", "unknown or revoked API key", hint="create a new key with 'axhub keys create'"
    )


def _from_session(state: AppState, request: Request, cookie: str) -> Principal:
    data = state.signer.read(cookie)
    if data is None:
        raise ApiError(401, "unauthorized", "session expired or invalid", hint="sign in again")
    with state.db.session() as s:
        user = accounts_repo.user_by_id(s, str(data["uid"]))
        # A cookie from an older session generation was signed out, or its user's password or
        # rights changed since: refuse it even though its signature is still good.
        if user is None or not user.is_active or int(data.get("sv", 0)) != user.session_version:
            raise ApiError(401, "unauthorized", "session expired or invalid", hint="sign in again")
        principal = Principal(
            org_id=user.org_id, role=user.role, via="session", user_id=user.id, csrf=str(data["csrf"])
        )
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, principal.csrf or ""):
            raise ApiError(
                403,
                "csrf_failed",
                "missing or wrong CSRF token",
                hint=f"send the axhub_csrf cookie's value in the {CSRF_HEADER} header",
            )
    return principal


def _cached_key_principal(state: AppState, request: Request) -> Principal | None:
    """The principal of a bearer key checked within KEY_CACHE_S, without I/O; else None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    cached = state.key_cache.get(token.strip())
    if cached is not None and time.monotonic() - cached[0] < state.KEY_CACHE_S:
        return cached[1]
    return None


def authenticate(request: Request) -> Principal:
    state = app_state(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "use 'Authorization: Bearer axk_...'")
        return _from_key(state, token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return _from_session(state, request, cookie)
    raise ApiError(401, "unauthorized", "sign in or send an API key", hint="Authorization: Bearer axk_...")


@functools.cache
def require(need: Need) -> Callable[[Request], Awaitable[Principal]]:
    # Async so that a recently checked API key (the common case under load) is accepted on the
    # event loop; anything needing the database (new key, session cookie) runs in a thread.
    async def dependency(request: Request) -> Principal:
        principal = _cached_key_principal(app_state(request), request)
        if principal is None:
            principal = await run_in_threadpool(authenticate, request)
        if not principal.allows(need):
            what = "API key's scopes" if principal.via == "key" else f"role '{principal.role}'"
            raise ApiError(
                403,
                "forbidden",
                f"your {what} do not allow this ({need.value} needed)",
                hint="ask an administrator of your organisation",
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{need.value}"
    return dependency


def _session(request: Request) -> Iterator[Session]:
    with app_state(request).db.session() as session:
        yield session


# scope="function": the session commits (or rolls back) when the route function returns, BEFORE
# the response is sent. With FastAPI's default ("request") the commit ran after the client had its
# 201, so a read straight after a create could 404, a failed commit came too late to report, and a
# streaming response held its connection for as long as the stream stayed open.
_SessionDep = Depends(_session, scope="function")


@functools.cache
def scope_for(need: Need) -> Callable[..., OrgScope]:
    def dependency(
        principal: Principal = Depends(require(need)),
        session: Session = _SessionDep,
    ) -> OrgScope:
        return OrgScope(session, principal.org_id)

    dependency.__name__ = f"scope_{need.value}"
    return dependency


State = Annotated[AppState, Depends(_app_state)]
Reader = Annotated[Principal, Depends(require(Need.READ))]
Writer = Annotated[Principal, Depends(require(Need.WRITE))]
Ingester = Annotated[Principal, Depends(require(Need.INGEST))]
Admin = Annotated[Principal, Depends(require(Need.ADMIN))]
Operator = Annotated[Principal, Depends(require(Need.OPERATOR))]
ReadScope = Annotated[OrgScope, Depends(scope_for(Need.READ))]
WriteScope = Annotated[OrgScope, Depends(scope_for(Need.WRITE))]
IngestScope = Annotated[OrgScope, Depends(scope_for(Need.INGEST))]
AdminScope = Annotated[OrgScope, Depends(scope_for(Need.ADMIN))]
DbSession = Annotated[Session, _SessionDep]


def _upload_slot(request: Request, principal: Principal = Depends(require(Need.INGEST))) -> Iterator[None]:
    state = app_state(request)
    slot = state.uploads.take(principal.actor, principal.org_id, 600)
    try:
        yield
    finally:
        state.uploads.give_back(slot)


# One of the caller's few upload slots, held while the upload is checked and stored (429 beyond).
UploadSlot = Annotated[None, Depends(_upload_slot, scope="function")]


def timeseries_store(state: AppState) -> Any:
    """The hub's time-series store, opened once per process (503 where it is not installed)."""
    cached = getattr(state, "_timeseries", None)
    if cached is None:
        try:
            from axhub.store.timeseries import TimeSeriesStore
        except ImportError as exc:
            from axhub.api.errors import ApiError

            raise ApiError(503, "unavailable", "the time-series store is not installed on this hub") from exc
        cached = TimeSeriesStore(state.settings.timeseries_root)
        state._timeseries = cached  # type: ignore[attr-defined]
    return cached

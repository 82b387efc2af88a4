"""Sign in and out (browser sessions) and ``/auth/me``."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from axhub.api import password_policy
from axhub.api.deps import Principal, Reader, State, authenticate
from axhub.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from axhub.api.schemas.accounts import LoginIn, MeOut, OrgOut, PasswordChange, UserOut
from axhub.api.security import CSRF_COOKIE, SESSION_COOKIE, SESSION_MAX_AGE_S, hash_password, hashing_full
from axhub.api.signin import sign_in, too_many
from axhub.store import accounts_repo

TARPIT_S = 1.0

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


def _me(state: State, principal: Principal, csrf: str | None = None) -> MeOut:
    with state.db.session() as s:
        org = accounts_repo.org_by_id(s, principal.org_id)
        user = accounts_repo.user_by_id(s, principal.user_id) if principal.user_id else None
        assert org is not None
        return MeOut(
            user=UserOut.model_validate(user) if user else None,
            org=OrgOut.model_validate(org),
            role=principal.role,
            via=principal.via,
            scopes=sorted(principal.scopes),
            csrf_token=csrf,
        )


def _set_cookies(response: Response, state: State, user_id: str, version: int) -> str:
    token, csrf = state.signer.issue(user_id, version)
    common = {"secure": state.secure_cookies, "samesite": "strict", "max_age": SESSION_MAX_AGE_S, "path": "/"}
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **common)  # type: ignore[arg-type]
    return csrf


@router.post(
    "/login",
    operation_id="login",
    response_model=MeOut,
    responses={429: {"model": ErrorResponse, "description": "too many attempts; see Retry-After"}},
)
async def login(body: LoginIn, request: Request, response: Response, state: State) -> MeOut:
    """Sign in with e-mail and password; sets the session and CSRF cookies. Repeated failures
    for one e-mail or from one address are throttled (429 with Retry-After)."""
    # Async, so that a refused attempt (throttled, or every hashing place taken) is answered on
    # the event loop without a thread: under a flood, refusing must be the cheap path.
    # A refusal is also slowed down (TARPIT_S, costing the server nothing but an idle
    # coroutine): a client that ignores Retry-After and retries at once then makes about one
    # attempt a second instead of hundreds, which is what kept the event loop busy under a flood.
    address = request.client.host if request.client else None
    wait = state.login_guard.cached_retry_after(body.email, address)
    if wait:
        await asyncio.sleep(TARPIT_S)
        raise too_many(wait)
    if hashing_full():
        await asyncio.sleep(TARPIT_S)
        raise too_many(1, "the server is busy checking other sign-ins")
    who = await run_in_threadpool(sign_in, state, body.email, body.password, address, body.company)
    csrf = _set_cookies(response, state, who.user_id, who.session_version)
    principal = Principal(org_id=who.org_id, role=who.role, via="session", user_id=who.user_id, csrf=csrf)
    return await run_in_threadpool(_me, state, principal, csrf)


@router.post("/logout", operation_id="logout", status_code=204)
def logout(request: Request, response: Response, state: State) -> Response:
    """Sign out: ends this user's sessions (every browser they are signed in on) and clears the
    cookies; needs the CSRF header like every cookie-authenticated write."""
    principal = authenticate(request)
    if principal.via == "session" and principal.user_id:
        with state.db.session() as s:
            user = accounts_repo.user_by_id(s, principal.user_id)
            if user is not None:
                accounts_repo.end_sessions(user)
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out


@router.post("/password", operation_id="change_password", response_model=MeOut)
def change_password(
    body: PasswordChange, principal: Reader, request: Request, response: Response, state: State
) -> MeOut:
    """Change your own password (signed-in people, not keys). Every other session of yours ends;
    this browser gets a fresh session."""
    if principal.via != "session" or not principal.user_id:
        raise ApiError(
            403, "forbidden", "API keys cannot change passwords", hint="sign in with your password"
        )
    with state.db.session() as s:
        user = accounts_repo.user_by_id(s, principal.user_id)
        org = accounts_repo.org_by_id(s, principal.org_id)
        assert user is not None and org is not None
        email, company = user.email, org.slug
    address = request.client.host if request.client else None
    who = sign_in(state, email, body.current_password, address, company)
    password_policy.check(body.new_password, email, "new_password")
    with state.db.session() as s:
        user = accounts_repo.user_by_id(s, who.user_id)
        assert user is not None
        user.password_hash = hash_password(body.new_password)
        accounts_repo.end_sessions(user)
        version = user.session_version
    csrf = _set_cookies(response, state, who.user_id, version)
    return _me(state, replace(principal, csrf=csrf), csrf)


@router.get("/me", operation_id="get_me", response_model=MeOut)
def me(principal: Reader, state: State) -> MeOut:
    """Who is calling: user, organisation, role and (for keys) scopes."""
    return _me(state, principal, principal.csrf)

"""Sign in and out (browser sessions) and ``/auth/me``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from axhub.api.deps import Principal, Reader, State, authenticate
from axhub.api.errors import ERROR_RESPONSES, ApiError
from axhub.api.schemas.accounts import LoginIn, MeOut, OrgOut, UserOut
from axhub.api.security import CSRF_COOKIE, SESSION_COOKIE, SESSION_MAX_AGE_S, verify_password
from axhub.store import accounts_repo

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


@router.post("/login", operation_id="login", response_model=MeOut)
def login(body: LoginIn, response: Response, state: State) -> MeOut:
    """Sign in with e-mail and password; sets the session and CSRF cookies."""
    with state.db.session() as s:
        user = accounts_repo.user_by_email(s, body.email)
        ok = verify_password(user.password_hash if user else None, body.password)
        if user is None or not ok or not user.is_active:
            raise ApiError(401, "unauthorized", "wrong e-mail or password")
        user_id, org_id, role = user.id, user.org_id, user.role
    token, csrf = state.signer.issue(user_id)
    common = {"secure": state.secure_cookies, "samesite": "strict", "max_age": SESSION_MAX_AGE_S, "path": "/"}
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **common)  # type: ignore[arg-type]
    principal = Principal(org_id=org_id, role=role, via="session", user_id=user_id, csrf=csrf)
    return _me(state, principal, csrf)


@router.post("/logout", operation_id="logout", status_code=204)
def logout(request: Request, response: Response) -> Response:
    """Sign out: clears the cookies (needs the CSRF header like every cookie-authenticated write)."""
    authenticate(request)
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out


@router.get("/me", operation_id="get_me", response_model=MeOut)
def me(principal: Reader, state: State) -> MeOut:
    """Who is calling: user, organisation, role and (for keys) scopes."""
    return _me(state, principal, principal.csrf)

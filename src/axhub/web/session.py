"""Browser sign-in for the dashboard pages, on the API's own credentials.

Pages use the API's ``authenticate`` (the same signed session cookie and CSRF token as every
API route); when it fails, a page answers with a redirect to the sign-in form instead of the
API's JSON 401. The sign-in form sets exactly the cookies the API sets (``axhub_session``:
HttpOnly, SameSite=Strict, Secure unless the server was started for plain-HTTP local use;
``axhub_csrf``: readable by the page's script, echoed in ``X-CSRF-Token``).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axhub.api.deps import AppState, Principal, app_state, authenticate
from axhub.api.errors import ApiError
from axhub.api.security import CSRF_COOKIE, SESSION_COOKIE, SESSION_MAX_AGE_S, verify_password
from axhub.store import accounts_repo


class LoginRequired(Exception):
    """Raised by page dependencies; turned into a redirect to ``/login``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def page_principal(request: Request) -> Principal:
    """The signed-in user of a page request, or a redirect to the sign-in form."""
    try:
        principal = authenticate(request)
    except ApiError as exc:
        raise LoginRequired(request.url.path) from exc
    if principal.via != "session":
        # API keys are for machines; pages are for people.
        raise LoginRequired(request.url.path)
    request.state.principal = principal
    return principal


def login_redirect(exc: LoginRequired) -> RedirectResponse:
    target = exc.next_path if exc.next_path.startswith("/") and not exc.next_path.startswith("//") else "/"
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def check_credentials(state: AppState, email: str, password: str) -> str | None:
    """The user id for a correct e-mail and password of an active account, else None."""
    with state.db.session() as session:
        user = accounts_repo.user_by_email(session, email)
        ok = verify_password(user.password_hash if user else None, password)
        if user is None or not ok or not user.is_active:
            return None
        return user.id


def set_session_cookies(request: Request, response: Response, user_id: str) -> None:
    state = app_state(request)
    cookie, csrf = state.signer.issue(user_id)
    secure = bool(state.secure_cookies)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=SESSION_MAX_AGE_S,
        httponly=False,
        secure=secure,
        samesite="strict",
        path="/",
    )


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")

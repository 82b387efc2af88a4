"""Browser sign-in for the dashboard pages, on the API's own credentials.

Pages use the API's ``authenticate`` (the same signed session cookie and CSRF token as every
API route); when it fails, a page answers with a redirect to the sign-in form instead of the
API's JSON 401. The sign-in form sets exactly the cookies the API sets (``axhub_session``:
HttpOnly, SameSite=Strict, Secure unless the server was started for plain-HTTP local use;
``axhub_csrf``: readable by the page's script, echoed in ``X-CSRF-Token``).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axhub.api.deps import AppState, Principal, app_state, authenticate
from axhub.api.errors import ApiError
from axhub.api.security import CSRF_COOKIE, SESSION_COOKIE, SESSION_MAX_AGE_S
from axhub.api.signin import SignedIn, sign_in
from axhub.store import accounts_repo

LOGIN_COOKIE = "axhub_login"


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (Origin, else Referer).

    Browsers send Origin on every cross-site POST; a request with neither header is not from a
    browser page (curl, tests) and has no ambient credentials to abuse.
    """
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source != "null"
    parsed = urlsplit(source)
    host = request.headers.get("host", "")
    return parsed.netloc == host


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


def check_credentials(
    state: AppState, email: str, password: str, address: str | None, company: str | None = None
) -> SignedIn | None:
    """The account for a correct e-mail and password of an active account, else None; a
    throttled attempt raises ApiError 429 (the form shows it with the wait)."""
    try:
        return sign_in(state, email, password, address, company)
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise


def end_session(request: Request) -> None:
    """Sign-out ends the user's sessions server-side, not just in this browser."""
    try:
        principal = authenticate(request)
    except ApiError:
        return
    if principal.via == "session" and principal.user_id:
        with app_state(request).db.session() as s:
            user = accounts_repo.user_by_id(s, principal.user_id)
            if user is not None:
                accounts_repo.end_sessions(user)


def set_session_cookies(request: Request, response: Response, user_id: str, version: int = 0) -> None:
    state = app_state(request)
    cookie, csrf = state.signer.issue(user_id, version)
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

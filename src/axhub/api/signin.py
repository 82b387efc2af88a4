"""Checking an e-mail and password, shared by the API's ``/auth/login`` and the dashboard's form.

Order matters: the throttle is asked first (a throttled attempt costs no hashing), then the
password is verified inside a bounded argon2 slot, then the outcome is counted. Wrong e-mail,
wrong password and inactive account give the same 401; the throttle locks e-mails whether or not
they exist, so neither the answer nor its timing tells which accounts exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from axhub.api.deps import AppState
from axhub.api.errors import ApiError
from axhub.api.security import HashBusy, verify_password
from axhub.store import accounts_repo


@dataclass(frozen=True)
class SignedIn:
    user_id: str
    org_id: str
    role: str
    session_version: int


def too_many(retry_after: int, message: str = "too many sign-in attempts") -> ApiError:
    return ApiError(
        429,
        "too_many_requests",
        f"{message}; try again in {retry_after} s",
        hint="wait before retrying; an administrator can reset your password",
        details={"retry_after_s": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def sign_in(state: AppState, email: str, password: str, address: str | None) -> SignedIn:
    """The account for a right e-mail and password, else ApiError 401 (or 429 when throttled)."""
    guard = state.login_guard
    wait = guard.retry_after(email, address)
    if wait:
        raise too_many(wait)
    with state.db.session() as s:
        user = accounts_repo.user_by_email(s, email)
        try:
            ok = verify_password(user.password_hash if user else None, password)
        except HashBusy:
            raise too_many(1, "the server is busy checking other sign-ins") from None
        if user is None or not ok or not user.is_active:
            guard.failed(email, address)
            raise ApiError(401, "unauthorized", "wrong e-mail or password")
        guard.succeeded(email)
        return SignedIn(user.id, user.org_id, user.role, user.session_version)

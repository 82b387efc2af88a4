"""Checking an e-mail and password, shared by the API's ``/auth/login`` and the dashboard's form.

Order matters: the throttle is asked first (a throttled attempt costs no hashing), then the
password is verified inside a bounded argon2 slot, then the outcome is counted. Wrong e-mail,
wrong password and inactive account give the same 401; the throttle locks e-mails whether or not
they exist, so neither the answer nor its timing tells which accounts exist.

Sign-in names are per company: ``company`` (its slug) picks the account. Without it, the password
is checked against every account with that e-mail (oldest first) and the first that matches signs
in, so one person with accounts in two companies reaches each with its own password; with
``AXHUB_SIGNIN_REQUIRES_COMPANY`` it must be given (nothing then depends on other companies).
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


MAX_CANDIDATES = 8  # accounts one e-mail may reach without naming the company


def sign_in(
    state: AppState, email: str, password: str, address: str | None, company: str | None = None
) -> SignedIn:
    """The account for a right e-mail and password, else ApiError 401 (or 429 when throttled)."""
    guard = state.login_guard
    wait = guard.retry_after(email, address)
    if wait:
        raise too_many(wait)
    look_up = bool(company) or not state.settings.signin_requires_company
    with state.db.session() as s:  # closed before hashing: no connection held for argon2
        found = [
            (SignedIn(u.id, u.org_id, u.role, u.session_version), u.password_hash, u.is_active)
            for u in (accounts_repo.users_by_email(s, email, company) if look_up else [])[:MAX_CANDIDATES]
        ]
    match = None
    try:
        if not found:
            verify_password(None, password)  # same work as a real check
        for who, password_hash, active in found:
            if verify_password(password_hash, password) and active:
                match = who
                break
    except HashBusy:
        raise too_many(1, "the server is busy checking other sign-ins") from None
    if match is None:
        guard.failed(email, address)
        raise ApiError(401, "unauthorized", "wrong e-mail or password")
    guard.succeeded(email)
    return match

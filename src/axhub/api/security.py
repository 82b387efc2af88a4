"""Credentials: argon2 passwords, hashed API keys, signed session cookies with CSRF tokens.

API keys look like ``axk_<8-char prefix>_<43-char secret>``. The database keeps the prefix (to
find the row with an index, and to show people which key is which) and the SHA-256 of the whole
key. A fast hash is right here, unlike for passwords: the secret is 256 random bits, so there is
nothing to brute-force from a leaked hash, and a slow hash (argon2: tens of ms) on every request
would cap a gateway at a few dozen requests per second. Comparison is constant-time.

Browser sessions are a signed, timestamped cookie (``itsdangerous``) holding the user id, the
user's session generation and a CSRF token (raising the generation ends every session of that
user: sign-out, password change, an administrator's action); it is HttpOnly, Secure and
SameSite=Strict. A second, readable cookie carries the same CSRF token for the page's JavaScript
to echo in ``X-CSRF-Token`` on unsafe methods (double-submit; the token is bound to the signed
session, so a forged cookie does not help).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

T = TypeVar("T")
KEY_PREFIX = "axk_"
SESSION_COOKIE = "axhub_session"
CSRF_COOKIE = "axhub_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600

_hasher = PasswordHasher()
# argon2 costs ~64 MiB and tens of ms of CPU per call, by design. Unbounded, 40 parallel wrong
# passwords took 2.7 GB and made everyone else wait seconds. Now at most HASH_SLOTS hashes run at
# once (in low-priority threads) and at most HASH_QUEUE more wait for one; any further caller is
# told to retry at once (HashBusy -> 429) instead of holding a request thread while it waits,
# which under a flood had starved every other request of threads.
HASH_SLOTS = max(1, int(os.environ.get("AXHUB_HASH_SLOTS", str(max(1, (os.cpu_count() or 2) // 4)))))
HASH_QUEUE = 2 * HASH_SLOTS
_hash_slots = threading.BoundedSemaphore(HASH_SLOTS + HASH_QUEUE)


HASH_NICE_STEP = 10


def _lower_priority() -> None:
    # Hashing threads run 10 nice steps below the server (Linux schedules threads individually,
    # and argon2's own lane threads inherit it): under a sign-in flood every other request gets
    # the CPU first. Relative, not absolute: a server started under `nice 10` would otherwise
    # hash at its own priority, and argon2's four lanes then took the CPU from the event loop.
    with contextlib.suppress(OSError, AttributeError):
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + HASH_NICE_STEP))


_hash_pool = ThreadPoolExecutor(HASH_SLOTS, thread_name_prefix="argon2", initializer=_lower_priority)


class HashBusy(Exception):
    """Every password-hashing slot is busy and its short queue is full."""


def hashing_full() -> bool:
    """True when no sign-in could get a hashing place now (a cheap pre-check, no locking)."""
    return _hash_slots._value <= 0


@contextmanager
def _hash_slot(wait: bool) -> Iterator[None]:
    # Sign-in (anyone may call it) never waits for a place; setting a password (signed-in
    # administrators, the CLI) waits its turn.
    if not _hash_slots.acquire(blocking=wait):
        raise HashBusy
    try:
        yield
    finally:
        _hash_slots.release()


def _in_pool(fn: Callable[[], T], *, wait: bool) -> T:
    with _hash_slot(wait):
        return _hash_pool.submit(fn).result()


# A valid hash of a random password: verifying against it when the user does not exist keeps
# the response time the same, so login timing does not tell which e-mails have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _in_pool(lambda: _hasher.hash(password), wait=True)


def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return _in_pool(verify, wait=False)


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    key_hash: str


def new_api_key() -> NewKey:
    prefix = KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, key_hash=hash_key(key))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The lookup prefix (``axk_xxxxxxxx``) of a well-formed key, else None."""
    n = len(KEY_PREFIX) + 8
    if not key.startswith(KEY_PREFIX) or len(key) < n + 2 or key[n] != "_":
        return None
    return key[:n]


def keys_match(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), key_hash)


def load_or_create_secret(home: Path) -> bytes:
    """The server's signing secret: kept in ``<home>/secret_key`` (mode 600), made on first start."""
    path = home / "secret_key"
    if path.is_file():
        return path.read_bytes().strip()
    home.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    path.write_bytes(secret)
    path.chmod(0o600)
    return secret


class SessionSigner:
    def __init__(self, secret: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="axhub-session")

    def issue(self, user_id: str, version: int = 0) -> tuple[str, str]:
        """A session cookie value and its CSRF token. ``version`` is the user's session generation
        when it was issued; the cookie is only honoured while the user still has that generation."""
        csrf = secrets.token_urlsafe(24)
        return self._serializer.dumps({"uid": user_id, "csrf": csrf, "sv": version}), csrf

    def read(self, value: str) -> dict[str, Any] | None:
        try:
            data = self._serializer.loads(value, max_age=SESSION_MAX_AGE_S)
        except (BadSignature, SignatureExpired):
            return None
        return data if isinstance(data, dict) and "uid" in data and "csrf" in data else None

"""Secrets a hub must keep but never show, encrypted at rest: SMTP passwords of notification
channels (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key is never in the database, so a copy of the database (a backup, a dump handed to
support, a read-only SQL injection) holds no usable password. It comes from
``AXHUB_SECRETS_KEY`` (a Fernet key; the same on every machine of a scaled hub) or else from
``<AXHUB_HOME>/secrets.key``, made on first use (mode 600). Losing the key loses the sealed
passwords (admins enter them again); rotating it means re-entering them.

One process serves one hub: the API's app factory calls ``use`` with its settings, and code
that only has the database (notifications sent by a worker) calls ``current``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from axhub.core.errors import AxHubError

if TYPE_CHECKING:
    from axhub.core.settings import Settings

PREFIX = "fernet:"
KEY_FILE = "secrets.key"

_current: list[SecretBox] = []
_lock = threading.Lock()


class SecretBox:
    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise AxHubError(
                "the secrets key is not a valid Fernet key",
                hint="AXHUB_SECRETS_KEY must be 32 url-safe base64 bytes "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')",
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secrets_key:
            return cls(settings.secrets_key.encode())
        return cls(_key_file(settings.home))

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken

        if not sealed.startswith(PREFIX):
            raise AxHubError("not a sealed secret")
        try:
            return self._fernet.decrypt(sealed[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise AxHubError(
                "a stored password cannot be decrypted with this hub's secrets key",
                hint="the key changed (AXHUB_SECRETS_KEY or secrets.key); enter the password again",
            ) from None


def _key_file(home: Path) -> bytes:
    path = home / KEY_FILE
    if not path.is_file():
        from cryptography.fernet import Fernet

        home.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes starting at once agree on one key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
                fh.flush()
                os.fsync(fh.fileno())
    return path.read_bytes().strip()


def use(settings: Settings) -> SecretBox:
    """Make this hub's box the process's (called by the API's app factory)."""
    box = SecretBox.from_settings(settings)
    with _lock:
        _current[:] = [box]
    return box


def current() -> SecretBox:
    """The process's box: the one ``use`` set, else from the environment's settings."""
    with _lock:
        if _current:
            return _current[0]
    from axhub.core.settings import get_settings

    return use(get_settings())

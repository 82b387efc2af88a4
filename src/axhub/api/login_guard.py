"""Sign-in throttling: per account and per client address, with exponential back-off.

Signing in is the one expensive thing anybody may do without credentials (argon2 by design), so
it is the cheapest denial of service there is. Each e-mail and each address gets a few free
failures; after that every further failure doubles how long that e-mail or address must wait,
up to ``max_wait_s``. A throttled attempt is refused with 429 and ``Retry-After`` *before* any
password hashing, so a flood costs the server a dictionary look-up per request. A success clears
the account's count (not the address's: one right password must not launder a guessing spree).

``LoginGuard`` counts in its own process; ``SharedLoginGuard`` (what the API uses) keeps the
counts in the metadata database, so N API processes, on one machine or several, still allow
only the same few guesses. Locking is per e-mail whether or not the account exists, so the
answer never tells which e-mails have accounts.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from axhub.store import login_counts
from axhub.store.db import Database


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0


class LoginGuard:
    def __init__(
        self,
        *,
        account_free: int = 5,
        address_free: int = 20,
        base_wait_s: float = 1.0,
        max_wait_s: float = 900.0,
        forget_after_s: float = 3600.0,
        max_entries: int = 100_000,
        clock: object = None,
    ) -> None:
        self.account_free = account_free
        self.address_free = address_free
        self.base_wait_s = base_wait_s
        self.max_wait_s = max_wait_s
        self.forget_after_s = forget_after_s
        self.max_entries = max_entries
        self._now = clock if callable(clock) else time.monotonic
        self._counts: dict[str, _Count] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(email: str, address: str | None) -> tuple[str, str | None]:
        return "e:" + email.strip().lower(), ("a:" + address) if address else None

    def cached_retry_after(self, email: str, address: str | None) -> int:
        """``retry_after`` from what this process already knows (no I/O: safe on the event loop)."""
        return self.retry_after(email, address)

    def retry_after(self, email: str, address: str | None) -> int:
        """Seconds the caller must wait before trying again (0: go ahead)."""
        now = self._now()
        wait = 0.0
        with self._lock:
            for key in self._keys(email, address):
                count = self._counts.get(key) if key else None
                if count is not None and count.until > now:
                    wait = max(wait, count.until - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, email: str, address: str | None) -> None:
        now = self._now()
        account, addr = self._keys(email, address)
        with self._lock:
            if len(self._counts) >= self.max_entries:
                self._forget_old(now)
            for key, free in ((account, self.account_free), (addr, self.address_free)):
                if key is None:
                    continue
                count = self._counts.setdefault(key, _Count())
                if now - count.last > self.forget_after_s:
                    count.failures = 0
                count.failures += 1
                count.last = now
                if count.failures >= free:
                    wait = self.base_wait_s * 2 ** (count.failures - free)
                    count.until = now + min(self.max_wait_s, wait)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._counts.pop(self._keys(email, None)[0], None)

    def _forget_old(self, now: float) -> None:
        stale = [k for k, c in self._counts.items() if now - c.last > self.forget_after_s and c.until < now]
        for key in stale:
            del self._counts[key]
        if len(self._counts) >= self.max_entries:
            # Still full (a flood of distinct e-mails): keep the locked ones, drop the rest.
            for key in [k for k, c in self._counts.items() if c.until < now]:
                del self._counts[key]


class SharedLoginGuard(LoginGuard):
    """The same rules with the counts in the metadata database (``store/login_counts.py``).

    Each process also remembers the locks it has seen, so a flood against a locked e-mail or
    address is refused from memory (``cached_retry_after``) without a database round trip.
    """

    SWEEP_EVERY = 500  # failures between deletions of stale counts

    def __init__(self, db: Database, **kwargs: Any) -> None:
        super().__init__(clock=time.time, **kwargs)  # wall clock: the one all processes share
        self.db = db
        self._since_sweep = 0

    def cached_retry_after(self, email: str, address: str | None) -> int:
        return super().retry_after(email, address)

    def retry_after(self, email: str, address: str | None) -> int:
        known = super().retry_after(email, address)
        if known:
            return known
        now = self._now()
        keys = [k for k in self._keys(email, address) if k]
        with self.db.session() as s:
            until = {k: login_counts.locked_until(s, [k]) for k in keys}
        for key, when in until.items():
            if when > now:
                self._remember(key, when)
        wait = max(until.values(), default=0.0) - now
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, email: str, address: str | None) -> None:
        now = self._now()
        account, addr = self._keys(email, address)
        with self.db.session() as s:
            for key, free in ((account, self.account_free), (addr, self.address_free)):
                if key is None:
                    continue
                until = login_counts.count_failure(
                    s,
                    key,
                    now=now,
                    free=free,
                    base_wait_s=self.base_wait_s,
                    max_wait_s=self.max_wait_s,
                    forget_after_s=self.forget_after_s,
                )
                if until > now:
                    self._remember(key, until)
            self._since_sweep += 1
            if self._since_sweep >= self.SWEEP_EVERY:
                self._since_sweep = 0
                login_counts.forget_stale(s, now=now, forget_after_s=self.forget_after_s)

    def succeeded(self, email: str) -> None:
        super().succeeded(email)
        with self.db.session() as s:
            login_counts.clear(s, self._keys(email, None)[0])

    def _remember(self, key: str, until: float) -> None:
        with self._lock:
            if len(self._counts) >= self.max_entries:
                self._forget_old(self._now())
            count = self._counts.setdefault(key, _Count())
            count.until = max(count.until, until)
            count.last = self._now()

"""Caps on open server-sent-event streams, per principal and per organisation.

A stream is cheap while idle (it holds no database connection between polls: each poll opens a
short session in a worker thread and closes it), but each open stream still costs a poll every
interval; without a cap one viewer could open hundreds and crowd out everyone else. Past the
cap the caller gets 429 with ``Retry-After``, before any streaming starts.

A slot is given back when its stream ends; as a safety net against a stream whose body never
ran (a client gone before the first byte), every slot also expires after the stream's own
maximum life plus a minute.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator

from axhub.api.errors import ApiError

PER_PRINCIPAL = 6
PER_ORG = 48


class StreamSlots:
    def __init__(
        self, per_principal: int = PER_PRINCIPAL, per_org: int = PER_ORG, what: str = "live streams open"
    ) -> None:
        self.per_principal = per_principal
        self.per_org = per_org
        self.what = what
        self._open: dict[int, tuple[str, str, float]] = {}  # slot -> (who, org, expires)
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def _count(self, now: float, who: str | None = None, org: str | None = None) -> int:
        return sum(
            1
            for w, o, expires in self._open.values()
            if expires > now and (who is None or w == who) and (org is None or o == org)
        )

    def take(self, who: str, org: str, max_life_s: float) -> int:
        now = time.monotonic()
        with self._lock:
            for slot in [s for s, (_, _, e) in self._open.items() if e <= now]:
                del self._open[slot]
            if self._count(now, who=who) >= self.per_principal:
                raise _busy(f"you already have {self.per_principal} {self.what}")
            if self._count(now, org=org) >= self.per_org:
                raise _busy(f"your organisation already has {self.per_org} {self.what}")
            slot = next(self._ids)
            self._open[slot] = (who, org, now + max_life_s + 60)
            return slot

    def give_back(self, slot: int) -> None:
        with self._lock:
            self._open.pop(slot, None)

    def held(self, org: str) -> int:
        with self._lock:
            return self._count(time.monotonic(), org=org)

    async def guard(self, slot: int, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``body``, giving the slot back however the stream ends (finished, error, disconnect)."""
        try:
            async for chunk in body:
                yield chunk
        finally:
            self.give_back(slot)


def _busy(message: str) -> ApiError:
    return ApiError(
        429,
        "too_many_requests",
        message,
        hint="wait for one to finish (or close a dashboard tab), then retry",
        headers={"Retry-After": "5"},
    )

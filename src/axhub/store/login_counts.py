"""Failed sign-in counts in the metadata database, so every API process enforces one limit.

One row per throttled key (sha256 of ``e:<email>`` / ``a:<address>``). A failure is counted with
an ``UPDATE ... SET failures = failures + 1`` (the row lock, or SQLite's write lock, makes
concurrent failures from several processes each count), then the wait is set from the new count
in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axhub.store.models import LoginThrottleRow


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def locked_until(session: Session, keys: Iterable[str]) -> float:
    """The latest ``until`` (Unix seconds) among ``keys``; 0 when none is locked."""
    hashed = [key_hash(k) for k in keys]
    if not hashed:
        return 0.0
    found = session.scalars(select(LoginThrottleRow.until_at).where(LoginThrottleRow.key.in_(hashed)))
    return max(found, default=0.0)


def count_failure(
    session: Session,
    key: str,
    *,
    now: float,
    free: int,
    base_wait_s: float,
    max_wait_s: float,
    forget_after_s: float,
) -> float:
    """Count one failure of ``key``; returns until when it is locked (Unix seconds, 0: not locked)."""
    hashed = key_hash(key)
    bump = (
        update(LoginThrottleRow)
        .where(LoginThrottleRow.key == hashed)
        .values(
            failures=case(
                (LoginThrottleRow.last_at < now - forget_after_s, 1), else_=LoginThrottleRow.failures + 1
            ),
            last_at=now,
        )
    )
    if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(LoginThrottleRow(key=hashed, failures=1, last_at=now, until_at=0.0))
        except IntegrityError:  # another process inserted it first: count on its row
            session.execute(bump)
    failures = session.scalars(select(LoginThrottleRow.failures).where(LoginThrottleRow.key == hashed)).one()
    if failures < free:
        return 0.0
    until = now + min(max_wait_s, base_wait_s * 2 ** min(failures - free, 40))
    session.execute(update(LoginThrottleRow).where(LoginThrottleRow.key == hashed).values(until_at=until))
    return until


def clear(session: Session, key: str) -> None:
    session.execute(delete(LoginThrottleRow).where(LoginThrottleRow.key == key_hash(key)))


def forget_stale(session: Session, *, now: float, forget_after_s: float) -> int:
    """Drop counts nobody touched for ``forget_after_s`` and no longer locked."""
    result = session.execute(
        delete(LoginThrottleRow).where(
            LoginThrottleRow.last_at < now - forget_after_s, LoginThrottleRow.until_at < now
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]

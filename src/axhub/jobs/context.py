"""What a running handler sees: progress, logs, cancellation, its organisation's data."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from axhub.core.settings import Settings
from axhub.jobs.queue import JobQueue, Lease
from axhub.store.db import Database


class JobCancelled(Exception):
    """Someone cancelled the job; the handler stops at its next checkpoint."""


class LeaseLost(Exception):
    """Another worker owns this job now (this one was presumed dead): stop, commit nothing."""


class JobContext:
    # Progress is written at most this often (a tight training loop must not hammer the DB).
    PROGRESS_INTERVAL_S = 0.25

    def __init__(self, queue: JobQueue, lease: Lease, settings: Settings, workdir: Path) -> None:
        self.queue = queue
        self.lease = lease
        self.settings = settings
        self.workdir = workdir
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._last_progress = 0.0

    @property
    def db(self) -> Database:
        return self.queue.db

    def check(self) -> None:
        """Raise if the job was cancelled or the lease was lost (call between steps)."""
        if self.lost.is_set():
            raise LeaseLost(self.lease.job_id)
        if self.cancelled.is_set():
            raise JobCancelled(self.lease.job_id)

    def progress(self, fraction: float, message: str | None = None) -> None:
        now = time.monotonic()
        if message:
            self.log(message)
        if now - self._last_progress >= self.PROGRESS_INTERVAL_S or fraction >= 1.0 or message:
            self._last_progress = now
            self._apply(self.queue.heartbeat(self.lease, progress=fraction))
        self.check()

    def log(self, message: str, level: str = "info") -> None:
        self.queue.log(self.lease, message, level)

    def beat(self) -> None:
        self._apply(self.queue.heartbeat(self.lease))

    def _apply(self, beat: object) -> None:
        alive = getattr(beat, "alive", True)
        if not alive:
            self.lost.set()
        elif getattr(beat, "cancel_requested", False):
            self.cancelled.set()

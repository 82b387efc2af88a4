"""The embedded executor: a pool of worker threads in this process, polling the queue.

``notify()`` wakes idle workers at once (the API calls it after a submit), so a job starts
within milliseconds instead of one poll interval later.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter

from axhub.core.settings import Settings
from axhub.jobs.queue import JobQueue
from axhub.jobs.runner import run_leased_job

log = logging.getLogger(__name__)


class LocalExecutor:
    def __init__(
        self,
        queue: JobQueue,
        settings: Settings,
        *,
        workers: int = 2,
        poll_interval: float = 0.5,
        resource_classes: tuple[str, ...] = ("cpu", "gpu"),
        name: str | None = None,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.workers = workers
        self.poll_interval = poll_interval
        self.resource_classes = resource_classes
        self.name = name or f"local-{os.getpid()}"
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        # worker id -> organisation of the job it runs. With two or more workers, one
        # organisation may hold all but one: a company's long jobs never make another's wait
        # for a worker (the last free one serves everybody else).
        self._serving: dict[str, str] = {}
        self._serving_lock = threading.Lock()
        self._leasing = threading.Lock()

    def start(self) -> LocalExecutor:
        for i in range(self.workers):
            thread = threading.Thread(target=self._loop, args=(f"{self.name}-{i}",), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.notify()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()

    def __enter__(self) -> LocalExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _crowding(self) -> set[str]:
        """Organisations that already hold all but one of this pool's workers."""
        if self.workers < 2:
            return set()
        with self._serving_lock:
            held = Counter(self._serving.values())
        return {org for org, n in held.items() if n >= self.workers - 1}

    def _loop(self, worker_id: str) -> None:
        while not self._stop.is_set():
            # One worker leases at a time, so two cannot both see a free slot for one organisation.
            with self._leasing:
                try:
                    lease = self.queue.lease(worker_id, self.resource_classes, exclude_orgs=self._crowding())
                except Exception:
                    log.exception("leasing a job failed; retrying")
                    lease = None
                if lease is not None:
                    with self._serving_lock:
                        self._serving[worker_id] = lease.org_id
            if lease is None:
                with self._wake:
                    if not self._stop.is_set():
                        self._wake.wait(self.poll_interval)
                continue
            try:
                outcome = run_leased_job(self.queue, lease, self.settings)
            finally:
                with self._serving_lock:
                    self._serving.pop(worker_id, None)
            self.outcomes[outcome] += 1

"""Scale-out executor: the hub leases jobs from the queue and runs each one as a Ray task.

The remote task runs the very same :func:`~axhub.jobs.runner.run_leased_job` as the local pool
(heartbeats included), against the same metadata database and data root, which on a data-center
cluster are PostgreSQL and shared storage. If a Ray worker dies, its lease lapses and the queue
hands the job out again, exactly as for a crashed local worker. Jobs asking for the ``gpu``
class are scheduled on Ray with ``num_gpus=1``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from axhub.core.settings import Settings
from axhub.jobs.queue import JobQueue, Lease

log = logging.getLogger(__name__)


def _run_remote(settings_json: dict[str, Any], lease_fields: dict[str, Any], lease_seconds: float) -> str:
    import ray

    from axhub.jobs.queue import JobQueue, Lease
    from axhub.jobs.runner import run_leased_job
    from axhub.store.db import Database

    settings = Settings(**settings_json)
    db = Database(settings.database_url)
    try:
        queue, lease = JobQueue(db, lease_seconds=lease_seconds), Lease(**lease_fields)
        # Which machine ran which attempt, for the operator (and the scale-out tests).
        queue.log(lease, f"running on Ray node {ray.get_runtime_context().get_node_id()}")
        return run_leased_job(queue, lease, settings)
    finally:
        db.dispose()


def _run_remote_gpu(settings_json: dict[str, Any], lease_fields: dict[str, Any], lease_seconds: float) -> str:
    """The same, for ``gpu`` jobs: Ray gives the task one GPU through ``CUDA_VISIBLE_DEVICES``
    and ``max_calls=1`` runs each in a fresh worker process, so CUDA is initialised with that
    task's GPU and its memory is freed when the task ends."""
    return _run_remote(settings_json, lease_fields, lease_seconds)


class RayExecutor:
    """Leases up to ``max_in_flight`` jobs at a time and runs them on the connected Ray cluster."""

    def __init__(
        self,
        queue: JobQueue,
        settings: Settings,
        *,
        max_in_flight: int = 2,
        poll_interval: float = 0.2,
        resource_classes: tuple[str, ...] = ("cpu", "gpu"),
        name: str = "ray",
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("connect to Ray first: ray.init(address=...) or ray.init() for a local one")
        self._ray = ray
        self._remote = ray.remote(max_retries=0)(_run_remote)
        self._remote_gpu = ray.remote(max_retries=0, num_gpus=1, max_calls=1)(_run_remote_gpu)
        self.queue = queue
        self.settings = settings
        self.max_in_flight = max_in_flight
        self.poll_interval = poll_interval
        self.resource_classes = resource_classes
        self.name = name
        self.outcomes: dict[str, int] = {}
        self._in_flight: dict[Any, Lease] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RayExecutor:
        self._thread = threading.Thread(target=self._loop, name="ray-dispatcher", daemon=True)
        self._thread.start()
        return self

    def notify(self) -> None:  # the dispatcher polls quickly; nothing to wake
        return None

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def __enter__(self) -> RayExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _submit(self, lease: Lease) -> None:
        remote = self._remote_gpu if lease.resource_class == "gpu" else self._remote
        ref = remote.options(num_cpus=1).remote(
            self.settings.model_dump(mode="json"), dataclasses.asdict(lease), self.queue.lease_seconds
        )
        self._in_flight[ref] = lease

    def _loop(self) -> None:
        while not self._stop.is_set() or self._in_flight:
            while not self._stop.is_set() and len(self._in_flight) < self.max_in_flight:
                lease = self.queue.lease(self.name, self.resource_classes)
                if lease is None:
                    break
                self._submit(lease)
            if not self._in_flight:
                self._stop.wait(self.poll_interval)
                continue
            done, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=self.poll_interval)
            for ref in done:
                lease = self._in_flight.pop(ref)
                try:
                    outcome = str(self._ray.get(ref))
                except Exception as exc:  # the task or its worker died: give the job back
                    log.warning("Ray task for %s failed: %s", lease.job_id, exc)
                    self.queue.fail(lease, f"Ray task failed: {exc}", retry=True)
                    outcome = "retry"
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

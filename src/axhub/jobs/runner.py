"""Run one leased job: heartbeats in the background, the handler, then exactly one outcome.

This is the code every executor runs (the local pool in a thread, Ray in a remote task), so a
spec behaves the same wherever it runs.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

from pydantic import ValidationError

from axhub.core.errors import AxHubError
from axhub.core.settings import Settings
from axhub.jobs.context import JobCancelled, JobContext, LeaseLost
from axhub.jobs.queue import JobQueue, Lease

log = logging.getLogger(__name__)


def run_leased_job(queue: JobQueue, lease: Lease, settings: Settings) -> str:
    """Run ``lease``'s job to an end state; returns it ('succeeded', 'failed', 'retry',
    'cancelled' or 'lost')."""
    with tempfile.TemporaryDirectory(prefix=f"axhub-{lease.job_id}-") as tmp:
        ctx = JobContext(queue, lease, settings, Path(tmp))
        stop = threading.Event()
        # Renew the lease a few times per lease period, so one slow DB round trip never lets
        # it lapse while the worker is alive.
        interval = max(0.05, queue.lease_seconds / 4)

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    ctx.beat()
                except Exception:  # a DB hiccup: try again next beat, the lease has slack
                    log.warning("heartbeat for %s failed", lease.job_id, exc_info=True)
                if ctx.lost.is_set():
                    return

        heart = threading.Thread(target=beat, name=f"heartbeat-{lease.job_id}", daemon=True)
        heart.start()
        try:
            from axhub.core.cancel import cancellable
            from axhub.jobs.handlers import run_handler

            # Model code calls core.cancel.checkpoint() between epochs/trees/folds: a cancel
            # seen by the heartbeat then stops a running fit, not only the steps around it.
            with cancellable(ctx.check):
                outcome = run_handler(ctx)
            ctx.check()
            if queue.complete(lease, outcome.result, outcome.on_commit):
                return "succeeded"
            return "lost"
        except LeaseLost:
            return "lost"
        except JobCancelled:
            queue.mark_cancelled(lease)
            return "cancelled"
        except (AxHubError, ValidationError, ValueError, KeyError, TypeError) as exc:
            # Bad input or a bad spec fails the same way every time: no retry.
            queue.fail(lease, f"{type(exc).__name__}: {exc}", retry=False)
            return "failed"
        except Exception as exc:
            log.exception("job %s crashed", lease.job_id)
            retried = queue.fail(lease, f"{type(exc).__name__}: {exc}", retry=True)
            return "retry" if retried else "lost"
        finally:
            stop.set()
            heart.join(timeout=5)

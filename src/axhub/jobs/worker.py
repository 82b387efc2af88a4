"""A stand-alone worker process: ``python -m axhub.jobs.worker`` (or ``axhub serve --worker``).

Runs a :class:`LocalExecutor` against a database until SIGTERM/SIGINT. Several such processes
on several machines can share one PostgreSQL queue.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from axhub.core.settings import Settings
from axhub.jobs.executors.local import LocalExecutor
from axhub.jobs.queue import JobQueue
from axhub.store.db import Database


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="AX Hub job worker")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--lease-seconds", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.home:
        overrides["home"] = args.home
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = Settings(**overrides)  # type: ignore[arg-type]
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    executor = LocalExecutor(
        JobQueue(db, lease_seconds=args.lease_seconds),
        settings,
        workers=args.workers,
        poll_interval=args.poll_interval,
        name=args.name,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    executor.start()
    print(f"worker {executor.name} ready", flush=True)
    done.wait()
    executor.stop()


if __name__ == "__main__":
    main()

"""A real AX Hub server process (uvicorn) for tests where the in-process TestClient hides the bug.

The TestClient runs the app in the test's own event loop and waits for the whole ASGI call,
including work FastAPI does after the response is sent; a real server answers the client first.
Races between "answered" and "saved", connection pools, concurrency limits and timing only show
against a separate process over a socket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _api_helpers import create_accounts
from axhub.store.db import Database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    url: str
    home: Path
    db: Database
    proc: subprocess.Popen[bytes]
    users: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, headers: dict[str, str] | None = None) -> httpx.Client:
        auth = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers={**auth, **(headers or {})}, timeout=30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def start_server(
    home: Path, database_url: str, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    src = Path(__file__).resolve().parents[1] / "src"
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "AXHUB_HOME": str(home),
        "AXHUB_DATABASE_URL": database_url,
        "AXHUB_SERVE_JOB_WORKERS": "0",
        "AXHUB_SERVE_SECURE_COOKIES": "0",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "axhub.api.main:app_from_env"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


@contextmanager
def live_server(home: Path, database_url: str, *, env: dict[str, str] | None = None) -> Iterator[Live]:
    """Accounts as in ``make_hub`` (acme/beta/operator with keys), then uvicorn on a free port."""
    home.mkdir(parents=True, exist_ok=True)
    db = Database(database_url)
    db.migrate()
    users, keys = create_accounts(db)
    port = free_port()
    proc = start_server(home, database_url, port, env)
    live = Live(url=f"http://127.0.0.1:{port}", home=home, db=db, proc=proc, users=users, keys=keys)
    try:
        yield live
    finally:
        # ``live.proc``, not ``proc``: a test that restarts the server replaces it, and the
        # restarted one must not outlive the test (it did, holding its port and files).
        if live.proc.poll() is None:
            live.proc.send_signal(signal.SIGTERM)
            try:
                live.proc.wait(10)
            except subprocess.TimeoutExpired:
                live.proc.kill()
        db.dispose()

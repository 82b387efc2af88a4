"""A private Mosquitto broker on a free port, for benchmarks and tests that restart it.

The system broker (127.0.0.1:1883) is shared and is never stopped; a broker that must be
killed and restarted, or tuned (queue limits), is started here with its own config and
persistence directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0, *, up: bool = True) -> bool:
    """Wait until ``host:port`` accepts connections (``up``) or refuses them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                if up:
                    return True
        except OSError:
            if not up:
                return True
        time.sleep(0.05)
    return False


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
    )


def stop_process(proc: subprocess.Popen[Any], timeout: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and wait up to ``timeout`` s; a process still running then is SIGKILLed."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class MosquittoBroker:
    """``mosquitto -c <conf>`` on 127.0.0.1:<port>, with persistence under ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None, *, max_inflight: int = 1000) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto not found; install it with 'apt-get install mosquitto'")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.workdir / "mosquitto.conf"
        # Unlimited queues for offline persistent sessions: the tests and the benchmark check
        # that nothing is lost, so the broker itself must not drop messages on a full queue.
        self.conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.workdir}/",
                    "autosave_interval 1",
                    "max_queued_messages 0",
                    "max_queued_bytes 0",
                    f"max_inflight_messages {max_inflight}",
                    f"log_dest file {self.workdir}/mosquitto.log",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    # Run as root, mosquitto would switch to user 'mosquitto' and could not
                    # write its persistence file in our directory.
                    *(["user root"] if os.geteuid() == 0 else []),
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_port("127.0.0.1", self.port, timeout):
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.workdir}")
        return self

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM saves its persistence file; ``kill`` does not)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_process(proc, timeout, signal.SIGKILL if kill else signal.SIGTERM)
        wait_port("127.0.0.1", self.port, timeout, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""Independent protocol peers (Node.js programs from the npm registry) run as real processes.

``scripts/peers.sh`` installs them into ``tests/peers/node_modules`` from the committed
package-lock (``.ci/run`` runs it through ``scripts/services.sh``). Where Node.js or the
packages cannot be installed, the tests that need them skip and say how to install them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

PEERS = Path(__file__).parent / "peers"


def require_node_peers() -> str:
    """The node binary, or skip the test with what to run."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "Node.js is not installed: run scripts/peers.sh (apt nodejs npm) for the independent peers"
        )
    if not (PEERS / "node_modules" / "node-opcua").is_dir():
        pytest.skip("the npm peers are not installed: run scripts/peers.sh (npm ci in tests/peers)")
    return node


class NodePeer:
    """``node <script> <args>`` in tests/peers; waits for its ``READY`` line."""

    def __init__(self, script: str, *args: str, ready_timeout: float = 60.0) -> None:
        self.node = require_node_peers()
        self.script = script
        self.args = args
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> NodePeer:
        self.lines = []
        self.proc = subprocess.Popen(
            [self.node, str(PEERS / self.script), *self.args],
            cwd=PEERS,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "NODE_PATH": str(PEERS / "node_modules")},
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("READY"):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = "\n".join(self.lines[-20:])
                self.stop()
                raise RuntimeError(f"{self.script} did not start:\n{out}")
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def run_to_end(self, timeout: float = 60.0) -> list[str]:
        """For one-shot scripts (publishers): wait for the exit, fail on a non-zero status."""
        assert self.proc is not None
        self.proc.wait(timeout)
        time.sleep(0.1)
        assert self.proc.returncode == 0, "\n".join(self.lines[-20:])
        return self.lines

    def __enter__(self) -> NodePeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TcpProxy:
    """A loopback TCP proxy that can cut every connection and refuse new ones for a while:
    a network outage between AX Hub and a peer, without restarting the peer."""

    def __init__(self, target_port: int) -> None:
        import socket

        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: object, dst: object) -> None:
        import socket

        assert isinstance(src, socket.socket) and isinstance(dst, socket.socket)
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore``."""
        import socket

        self._open.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

"""The soak's OPC UA leg: a node-opcua server (``tests/peers/opcua_bench_server.js``) that is
stopped and started again on the same port, and the account of the changes it made.

Each server life appends the source timestamp (ms) of every tick (all tags changed) to its
own ticks file, so the changes made are known from the server's side, not the client's.

The worker connects over a signed channel (Basic256Sha256, Sign) with a certificate made
here: OPC UA servers hand an anonymous subscription over to a new session only on a signed
channel (Part 4, 5.13.7), and that is how a worker SIGKILLed mid-stream loses nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from axhub.bench._broker import free_port, stop_process, wait_port
from axhub.bench.opcua import PEERS, read_ready_ns
from axhub.ingest.connectors.opcua_certificate import make_client_certificate

ASSET_PREFIX = "opc"  # stored as opc-00, opc-01, ...: apart from the MQTT machines
CLIENT_URI = "urn:axhub:soak:ingest"
# Changes each tag's queue on the server holds while no worker is connected: 60 s at 10 Hz.
QUEUE_SIZE = 600


def client_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed OPC UA client certificate (with its application URI) and key, PEM."""
    return make_client_certificate(
        folder, application_uri=CLIENT_URI, common_name="axhub soak ingest", days=30
    )


def node_opcua_available() -> bool:
    return shutil.which("node") is not None and (PEERS / "node_modules" / "node-opcua").is_dir()


class OpcUaServer:
    """The bench server as a child process; ``stop`` SIGTERMs it: a planned restart (the server
    stops changing values, publishes what it holds for 1 s, then exits)."""

    def __init__(self, workdir: Path, n_tags: int, hz: float) -> None:
        if not node_opcua_available():
            raise FileNotFoundError("the OPC UA leg needs Node.js and the npm peers: run scripts/peers.sh")
        self.workdir, self.n_tags, self.hz = workdir, n_tags, hz
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives = 0
        self.ns = 1
        self.stops: list[float] = []  # epoch s at which each life was ended
        self.certificate, self.private_key = client_certificate(workdir / "client-pki")

    def _ticks(self, life: int) -> Path:
        return self.workdir / f"ticks-{life}.txt"

    def start(self, timeout: float = 120.0) -> None:
        self.lives += 1
        ready = self.workdir / f"ready-{self.lives}.json"
        Path(f"{ready}.go").write_text("go")  # tick as soon as it listens
        cmd = [
            str(shutil.which("node")),
            str(PEERS / "opcua_bench_server.js"),
            *(str(self.port), str(self.n_tags), str(self.hz), "1e9", str(ready)),
            *(str(self.workdir / "pki"), str(self._ticks(self.lives))),
        ]
        env = {**os.environ, "NODE_PATH": str(PEERS / "node_modules")}
        with (self.workdir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while (ns := read_ready_ns(ready)) is None and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the OPC UA server exited; see {self.workdir / 'server.log'}")
            time.sleep(0.1)
        if ns is None or not wait_port("127.0.0.1", self.port, 30):
            raise RuntimeError("the OPC UA server did not listen")
        self.ns = ns

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stops.append(time.time())
            stop_process(self.proc, 10)

    def mapping(self) -> dict[str, Any]:
        nodes = [
            {
                "node": f"ns={self.ns};s=line-{i // 100:02d}.tag{i % 100:03d}",
                "asset": f"{ASSET_PREFIX}-{i // 100:02d}",
                "signal": f"tag{i % 100:03d}",
            }
            for i in range(self.n_tags)
        ]
        return {
            "endpoint": f"opc.tcp://127.0.0.1:{self.port}/axhub/",
            "security_policy": "Basic256Sha256",
            "security_mode": "Sign",
            "certificate": str(self.certificate),
            "private_key": str(self.private_key),
            "publishing_interval_ms": 100,
            "queue_size": QUEUE_SIZE,
            "session_timeout_s": 60,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
            "nodes": nodes,
        }

    def assets(self) -> list[str]:
        return [f"{ASSET_PREFIX}-{k:02d}" for k in range((self.n_tags + 99) // 100)]

    def ticks_ms(self) -> list[int]:
        out: list[int] = []
        for life in range(1, self.lives + 1):
            path = self._ticks(life)
            if path.exists():
                out += [int(x) for x in path.read_text().split()]
        return out


def stored_per_tick(store: Any, org: str, assets: list[str]) -> tuple[dict[int, int], int]:
    """Stored readings per source timestamp (ms), and rows stored twice (same signal and ts)."""
    counts: dict[int, int] = {}
    duplicates = 0
    for asset in assets:
        frame = store.query(org, asset)
        if frame.empty:
            continue
        duplicates += len(frame) - len(frame.drop_duplicates(["signal", "ts"]))
        ms = frame["ts"].dt.as_unit("us").astype("int64") // 1000
        for tick, n in ms.value_counts().items():
            counts[int(tick)] = counts.get(int(tick), 0) + int(n)
    return counts, duplicates

"""A real multi-node Ray cluster on one machine: a head and worker nodes, each started with
``ray start --block`` as its own process group, so a test can SIGKILL one node (its raylet and
every worker process on it) exactly as if that machine had died.

Every port is chosen free (several test runs share this machine), token auth is off for this
throw-away local cluster, and nothing here calls ``ray stop`` (which would stop every Ray on the
machine, other people's too): nodes are ended by their process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray") if (Path(sys.executable).parent / "ray").exists() else "ray"
PER_NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_env() -> dict[str, str]:
    return {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DISABLE_IMPORT_WARNING": "1",
        "OMP_NUM_THREADS": "1",
        # A loaded CI machine can take longer than Ray's 30 s to register a node.
        "RAY_raylet_start_wait_time_s": "120",
        "RAY_gcs_rpc_server_reconnect_timeout_s": "120",
    }


class Node:
    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [RAY, "start", "--block", *args],
                env=ray_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: raylet and workers die together
            )

    def kill(self) -> None:
        """The machine dies: SIGKILL to the node's whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class RayCluster:
    """``head`` (no CPUs: it only coordinates) plus ``workers`` nodes of one CPU each; each
    worker node carries a custom resource ``node_<i>`` so a test can tell where a task ran."""

    def node_names(self) -> dict[str, str]:
        """Ray node id -> our name ('head', 'node_0', ...)."""
        import ray

        names = {}
        for info in ray.nodes():
            custom = [k for k in info["Resources"] if k in self.nodes]
            names[info["NodeID"]] = custom[0] if custom else "head"
        return names

    def __init__(self, workers: int = 2, cpus_per_worker: int = 1) -> None:
        # Unix socket paths must stay short: the session folder lives under /tmp directly.
        self.tmp = Path(tempfile.mkdtemp(prefix="axray"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, Node] = {}
        self._workers = workers
        self._cpus = cpus_per_worker

    def _ports(self) -> list[str]:
        return [f"--{name}={free_port()}" for name in PER_NODE_PORTS]

    def start(self, timeout: float = 120.0) -> RayCluster:
        common = ["--num-gpus=0", "--object-store-memory=80000000", "--disable-usage-stats"]
        self.nodes["head"] = Node(
            "head",
            [
                "--head",
                f"--port={self.port}",
                "--num-cpus=0",
                "--include-dashboard=false",
                f"--dashboard-port={free_port()}",
                f"--temp-dir={self.tmp}",
                *self._ports(),
                *common,
            ],
            self.tmp / "head.log",
        )
        self.wait_nodes(1, timeout)
        for i in range(self._workers):  # one at a time: two `ray start` at once can hang on one host
            self.add_worker(f"node_{i}")
            self.wait_nodes(2 + i, timeout)
        return self

    def add_worker(self, name: str) -> Node:
        node = Node(
            name,
            [
                f"--address={self.address}",
                f"--num-cpus={self._cpus}",
                f"--resources={json.dumps({name: 1})}",
                *self._ports(),
                "--num-gpus=0",
                "--object-store-memory=80000000",
                "--disable-usage-stats",
            ],
            self.tmp / f"{name}.log",
        )
        self.nodes[name] = node
        return node

    def wait_nodes(self, n: int, timeout: float) -> None:
        import ray

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, node in self.nodes.items():
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray node {name} exited: {node.log.read_text()[-2000:]}")
            if ray.is_initialized():
                alive = sum(1 for x in ray.nodes() if x["Alive"])
                if alive >= n:
                    return
            else:
                try:
                    ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
                    continue
                except Exception:  # the head is still starting
                    pass
            time.sleep(0.5)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout:.0f} s")

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for node in reversed(list(self.nodes.values())):
            node.kill()  # a throw-away cluster: no graceful shutdown needed
        shutil.rmtree(self.tmp, ignore_errors=True)

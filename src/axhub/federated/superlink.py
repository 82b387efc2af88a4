"""A run with secure aggregation on Flower's own deployment: one ``flower-superlink`` (the
hub) and one ``flower-supernode`` per member, each a separate operating-system process, and
the run submitted to the SuperLink's Control API as a Flower app bundle (FAB) whose server and
client apps are ``axhub.federated.secagg``.

Everything stays offline: the FAB holds only its ``pyproject.toml`` (the apps are imported
from the installed ``axhub``), and the SuperLink is told not to install dependencies. Flower's
home (installed FABs, CLI configuration) is a folder of the run, not the user's ``~/.flwr``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from axhub.federated.process import free_port

APP_NAME = "axhub-secagg"
DEFAULT_MAX_WEIGHT = 10_000.0

_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "1.0.0"
description = "AX Hub federated run with SecAgg+"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "axhub"

[tool.flwr.app.components]
serverapp = "axhub.federated.secagg:server_app"
clientapp = "axhub.federated.secagg:client_app"

[tool.flwr.app.config]
spec = {spec}
"""


def _env(flwr_home: Path) -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2])  # the folder that holds the axhub package
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "FLWR_HOME": str(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
        # SuperExec looks for new app tasks once a second by default; a SecAgg+ round is five
        # exchanges, each starting a task, so polling faster shortens every round.
        "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",
        # SuperLink and SuperNode start flower-superexec / flwr-serverapp / flwr-clientapp by name.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src,
    }


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Own process group: the SuperLink/SuperNode children (superexec, app processes) end with it.
    return subprocess.Popen(
        args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_up(address: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    import socket

    host, port = address.rsplit(":", 1)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)


def write_app(folder: Path, spec_path: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(_PYPROJECT.format(name=APP_NAME, spec=json.dumps(str(spec_path))))
    return folder


def submit(app: Path, address: str) -> int:
    """Build the FAB from ``app`` and start it on the SuperLink's Control API; the run id."""
    import hashlib

    from flwr.cli.build import build_fab_from_disk
    from flwr.cli.typing import SuperLinkConnection
    from flwr.cli.utils import init_http_client_from_connection
    from flwr.common.serde import fab_to_proto, user_config_to_proto
    from flwr.proto.control_pb2 import StartRunRequest
    from flwr.supercore.fab import Fab

    fab_bytes = build_fab_from_disk(app)
    fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
    # Flower's CLI helper prints the connection it uses; the caller's output stays its own.
    with contextlib.redirect_stdout(io.StringIO()):
        client = init_http_client_from_connection(
            SuperLinkConnection(name="axhub", address=address, insecure=True)
        )
    try:
        res = client.StartRun(
            StartRunRequest(fab=fab_to_proto(fab), override_config=user_config_to_proto({}))
        )
    finally:
        client.close()
    if not res.HasField("run_id"):
        raise RuntimeError("the SuperLink did not start the run")
    return int(res.run_id)


def launch_secagg(
    task: dict[str, Any],
    members: list[dict[str, Any]],
    *,
    rounds: int,
    workdir: Path,
    timeout: float = 600,
    max_weight: float | None = None,
    on_tick: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Start a SuperLink and one SuperNode per member, run the SecAgg+ app, wait for its
    summary; return it with each member's record of what it handed over and the joint model.
    ``max_weight`` bounds a member's FedAvg weight (its row count, if its policy lets that out)
    inside SecAgg+'s quantised sum; set it near the largest member (default: 10 000 rows, or 1
    when no member's policy lets its row count out, so every member's weight is 1)."""
    from axhub.federated.policy import SitePolicy
    from axhub.federated.process import _rounds_done

    if max_weight is None:
        # SecAgg+ scales each update by weight/max_weight before quantising it: a max_weight far
        # above every weight would spend the quantiser's precision on nothing.
        counted = any("n_samples" in SitePolicy.parse(m["policy"]).allowed_metrics for m in members)
        max_weight = DEFAULT_MAX_WEIGHT if counted else 1.0

    workdir.mkdir(parents=True, exist_ok=True)
    out, logs = workdir / "out", workdir / "logs"
    out.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    env = _env(workdir / "flwr-home")
    spec = {
        "task": task,
        "n_members": len(members),
        "rounds": rounds,
        "out": str(out),
        "max_weight": max_weight,
        "round_timeout": timeout,
    }
    spec_path = workdir / "server.json"
    spec_path.write_text(json.dumps(spec))
    address = f"127.0.0.1:{free_port()}"
    bin_dir = Path(sys.executable).parent
    procs = [
        _start(
            [
                str(bin_dir / "flower-superlink"),
                "--insecure",
                "--port",
                address.rsplit(":", 1)[1],
                "--database",
                str(workdir / "superlink.db"),
                "--disable-runtime-dependency-installation",
            ],
            env,
            logs / "superlink.log",
        )
    ]
    try:
        _wait_up(address, procs[0], time.monotonic() + 120)
        for m in members:
            path = workdir / f"member-{m['member']}.json"
            path.write_text(json.dumps(m))
            node_config = f'member-spec="{path}" out="{out}"'
            procs.append(
                _start(
                    [
                        str(bin_dir / "flower-supernode"),
                        "--insecure",
                        "--superlink",
                        address,
                        "--port",
                        str(free_port()),
                        "--node-config",
                        node_config,
                    ],
                    env,
                    logs / f"{m['member']}.log",
                )
            )
        submit(write_app(workdir / "app", spec_path), address)
        summary_path = out / "summary.json"
        deadline = time.monotonic() + timeout
        while not summary_path.exists():
            if on_tick is not None:
                on_tick(_rounds_done(out / "progress.json"), rounds)
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = "a Flower process exited" if dead else "timed out"
                raise RuntimeError(f"federated run with secure aggregation {why}; logs in {logs.name}/")
            time.sleep(0.2)
    finally:
        for p in reversed(procs):
            _stop(p)
    result: dict[str, Any] = json.loads((out / "summary.json").read_text())
    if "error" in result:
        raise RuntimeError(f"federated server app failed: {result['error']}")
    result["members_sent"] = {
        m["member"]: json.loads((out / f"{m['member']}.json").read_text())
        if (out / f"{m['member']}.json").exists()
        else {"sent": [], "epsilon_spent": None}
        for m in members
    }
    joint = out / "joint.npz"
    if joint.exists():
        with np.load(joint, allow_pickle=False) as z:
            result["joint"] = [z[f"arr_{i}"] for i in range(len(z.files))]
    return result

"""The Flower server and each member's client as separate operating-system processes.

``python -m axhub.federated.process server SPEC OUT`` runs the hub's side;
``python -m axhub.federated.process client MEMBER ADDRESS OUT`` runs one member's side, reading
only that member's data file. The same client command runs on a member's own machine, with
``--ca`` pointing at the hub's CA certificate for TLS. Telemetry of Flower is switched off.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def save_member_data(path: Path, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> Path:
    np.savez(path, x=x, y=y, x_val=x_val, y_val=y_val)
    return path


def load_member_data_source(source: Any) -> Any:
    """The member's arrays: a file on the member's own machine, or, in the hub, its readings
    read through its own organisation scope."""
    from axhub.federated.client import MemberData

    if isinstance(source, dict):
        from axhub.core.settings import get_settings
        from axhub.federated.hub import load_member_data
        from axhub.store.db import Database
        from axhub.store.scoped import OrgScope
        from axhub.store.timeseries import TimeSeriesStore

        settings = get_settings()
        db = Database.from_settings(settings)
        with db.session() as session:
            scope = OrgScope(session, str(source["hub"]["org_id"]))
            return load_member_data(
                scope, str(source["hub"]["collaboration_id"]), TimeSeriesStore(settings.timeseries_root)
            )
    path = Path(source)
    with np.load(path, allow_pickle=False) as z:
        return MemberData(x=z["x"], y=z["y"], x_val=z["x_val"], y_val=z["y_val"])


def _wait_listening(address: str, server: subprocess.Popen[bytes], *, deadline: float) -> None:
    host, port = address.rsplit(":", 1)
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)


def run_server(
    spec: dict[str, Any], out: Path, tls: tuple[bytes, bytes, bytes] | None = None
) -> dict[str, Any]:
    import flwr
    from flwr.common import ndarrays_to_parameters

    from axhub.federated.learner import FedTask, build_net, get_params
    from axhub.federated.strategy import RecordingFedAvg

    task = FedTask.from_json(spec["task"])
    strategy = RecordingFedAvg(
        n_members=int(spec["n_members"]),
        proximal_mu=task.proximal_mu,
        secure_aggregation=False,  # the legacy gRPC transport has no SecAgg+; members that require it refuse
        num_rounds=int(spec["rounds"]),
        progress_path=out / "progress.json",
        initial_parameters=ndarrays_to_parameters(get_params(build_net(task))),
        accept_failures=False,
    )
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    flwr.server.start_server(
        server_address=spec["address"],
        config=flwr.server.ServerConfig(
            num_rounds=int(spec["rounds"]), round_timeout=spec.get("round_timeout", 600)
        ),
        strategy=strategy,
        certificates=tls,
    )
    summary = strategy.summary()
    summary["seconds"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    if strategy.final_parameters is not None:
        np.savez(out / "joint.npz", *strategy.final_parameters)
    (out / "summary.json").write_text(json.dumps(summary, default=float))
    return summary


def member_client(member_spec: dict[str, Any], *, secure_aggregation: bool = False) -> Any:
    """The member's client from its spec (the same in a plain process and in a SuperNode)."""
    from axhub.federated.client import MemberClient
    from axhub.federated.learner import FedTask
    from axhub.federated.policy import SitePolicy

    return MemberClient(
        member_spec["member"],
        FedTask.from_json(member_spec["task"]),
        SitePolicy.parse(member_spec["policy"]),
        load_member_data_source(member_spec["data"]),
        seed=int(member_spec.get("seed", 0)),
        noise_seed=member_spec.get("noise_seed"),  # only tests set it: DP noise is unpredictable
        secure_aggregation=secure_aggregation,
    )


def run_client(member_spec: dict[str, Any], address: str, out: Path, root_ca: bytes | None = None) -> None:
    import flwr

    client = member_client(member_spec)
    flwr.client.start_client(
        server_address=address,
        client=client.to_client(),
        insecure=root_ca is None,
        root_certificates=root_ca,
        max_retries=30,
        max_wait_time=60,
    )
    out.mkdir(parents=True, exist_ok=True)
    ledger = client.ledger
    (out / f"{member_spec['member']}.json").write_text(
        json.dumps(
            {"sent": client.wire.sent, "epsilon_spent": ledger.spent if ledger else None}, default=float
        )
    )


def launch(
    task: dict[str, Any],
    members: list[dict[str, Any]],
    *,
    rounds: int,
    workdir: Path,
    server_address: str | None = None,
    client_address: str | None = None,
    timeout: float = 600,
    tls_dir: Path | None = None,
    on_tick: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Start the server and one process per member, wait for all, return the server's summary
    and each member's record of what it sent. ``client_address`` lets a test put a recording
    proxy between the members and the hub; ``tls_dir`` (ca.pem, server.pem, server.key) makes
    the hub serve TLS and the members verify it against ca.pem. ``on_tick(rounds_done, of)`` is called
    while waiting (every 0.2 s); whatever it raises (a cancelled job) ends the run and kills
    every process."""
    workdir.mkdir(parents=True, exist_ok=True)
    address = server_address or f"127.0.0.1:{free_port()}"
    spec = {"task": task, "n_members": len(members), "rounds": rounds, "address": address}
    (workdir / "server.json").write_text(json.dumps(spec))
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "axhub.federated.process"]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    procs = [
        subprocess.Popen(
            [
                *cmd,
                "server",
                str(workdir / "server.json"),
                str(workdir / "out"),
                *([str(tls_dir)] if tls_dir else []),
            ],
            env=env,
            stdout=(logs / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        _wait_listening(address, procs[0], deadline=time.monotonic() + 120)
        for m in members:
            path = workdir / f"member-{m['member']}.json"
            path.write_text(json.dumps(m))
            procs.append(
                subprocess.Popen(
                    [
                        *cmd,
                        "client",
                        str(path),
                        client_address or address,
                        str(workdir / "out"),
                        *([str(tls_dir / "ca.pem")] if tls_dir else []),
                    ],
                    env=env,
                    stdout=(logs / f"{m['member']}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            if on_tick is not None:
                on_tick(_rounds_done(workdir / "out" / "progress.json"), rounds)
            # A member that dies leaves the hub waiting for it: end the run at once.
            if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, name in zip(procs, ["server", *(m["member"] for m in members)], strict=True):
        if p.returncode != 0:
            tail = (logs / f"{name}.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"federated {name} exited with {p.returncode}: {tail}")
    result = json.loads((workdir / "out" / "summary.json").read_text())
    result["members_sent"] = {
        m["member"]: json.loads((workdir / "out" / f"{m['member']}.json").read_text()) for m in members
    }
    joint = workdir / "out" / "joint.npz"
    if joint.exists():
        with np.load(joint, allow_pickle=False) as z:
            result["joint"] = [z[f"arr_{i}"] for i in range(len(z.files))]
    return result


def _rounds_done(progress: Path) -> int:
    try:
        return int(json.loads(progress.read_text())["round"])
    except (OSError, ValueError, KeyError):
        return 0


def main(argv: list[str]) -> int:
    """``server SPEC OUT [TLS_DIR]`` (TLS_DIR holds ca.pem, server.pem, server.key) or
    ``client MEMBER ADDRESS OUT [CA_PEM]``."""
    kind = argv[0]
    if kind == "server":
        tls = None
        if len(argv) > 3:
            folder = Path(argv[3])
            tls = tuple((folder / n).read_bytes() for n in ("ca.pem", "server.pem", "server.key"))
        run_server(json.loads(Path(argv[1]).read_text()), Path(argv[2]), tls)  # type: ignore[arg-type]
    elif kind == "client":
        ca = Path(argv[4]).read_bytes() if len(argv) > 4 else None
        run_client(json.loads(Path(argv[1]).read_text()), argv[2], Path(argv[3]), ca)
    else:
        raise SystemExit(f"unknown role {kind!r}: server or client")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

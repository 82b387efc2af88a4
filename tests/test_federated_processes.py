"""A federated run with real separate processes (the Flower server and one client process per
member), every byte between members and hub recorded by a TCP proxy: no member row crosses,
only parameters and aggregates; a member's ε is accounted and the run stops when it is spent."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from _federated import MAPPING, SCHEMA, _company
from axhub.federated import collab, hub
from axhub.federated.client import MemberData
from axhub.federated.learner import FedTask, build_net, get_params
from axhub.federated.privacy import epsilon_after
from axhub.federated.process import free_port
from axhub.store.db import Database
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

pytestmark = [pytest.mark.slow, pytest.mark.torch]  # members train a torch model


class RecordingProxy:
    """Forwards TCP connections to the hub and keeps a copy of everything in both directions."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.up = bytearray()  # members → hub
        self.down = bytearray()  # hub → members
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(conn, upstream, self.up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, self.down), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, sink: bytearray) -> None:
        try:
            while chunk := src.recv(65536):
                with self.lock:
                    sink.extend(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_run_in_separate_processes_sends_no_rows_and_stops_on_a_spent_budget(
    hub_env: tuple[Database, TimeSeriesStore], tmp_path: Path
) -> None:
    db, store = hub_env
    orgs = [_company(db, store, name, i) for i, name in enumerate(["대기업", "협력사 가", "협력사 나"])]
    dp = {"clip_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-5}
    # The lead allows two rounds' worth of ε; the run is asked for three.
    tight = {**dp, "epsilon_budget": epsilon_after(2, 1.0, 1e-5) + 1e-6}
    loose = {**dp, "epsilon_budget": 1e6}
    with db.session() as s:
        cid = collab.create(s, orgs[0], "프레스 수명", "rul_mlp", SCHEMA).id
        for org in orgs[1:]:
            collab.invite(s, orgs[0], cid, org)
        for org, budget in zip(orgs, [tight, loose, loose], strict=True):
            policy = {"min_local_samples": 50, "dp": budget, "allowed_metrics": ["rmse", "loss"]}
            collab.accept(OrgScope(s, org), cid, MAPPING, policy)
    with db.session() as s:
        rows = {org: hub.load_member_data(OrgScope(s, org), cid, store) for org in orgs}

    server_port = free_port()
    proxy = RecordingProxy(server_port)
    try:
        summary = hub.run(
            db.session,
            cid,
            rounds=3,
            workdir=tmp_path / "runs",
            by_org=orgs[0],
            launch_options={
                "server_address": f"127.0.0.1:{server_port}",
                "client_address": f"127.0.0.1:{proxy.port}",
                "timeout": 240,
            },
            hidden=8,
            batch_size=64,
        )
    finally:
        proxy.close()

    # The lead's third release would exceed its budget: it refuses and the run ends there.
    assert summary["stopped"] == f"{orgs[0]}: epsilon_budget"
    sent = summary["members_sent"]
    assert sent[orgs[0]]["epsilon_spent"] == pytest.approx(epsilon_after(2, 1.0, 1e-5))
    assert sent[orgs[0]]["epsilon_spent"] <= tight["epsilon_budget"]
    with db.session() as s:
        view = collab.overview(s, orgs[1], cid)
    spent = {m["org_id"]: m["epsilon_spent"] for m in view["members"]}
    assert spent[orgs[0]] == pytest.approx(epsilon_after(2, 1.0, 1e-5))
    assert spent[orgs[1]] == pytest.approx(epsilon_after(3, 1.0, 1e-5))  # it trained in round 3
    assert [r["round"] for r in view["rounds"] if r["members"]] == [1, 2, 3]
    assert view["rounds"][0]["contribution"].keys() == set(orgs)

    # What each client handed over: parameter arrays of the model's shapes, allowed metrics.
    shapes = [
        list(p.shape) for p in get_params(build_net(FedTask(kind="regression", n_features=2, hidden=8)))
    ]
    allowed = {"member", "status", "epsilon_spent", "epsilon_budget", "rmse", "loss"}
    for org in orgs:
        for message in sent[org]["sent"]:
            assert message["shapes"] in ([], shapes)
            extra = {k for k in message["metrics"] if not k.startswith(("cand_loss_", "joint_", "local_"))}
            assert extra <= allowed

    # What actually crossed the wire: the parameters did (the proxy saw them in the clear)...
    traffic = bytes(proxy.up) + bytes(proxy.down)
    assert len(proxy.up) > 0 and len(proxy.down) > 0
    total = sum(r["bytes_up"] for r in summary["rounds"])
    assert total > 0 and len(proxy.up) >= total
    assert np.asarray(hub_joint(tmp_path))[:8].tobytes() in traffic
    # ...but no member row did, in any encoding a client could use.
    for data in rows.values():
        for row in _some_rows(data):
            assert row.astype(np.float32).tobytes() not in traffic
            assert row.astype(np.float64).tobytes() not in traffic
        assert data.y[:20].astype(np.float64).tobytes()[:16] not in traffic


def _some_rows(data: MemberData) -> list[np.ndarray]:
    return [data.x[i] for i in range(0, len(data.x), 10)] + [
        data.x_val[i] for i in range(0, len(data.x_val), 10)
    ]


def hub_joint(tmp_path: Path) -> np.ndarray:
    (path,) = (tmp_path / "runs").glob("*/out/joint.npz")
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z["arr_0"]).reshape(-1)

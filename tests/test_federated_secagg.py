"""Secure aggregation on Flower's own deployment: a SuperLink and one SuperNode per member,
each a separate process, running FedAvg through SecAgg+. The server receives from each member
only a masked vector, never its update; the aggregate it unmasks is FedAvg of the members'
(DP-noised, where a policy says so) updates within SecAgg+'s quantisation; a member whose
policy requires secure aggregation trains here and refuses the plain deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.common import Context, FitIns, RecordDict, ndarrays_to_parameters, parameters_to_ndarrays

from _federated import MAPPING, SCHEMA, _company
from axhub.federated import collab, hub
from axhub.federated.client import REFUSED_SAMPLES, MemberClient, MemberData
from axhub.federated.learner import FedTask, build_net, get_params
from axhub.federated.policy import SitePolicy
from axhub.federated.privacy import epsilon_after
from axhub.federated.process import launch, save_member_data
from axhub.federated.secagg import MEMBER_STATE, _client_fn
from axhub.federated.superlink import launch_secagg
from axhub.store.db import Database
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

pytestmark = [pytest.mark.slow, pytest.mark.torch]  # members train a torch model

TASK = FedTask(kind="regression", n_features=5, hidden=8, lr=1e-2, batch_size=64, seed=1)
SIZES = {"a": 300, "b": 420, "c": 540}
POLICIES: dict[str, dict[str, Any]] = {
    "a": {"min_local_samples": 50, "allowed_metrics": ["n_samples", "rmse", "loss"]},
    # b adds Gaussian noise to its update before it is masked
    "b": {
        "min_local_samples": 50,
        "allowed_metrics": ["n_samples", "rmse", "loss"],
        "dp": {"clip_norm": 0.5, "noise_multiplier": 0.05, "epsilon_budget": 1e6},
    },
    # c trains only where its update leaves masked
    "c": {
        "min_local_samples": 50,
        "allowed_metrics": ["n_samples", "rmse", "loss"],
        "secure_aggregation_required": True,
    },
}
MAX_WEIGHT = 1000.0


def _members(tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, MemberData]]:
    rng = np.random.default_rng(7)
    members, data = [], {}
    for shift, (name, n) in enumerate(SIZES.items()):
        x = rng.normal(loc=0.2 * shift, size=(n + 60, TASK.n_features)).astype(np.float32)
        y = x @ np.arange(1, TASK.n_features + 1) + rng.normal(0, 0.1, n + 60)
        path = save_member_data(tmp_path / f"{name}.npz", x[:n], y[:n], x[n:], y[n:])
        data[name] = MemberData(x[:n], y[:n], x[n:], y[n:])
        members.append(
            {
                "member": name,
                "task": TASK.to_json(),
                "policy": POLICIES[name],
                "data": str(path),
                "seed": 3,
                "noise_seed": 3,
            }
        )
    return members, data


def _update(name: str, data: MemberData, initial: list[np.ndarray]) -> list[np.ndarray]:
    """What the member itself hands to SecAgg+ in round 1 (same code, seed, noise)."""
    client = MemberClient(
        name, TASK, SitePolicy.parse(POLICIES[name]), data, seed=3, noise_seed=3, secure_aggregation=True
    )
    client.rng = np.random.default_rng([3, 0])
    new, weight, metrics = client.fit(initial, {})
    assert metrics["status"] == 0 and weight == SIZES[name]
    return new


def test_secagg_run_hides_each_update_and_aggregates_to_fedavg(tmp_path: Path) -> None:
    members, data = _members(tmp_path)
    summary = launch_secagg(
        TASK.to_json(), members, rounds=1, workdir=tmp_path / "run", timeout=300, max_weight=MAX_WEIGHT
    )
    assert summary["stopped"] is None, summary["stopped"]
    assert summary["secure_aggregation"] == "secagg+"
    (rnd,) = summary["rounds"]
    assert {m: rnd["members"][m]["status"] for m in SIZES} == {"a": 0, "b": 0, "c": 0}
    assert summary["members_sent"]["b"]["epsilon_spent"] > 0  # b's noise was accounted on b's side

    initial = get_params(build_net(TASK))
    updates = {name: _update(name, data[name], initial) for name in SIZES}
    total = sum(SIZES.values())
    fedavg = [sum(SIZES[m] * updates[m][i] for m in SIZES) / total for i in range(len(initial))]
    joint = summary["joint"]
    # FedAvg within SecAgg+'s quantisation (a step of 16/2**22 per member and parameter) ...
    for got, want in zip(joint, fedavg, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-5)
    # ... and not what any single member sent, nor the plain mean (the weights were applied).
    plain_mean = [sum(updates[m][i] for m in SIZES) / 3 for i in range(len(initial))]
    assert max(float(np.abs(g - p).max()) for g, p in zip(joint, plain_mean, strict=True)) > 1e-3

    received = {item["member"]: item for item in summary["received"]}
    assert set(received) == set(SIZES)
    for name, item in received.items():
        assert item["plain_arrays"] == 0  # no parameter array reached the server in the clear
        with np.load(tmp_path / "run" / "out" / "received" / item["file"], allow_pickle=False) as z:
            masked = [z[k] for k in z.files]
        flat = np.concatenate([m.ravel() for m in masked]).astype(np.float64)
        own = np.concatenate([u.ravel() for u in updates[name]]).astype(np.float64)
        # Masks are uniform over [0, 2**32): the vector looks like noise and the member's update
        # (quantised into [0, 2**22) around its values) cannot be read off it.
        assert np.issubdtype(masked[0].dtype, np.integer)
        assert 0.4 < flat.mean() / 2**32 < 0.6 and flat.max() > 2**22
        # The net is small (129 parameters), so even independent vectors correlate by chance:
        # about N(0, 1/n). 4.5/sqrt(n) (0.40 here) fails by chance less than once in 10**5 runs
        # per member (the fixed 0.2 failed about once in 40, and a run checks three members),
        # while an unmasked update, an affine copy of the member's values, would correlate near 1.
        bound = 4.5 / np.sqrt(own.size)
        assert bound < 0.5
        assert abs(np.corrcoef(flat[1 : own.size + 1], own)[0, 1]) < bound


def test_member_requiring_secure_aggregation_refuses_the_plain_deployment(tmp_path: Path) -> None:
    members, _ = _members(tmp_path)
    summary = launch(
        TASK.to_json(), [members[0], members[2]], rounds=1, workdir=tmp_path / "plain", timeout=240
    )
    assert summary["stopped"] == "c: secure_aggregation"
    assert summary["members_sent"]["c"]["sent"][0]["shapes"] == []  # c sent no parameters


def test_hub_run_with_a_member_requiring_secagg_goes_through_superlink(
    hub_env: tuple[Database, TimeSeriesStore], tmp_path: Path
) -> None:
    """In the hub, each SuperNode's client reads its company's rows through its own OrgScope;
    the run and the member's ε are recorded as for a plain run."""
    db, store = hub_env
    orgs = [_company(db, store, name, i) for i, name in enumerate(["대기업", "협력사 가"])]
    dp = {"clip_norm": 1.0, "noise_multiplier": 1.0, "epsilon_budget": 1e6}
    with db.session() as s:
        cid = collab.create(s, orgs[0], "프레스 수명", "rul_mlp", SCHEMA).id
        collab.invite(s, orgs[0], cid, orgs[1])
        policies = [
            {"min_local_samples": 50, "allowed_metrics": ["rmse", "loss"]},
            {
                "min_local_samples": 50,
                "dp": dp,
                "secure_aggregation_required": True,
                "allowed_metrics": ["rmse"],
            },
        ]
        for org, policy in zip(orgs, policies, strict=True):
            collab.accept(OrgScope(s, org), cid, MAPPING, policy)
    summary = hub.run(
        db.session,
        cid,
        rounds=1,
        workdir=tmp_path / "runs",
        by_org=orgs[0],
        launch_options={"timeout": 300},
        hidden=8,
        batch_size=64,
    )
    assert summary["stopped"] is None, summary["stopped"]
    assert summary["secure_aggregation"] == "secagg+"
    assert [sorted(r["members"]) for r in summary["rounds"]] == [sorted(orgs)]
    assert all(m["status"] == 0 for r in summary["rounds"] for m in r["members"].values())
    assert {(item["member"], item["round"]) for item in summary["received"]} == {(org, 1) for org in orgs}
    assert summary["members_sent"][orgs[1]]["epsilon_spent"] == pytest.approx(epsilon_after(1, 1.0, 1e-5))
    with db.session() as s:
        view = collab.overview(s, orgs[0], cid)
    spent = {m["org_id"]: m["epsilon_spent"] for m in view["members"]}
    assert spent[orgs[1]] == pytest.approx(epsilon_after(1, 1.0, 1e-5))
    assert [r["round"] for r in view["rounds"] if r["members"]] == [1]


def test_member_state_lives_in_its_supernode_context_across_fresh_processes(tmp_path: Path) -> None:
    """Each SecAgg+ message runs a fresh client process: what the member remembers (rounds,
    ε released) comes back from the context its SuperNode keeps, and each round draws new noise;
    a refusal sends a zero-weight vector of the model's shapes."""
    members, _ = _members(tmp_path)
    spec = tmp_path / "b.json"
    spec.write_text(json.dumps(members[1]))
    context = Context(1, 2, {"member-spec": str(spec), "out": str(tmp_path / "out")}, RecordDict(), {})
    initial = get_params(build_net(TASK))
    results = []
    for _ in range(2):
        client = _client_fn(context)  # as a new process would build it
        results.append(client.fit(FitIns(ndarrays_to_parameters(initial), {})))
    spent = [float(r.metrics["epsilon_spent"]) for r in results]
    assert spent == [pytest.approx(epsilon_after(k, 0.05, 1e-5)) for k in (1, 2)]
    first, second = (parameters_to_ndarrays(r.parameters) for r in results)
    assert not np.allclose(first[0], second[0])  # same start, fresh noise
    assert context.state.config_records[MEMBER_STATE]["round"] == 2

    strict = {**members[0], "policy": {**POLICIES["a"], "min_local_samples": 10_000}}
    spec.write_text(json.dumps(strict))
    refused = _client_fn(Context(1, 3, dict(context.node_config), RecordDict(), {})).fit(
        FitIns(ndarrays_to_parameters(initial), {})
    )
    assert refused.num_examples == 0 and refused.metrics["status"] == REFUSED_SAMPLES
    zeros = parameters_to_ndarrays(refused.parameters)
    assert [z.shape for z in zeros] == [p.shape for p in initial] and not any(z.any() for z in zeros)

"""Federated learning, in one process: site policy, differential privacy and its accounting,
PCA/MSPC from pooled statistics, collaborations and tenant isolation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from _federated import MAPPING, SCHEMA, _company
from axhub.core.errors import AxHubError, NotFoundError, PermissionDeniedError
from axhub.core.settings import Settings
from axhub.federated import collab, learner
from axhub.federated.client import REFUSED_BUDGET, REFUSED_SAMPLES, REFUSED_SECAGG, MemberClient, MemberData
from axhub.federated.hub import load_member_data
from axhub.federated.learner import FedTask
from axhub.federated.policy import DifferentialPrivacy, SitePolicy
from axhub.federated.privacy import clip_and_noise, epsilon_after
from axhub.federated.stats import FederatedMSPC, SufficientStats, pool
from axhub.store.db import Database
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

TASK = FedTask(kind="regression", n_features=3, hidden=8, lr=1e-2, batch_size=32)


def _data(rng: np.random.Generator, n: int = 120) -> MemberData:
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5])
    return MemberData(x[:100], y[:100], x[100:], y[100:])


def test_policy_errors_name_the_field() -> None:
    with pytest.raises(AxHubError, match=r"dp\.epsilon_budget"):
        SitePolicy.parse({"dp": {"clip_norm": 1.0, "noise_multiplier": 1.0, "epsilon_budget": -1}})
    with pytest.raises(AxHubError, match="allowed_metrics"):
        SitePolicy.parse({"allowed_metrics": ["raw_rows"]})


def test_epsilon_grows_with_rounds_and_more_noise_costs_less() -> None:
    eps = [epsilon_after(t, 1.0, 1e-5) for t in (1, 2, 5, 10)]
    assert eps == sorted(eps) and eps[0] > 0
    assert epsilon_after(5, 2.0, 1e-5) < epsilon_after(5, 1.0, 1e-5)
    assert epsilon_after(0, 1.0, 1e-5) == 0.0


def test_update_is_clipped_to_the_norm() -> None:
    dp = DifferentialPrivacy(clip_norm=0.5, noise_multiplier=1e-9, epsilon_budget=1e9)
    big = [np.full((4, 4), 3.0, dtype=np.float32), np.full(4, 3.0, dtype=np.float32)]
    out, norm = clip_and_noise(big, dp, np.random.default_rng(0))
    assert norm > 10
    assert np.sqrt(sum(float(np.sum(o.astype(np.float64) ** 2)) for o in out)) == pytest.approx(0.5, rel=1e-4)


@pytest.mark.torch  # trains the members' torch model
def test_member_refuses_a_round_that_would_overspend_its_budget() -> None:
    budget = epsilon_after(3, 1.0, 1e-5) + 1e-6  # room for exactly three rounds
    policy = SitePolicy(
        min_local_samples=10,
        dp=DifferentialPrivacy(clip_norm=1.0, noise_multiplier=1.0, epsilon_budget=budget),
        allowed_metrics=["rmse"],
    )
    client = MemberClient("a", TASK, policy, _data(np.random.default_rng(1)))
    params = learner.get_params(learner.build_net(TASK))
    spent = []
    for _ in range(3):
        new, n, metrics = client.fit(params, {})
        assert metrics["status"] == 0
        assert [p.shape for p in new] == [p.shape for p in params]
        # Only what the policy allows (plus its own status and ε) leaves the site.
        assert set(metrics) == {"member", "status", "epsilon_spent", "epsilon_budget", "rmse"}
        assert n == 1  # n_samples is not allowed out, so the weight says nothing
        spent.append(metrics["epsilon_spent"])
        params = new
    assert spent == sorted(spent) and spent[-1] <= budget
    new, n, metrics = client.fit(params, {})
    assert (new, n, metrics["status"]) == ([], 0, REFUSED_BUDGET)
    assert client.ledger is not None and client.ledger.spent == pytest.approx(spent[-1])


@pytest.mark.torch  # trains the members' torch model
def test_member_enforces_min_samples_and_secure_aggregation_whatever_the_server_says() -> None:
    rng = np.random.default_rng(2)
    params = learner.get_params(learner.build_net(TASK))
    small = MemberClient("a", TASK, SitePolicy(min_local_samples=500), _data(rng))
    assert small.fit(params, {})[2]["status"] == REFUSED_SAMPLES
    strict = MemberClient(
        "b", TASK, SitePolicy(min_local_samples=10, secure_aggregation_required=True), _data(rng)
    )
    # The server claiming secure aggregation changes nothing: the member's own transport decides.
    assert strict.fit(params, {"secure_aggregation": True})[2]["status"] == REFUSED_SECAGG
    masked = MemberClient(
        "b",
        TASK,
        SitePolicy(min_local_samples=10, secure_aggregation_required=True),
        strict.data,
        secure_aggregation=True,
    )
    assert masked.fit(params, {})[2]["status"] == 0
    # A server asking for a different proximal term does not change what the member trains.
    free = MemberClient("c", TASK, SitePolicy(min_local_samples=10), _data(rng), seed=3)
    twin = MemberClient("c", TASK, SitePolicy(min_local_samples=10), _data(np.random.default_rng(2)), seed=3)
    twin.data = free.data
    a = free.fit(params, {"proximal_mu": 100.0})[0]
    b = twin.fit(params, {})[0]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.torch  # trains the members' torch model
def test_fedprox_keeps_a_member_closer_to_the_global_model() -> None:
    data = _data(np.random.default_rng(4))
    start = learner.get_params(learner.build_net(TASK))
    task = dataclasses.replace(TASK, local_epochs=5)

    def drift(mu: float) -> float:
        new = learner.train_local(dataclasses.replace(task, proximal_mu=mu), start, data.x, data.y, seed=0)
        return float(sum(np.sum((n - s) ** 2) for n, s in zip(new, start, strict=True)))

    assert drift(10.0) < drift(0.0)


def test_mspc_from_member_statistics_equals_the_pooled_fit() -> None:
    rng = np.random.default_rng(5)
    mix = rng.normal(size=(6, 6))
    # Three sites with different operating points: non-IID on purpose.
    sites = [rng.normal(loc=i, size=(200 + 50 * i, 6)) @ mix for i in range(3)]
    pooled_rows = np.vstack(sites)
    parts = [SufficientStats.from_arrays(SufficientStats.of(s).to_arrays()) for s in sites]
    fed = FederatedMSPC.from_stats(pool(parts), n_components=3)
    central = FederatedMSPC.from_stats(SufficientStats.of(pooled_rows), n_components=3)
    np.testing.assert_allclose(
        pool(parts).covariance, np.cov(pooled_rows, rowvar=False), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(fed.mean, pooled_rows.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fed.loadings, central.loadings, atol=1e-8)
    assert fed.t2_limit == pytest.approx(central.t2_limit) and fed.q_limit == pytest.approx(central.q_limit)
    probe = rng.normal(size=(50, 6)) @ mix
    for key in ("t2", "q"):
        np.testing.assert_allclose(fed.scores(probe)[key], central.scores(probe)[key], rtol=1e-7)
    # What a site sends is three aggregates whose size does not depend on its row count.
    assert [a.shape for a in SufficientStats.of(sites[2]).to_arrays()] == [(1,), (6,), (6, 6)]


@pytest.fixture
def hub(settings: Settings) -> tuple[Database, TimeSeriesStore]:
    db = Database.from_settings(settings)
    db.migrate()
    return db, TimeSeriesStore(settings.timeseries_root)


def test_collaboration_flow_and_isolation(hub: tuple[Database, TimeSeriesStore]) -> None:
    db, store = hub
    lead, supplier, outsider = (_company(db, store, n, i) for i, n in enumerate(["대기업", "협력사", "외부"]))
    with db.session() as s:
        cid = collab.create(s, lead, "프레스 수명", "rul_mlp", SCHEMA).id
        collab.invite(s, lead, cid, supplier)
        with pytest.raises(PermissionDeniedError):
            collab.invite(s, supplier, cid, outsider)
        with pytest.raises(NotFoundError):  # the outsider cannot even see it
            collab.overview(s, outsider, cid)
        with pytest.raises(AxHubError, match="잔여수명"):
            collab.accept(OrgScope(s, supplier), cid, {"asset": "press-1", "signals": {"온도": "온도"}}, {})
        for org in (lead, supplier):
            collab.accept(
                OrgScope(s, org), cid, MAPPING, {"min_local_samples": 50, "allowed_metrics": ["rmse"]}
            )
        # The outsider has no membership: its scope finds nothing to accept.
        with pytest.raises(NotFoundError):
            collab.accept(OrgScope(s, outsider), cid, MAPPING, {})
    with db.session() as s:
        # A member's client reads its own rows...
        own = load_member_data(OrgScope(s, supplier), cid, store)
        assert len(own.x) + len(own.x_val) == 300 and own.x.shape[1] == 2
        # ...and, running in the outsider's scope, nothing of the collaboration or the members.
        with pytest.raises(NotFoundError):
            load_member_data(OrgScope(s, outsider), cid, store)
        view = collab.overview(s, supplier, cid)
        assert {m["status"] for m in view["members"]} == {"active"}
        assert not collab.may_share_outside(s, cid)
        collab.consent_to_share(OrgScope(s, lead), cid)
        assert not collab.may_share_outside(s, cid)  # one member has not agreed
        collab.consent_to_share(OrgScope(s, supplier), cid)
        assert collab.may_share_outside(s, cid)
        collab.leave(OrgScope(s, supplier), cid)
    with db.session() as s, pytest.raises(NotFoundError):  # a member that left no longer feeds runs
        load_member_data(OrgScope(s, supplier), cid, store)


def test_mapping_onto_another_companys_asset_is_refused(
    hub: tuple[Database, TimeSeriesStore], tmp_path: Path
) -> None:
    db, store = hub
    lead = _company(db, store, "대기업", 0)
    with db.session() as s:
        other = create_org(s, "협력사", slug="supplier")
        cid = collab.create(s, lead, "x", "rul_mlp", SCHEMA).id
        collab.invite(s, lead, cid, other.id)
        with pytest.raises(NotFoundError):  # press-1 exists, but in the lead's organisation
            collab.accept(OrgScope(s, other.id), cid, MAPPING, {})


def test_bench_without_data_fails_and_says_where_it_looked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app

    result = CliRunner().invoke(
        app, ["bench", "federated", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2, result.output
    assert "Nothing to benchmark" in result.output and str(tmp_path) in result.output


def test_cli_show_speaks_korean_and_names_companies(
    hub: tuple[Database, TimeSeriesStore], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app
    from axhub.core.settings import get_settings

    db, store = hub
    lead = _company(db, store, "대기업", 0)
    with db.session() as s:
        cid = collab.create(s, lead, "프레스 수명", "rul_mlp", SCHEMA).id
        collab.accept(OrgScope(s, lead), cid, MAPPING, {"min_local_samples": 50})
    monkeypatch.setenv("AXHUB_HOME", str(settings.home))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["federated", "show", cid, "--org", "company-0", "--lang", "ko"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "참여 기업" in result.output and "참여 중" in result.output and "대기업" in result.output
    assert "member" not in result.output and "active" not in result.output


@pytest.mark.torch  # trains the members' torch model
def test_dp_noise_is_not_fixed_by_the_training_seed() -> None:
    """Two members with the same data and training seed release different noised updates: the
    noise comes from the OS's entropy, so knowing a member's seed does not let anyone subtract
    it. Only an explicit ``noise_seed`` (benchmarks, tests) repeats it."""
    data = _data(np.random.default_rng(8))
    policy = SitePolicy.parse({"dp": {"clip_norm": 1.0, "noise_multiplier": 1.0, "epsilon_budget": 1e6}})
    params = learner.get_params(learner.build_net(TASK))

    def release(**kw: int) -> list[np.ndarray]:
        return MemberClient("a", TASK, policy, data, seed=3, **kw).fit(params, {})[0]

    first, second = release(), release()
    assert not np.allclose(first[0], second[0])
    repeat_a, repeat_b = release(noise_seed=11), release(noise_seed=11)
    assert all(np.array_equal(x, y) for x, y in zip(repeat_a, repeat_b, strict=True))

"""Process optimisation, machine-free: the simulator's truth, the limits, the yield model and
the recommender (every recommendation allowed), and a short closed loop that must improve."""

from __future__ import annotations

import numpy as np
import pytest

from axhub.ml.process.limits import ProcessLimits
from axhub.ml.process.loop import run_loop
from axhub.ml.process.model import BatchOutcome, OutcomeModel
from axhub.ml.process.recommend import Objective, pareto_front, recommend
from axhub.sim import process as sp


def _limits(trust: float = 0.3) -> ProcessLimits:
    return ProcessLimits(sp.BOUNDS, dict(sp.MAX_STEP), list(sp.FORBIDDEN), trust_radius=trust)


def _history(n: int, seed: int = 0, spread: float = 1.0) -> tuple[sp.ProcessSim, list[BatchOutcome]]:
    """Batches around the baseline (what a plant has on record before optimising)."""
    rng = np.random.default_rng(seed)
    sim = sp.ProcessSim(seed=seed, parts_per_batch=60)
    out = []
    for _ in range(n):
        s = {
            k: float(np.clip(v + spread * rng.uniform(-1, 1) * sp.MAX_STEP[k] * 2, *sp.BOUNDS[k]))
            for k, v in sp.BASELINE.items()
        }
        if sp.in_forbidden(s):
            continue
        lot = sim.next_lot()
        parts = sim.run_batch(s)
        out.append(BatchOutcome(s, len(parts), sum(p.passed for p in parts), lot))
    return sim, out


def test_simulator_truth_has_an_interior_optimum_better_than_the_baseline() -> None:
    best, y = sp.optimum("LOT-A", 0)
    assert not sp.in_forbidden(best)
    assert y > sp.true_yield(sp.BASELINE, "LOT-A", 0) + 0.1
    # A harder lot and a worn tool make the same settings worse (material effect, drift).
    assert sp.true_yield(best, "LOT-B", 0) < y
    assert sp.true_yield(best, "LOT-A", 40) < y
    # Measured yield follows the truth (binomial noise only).
    sim = sp.ProcessSim(seed=3, parts_per_batch=2000)
    parts = sim.run_batch(best)
    assert abs(np.mean([p.passed for p in parts]) - y) < 0.03
    assert {p.defect for p in parts} <= {"", "dimension", "burr", "chatter"}


def test_limits_name_every_rule_broken() -> None:
    limits = _limits()
    base = dict(sp.BASELINE)
    assert limits.violations(base, base, [base]) == []
    jump = {**base, "spindle_speed_rpm": base["spindle_speed_rpm"] + 2 * sp.MAX_STEP["spindle_speed_rpm"]}
    assert any("step" in p for p in limits.violations(jump, base))
    chatter = {**base, "spindle_speed_rpm": 9400.0}
    assert limits.violations(chatter) == ["inside a forbidden region"]
    outside = {**base, "clamp_pressure_bar": 9.0}
    assert any("outside" in p for p in limits.violations(outside))
    far = {"feed_per_tooth_mm": 0.05, "spindle_speed_rpm": 11500.0, "clamp_pressure_bar": 5.8}
    assert any("trust region" in p for p in limits.violations(far, None, [base]))
    assert ProcessLimits.from_json(limits.to_json()) == limits


def test_yield_model_intervals_cover_the_truth_and_explain_the_drivers() -> None:
    limits = _limits()
    _, batches = _history(40, seed=1, spread=3.0)
    model = OutcomeModel(limits).fit(batches)
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(40):
        b = batches[int(rng.integers(len(batches)))]
        pred = model.predict(b.settings, lot=b.lot)
        assert 0 <= pred.low <= pred.mean <= pred.high <= 1
        covered += (
            pred.low <= sp.true_yield(b.settings, b.lot, 0) + 0.02
            and sp.true_yield(b.settings, b.lot, 0) - 0.02 <= pred.high
        )
    assert covered >= 30
    share = model.importance()
    assert abs(sum(share.values()) - 1) < 1e-9
    # The setpoint that moves the model most is the one that moves the hidden truth most
    # (the same permutation, applied to the true response over the same batches).
    truth_effect = {}
    for name in sp.BOUNDS:
        shuffled = np.random.default_rng(0).permutation([b.settings[name] for b in batches])
        truth_effect[name] = np.mean(
            [
                abs(sp.true_yield({**b.settings, name: v}, b.lot) - sp.true_yield(b.settings, b.lot))
                for b, v in zip(batches, shuffled, strict=True)
            ]
        )
    assert max(share, key=share.__getitem__) == max(truth_effect, key=truth_effect.__getitem__)
    pd = model.partial_dependence("feed_per_tooth_mm", 9)
    assert len(pd["x"]) == len(pd["mean"]) == 9 and pd["x"][0] == sp.BOUNDS["feed_per_tooth_mm"][0]


def test_recommendations_stay_inside_every_limit() -> None:
    limits = _limits(trust=0.2)
    _, batches = _history(12, seed=2)
    model = OutcomeModel(limits).fit(batches)
    validated = [b.settings for b in batches]
    for i, current in enumerate(validated[:4]):
        rec = recommend(model, limits, current, lot="LOT-A", explore=2.0, trials=30, seed=i)
        assert limits.violations(rec.settings, current, validated) == []
        assert rec.evidence["batches"] == len(batches)
        assert rec.evidence["distance_to_validated"] <= 0.2 + 1e-9
        assert rec.predicted.low <= rec.predicted.mean <= rec.predicted.high


def test_weighted_objective_and_pareto_front_trade_yield_for_cycle_time() -> None:
    limits = _limits()
    _, batches = _history(15, seed=4, spread=2.0)
    batches = [
        BatchOutcome(
            b.settings, b.n_parts, b.n_passed, b.lot, metrics={"cycle_time_s": sp.cycle_time_s(b.settings)}
        )
        for b in batches
    ]
    ym = OutcomeModel(limits).fit(batches)
    tm = OutcomeModel(limits, target="cycle_time_s").fit(batches)
    current = batches[0].settings
    fast = recommend(
        ym, limits, current, metric_models={"cycle_time_s": tm},
        objective=Objective(yield_weight=0.0, metric_weights={"cycle_time_s": -1.0}), trials=40,
    )  # fmt: skip
    assert sp.cycle_time_s(fast.settings) <= sp.cycle_time_s(current) + 1e-6
    front = pareto_front(ym, {"cycle_time_s": tm}, limits, current, trials=60)
    assert front
    ys = [p["yield"] for p in front]
    ts = [p["cycle_time_s"] for p in front]
    # Sorted by yield: along a Pareto front, more yield never comes with a shorter cycle.
    assert ys == sorted(ys, reverse=True)
    assert all(ts[i] >= ts[i + 1] - 1e-9 for i in range(len(ts) - 1))


@pytest.mark.slow
def test_closed_loop_improves_yield_with_no_violation() -> None:
    limits = _limits()
    sim = sp.ProcessSim(seed=5)
    truth: list[float] = []

    def run(settings: dict[str, float]) -> BatchOutcome:
        lot, batch = sim.next_lot(), sim.batch
        parts = sim.run_batch(settings)
        truth.append(sp.true_yield(settings, lot, batch) / sp.optimum(lot, batch, grid=31)[1])
        return BatchOutcome(dict(settings), len(parts), sum(p.passed for p in parts), lot)

    trace = run_loop(run, lambda: (sim.next_lot(), {}), limits, sp.BASELINE, batches=12, trials=30)
    assert not any(trace.violations)
    assert max(truth[-4:]) > truth[0] + 0.05

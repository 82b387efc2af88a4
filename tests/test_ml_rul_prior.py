"""The remaining-life prior of a scored population: deconvolution of the units' ages, the prior
tables, adapting a fitted model's graph in place, and the tail validation on training units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from axhub.ml.rul.gbm import RulGBM
from axhub.ml.rul.prior import MIN_POPULATION, prior_tables, remaining_life_weights
from axhub.ml.rul.synthetic import SYNTH_SETTINGS, synthetic_fleet
from axhub.ml.rul.validation import SCHEMES, TAILS, best_tail, validate_tails


def test_deconvolution_recovers_how_the_population_was_cut() -> None:
    rng = np.random.default_rng(0)
    lives = rng.normal(200, 40, size=150).clip(100, None)
    # a population cut shortly before failure: remaining life uniform on 5..60
    population_lives = rng.normal(200, 40, size=200).clip(100, None)
    ages = population_lives - rng.uniform(5, 60, size=200)
    q = remaining_life_weights(lives, ages)
    r = np.arange(len(q))
    assert q.sum() == pytest.approx(1.0)
    assert q[r <= 80].sum() > 0.8  # mass where the cuts were
    assert abs(float(np.sum(q * r)) - 32.5) < 15
    # too few units, or none: the flat (survival) prior
    flat = remaining_life_weights(lives, ages[: MIN_POPULATION - 1])
    assert np.ptp(flat) == 0 and np.ptp(remaining_life_weights(lives, None)) == 0


def test_prior_tables_flat_is_the_survival_prior() -> None:
    lives = np.array([150.0, 180.0, 200.0, 220.0, 260.0] * 20)
    q = remaining_life_weights(lives, None)
    odds, excess = prior_tables(lives, q, cap=100.0, n_age=300)
    p = odds / (1 + odds)
    # at age 0 every life exceeds the cap; at age 140 only the lives above 240 do (1 in 5)
    assert p[0] > 0.95
    assert p[140] == pytest.approx(0.2, abs=0.08)
    assert excess[0] == pytest.approx(np.mean(lives) - 100, abs=10)
    assert p[0] > p[70] > p[160]  # older units are less likely to be far from failure
    # a population cut near failure: small odds of being beyond the cap at every age
    ages = lives[:60] - 20.0
    near = prior_tables(lives, remaining_life_weights(lives, ages), cap=100.0, n_age=300)[0]
    assert np.all(near[:150] < odds[:150])


@pytest.fixture(scope="module")
def model() -> RulGBM:
    train = synthetic_fleet(n_units=30, seed=3, n_regimes=2)
    return RulGBM(
        regime_columns=list(SYNTH_SETTINGS),
        window=15,
        cap=60.0,
        sub_windows=[5, 10],
        n_estimators=80,
        min_child_samples=20,
        calibration_folds=3,
    ).fit(train)


def _last_rows(frame: pd.DataFrame) -> np.ndarray:
    return frame.groupby("unit").tail(1).index.to_numpy()


def test_adapting_the_prior_changes_young_units_only_and_keeps_the_graph_true(model: RulGBM) -> None:
    young = synthetic_fleet(n_units=1, seed=9, n_regimes=2, min_life=150, max_life=150).iloc[:40]
    survival = model.predict(young)
    lives = model.lives_
    assert len(lives) == 30
    # a population of units seen a few cycles before failure
    assert model.adapt_prior(lives - 10.0)
    adapted = model.predict(young)
    assert adapted[-1] < survival[-1] - 5  # a healthy unit of that population has less life left
    # the ONNX graph and its numpy twin agree after the tables were replaced
    outputs = model._outputs(young)
    np.testing.assert_allclose(outputs["prediction"], adapted)
    restored = RulGBM(**model.get_params())
    restored._set_state(model._get_state())
    np.testing.assert_allclose(restored.predict(young), adapted, rtol=1e-5)
    np.testing.assert_allclose(restored.lives_, lives)
    # no population: back to the survival prior (kernel-smoothed, so close, not equal)
    assert model.adapt_prior(None)
    assert abs(model.predict(young)[-1] - survival[-1]) < 10
    # a model without the tail has nothing to adapt
    capped = RulGBM(**{**model.get_params(), "beyond_cap": False}).fit(
        synthetic_fleet(n_units=30, seed=3, n_regimes=2)
    )
    assert not capped.adapt_prior(lives - 10.0)


def test_tails_are_validated_on_held_out_training_units(model: RulGBM) -> None:
    validation = validate_tails(model, repeats=2)
    assert set(validation) == set(SCHEMES)
    for figures in validation.values():
        assert all(np.isfinite(figures[t]) and figures[t] > 0 for t in TAILS)
    # held-out units all seen 50 cycles before failure (healthy-looking, under the cap of 60): the
    # prior from their ages beats assuming a random moment of life, which adds the survival
    # expectation beyond the cap
    held = model.validation_
    rows = np.flatnonzero(np.asarray(held["true"]) == 50)
    ages, capped = held["age"], held["capped_prediction"]
    assert ages is not None and capped is not None
    yc, age = capped[rows], ages[rows]
    survival = model._beyond_cap_numpy(yc, age)
    q = remaining_life_weights(model.lives_, age)
    population = model._beyond_cap_numpy(
        yc, age, prior_tables(model.lives_, q, model.cap, len(model.prior_odds_))
    )
    error_population = np.sqrt(np.mean((population - 50) ** 2))
    error_survival = np.sqrt(np.mean((survival - 50) ** 2))
    assert error_population < error_survival - 1
    assert best_tail(validation) in TAILS
    assert best_tail({}) == "survival prior"


def _every_cycle(lives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(age, true RUL) of every cycle of units with these lives: the survival prior's rows."""
    age = np.concatenate([np.arange(int(life)) for life in lives]).astype(np.float64)
    true = np.concatenate([np.arange(int(life) - 1, -1, -1) for life in lives]).astype(np.float64)
    return age, true


def test_likelihood_ratio_does_not_count_the_age_twice() -> None:
    from axhub.ml.rul.base import beyond_likelihood_ratio

    rng = np.random.default_rng(0)
    lives = rng.uniform(120, 300, size=120).round()
    age, true = _every_cycle(lives)
    cap = 60.0
    grid = np.arange(0.0, cap + 1.0)
    beyond = true > cap
    n_age = int(lives.max()) + 1
    prior_odds = np.array([((lives > a + cap).sum() + 0.5) / ((lives > a).sum() + 1.0) for a in range(n_age)])
    prior_odds = prior_odds / (1 - prior_odds)
    # a "capped prediction" that knows the age and nothing else: E[min(R, cap) | age]
    by_age = np.array([np.mean(np.minimum(true[age == a], cap)) for a in range(int(lives.max()))])
    blind = by_age[age.astype(int)]
    ratio = beyond_likelihood_ratio(blind, age, beyond, grid, prior_odds)
    assert ratio.shape == (len(grid), n_age)
    # where the data are, the sensors add no evidence: ratio near 1 (a few cells lag at the sharp
    # age where the shortest lives pass the cap)
    cells = np.abs(np.log(ratio[np.round(by_age[:200]).astype(int), np.arange(200)]))
    assert np.median(cells) < 0.1 and np.quantile(cells, 0.9) < 0.5
    # a capped prediction that does see the remaining life is evidence: beyond the cap is far
    # more likely when it says healthy than when it says close to failure, at the same age
    seeing = np.minimum(true, cap) + rng.normal(0, 5, size=len(true))
    ratio = beyond_likelihood_ratio(seeing, age, beyond, grid, prior_odds)
    assert ratio[60, 150] > 10 * ratio[20, 150]
    assert np.all(np.diff(ratio[:, 150]) >= -1e-9)  # monotone in the capped prediction


def test_a_bundle_with_the_older_one_dimensional_ratio_still_scores(model: RulGBM) -> None:
    state = model._get_state()
    old = RulGBM(**model.get_params())
    old._set_state({**state, "likelihood_ratio": np.asarray(state["likelihood_ratio"])[:, 0]})
    yc, age = np.array([10.0, 55.0]), np.array([40.0, 5.0])
    twin = old._beyond_cap_numpy(yc, age)
    assert np.all(np.isfinite(twin)) and twin[1] > twin[0]

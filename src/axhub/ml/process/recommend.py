"""Setpoint recommendations: search the outcome models under the process limits with optuna.

Only cheap model evaluations happen here (the machine runs nothing): optuna's TPE sampler
searches the box the limits allow around today's settings (bounds ∩ maximum step); points in
a forbidden region or outside the trust region around validated settings score below every
allowed one, and today's settings are always a candidate, so the answer is always allowed.
``explore`` adds an upper-confidence bonus (in posterior standard deviations) for a closed
loop that must learn; a recommendation to a person uses ``explore=0`` (expected value).
``pareto_front`` trades yield against metrics (cycle time, energy) with NSGA-II.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from axhub.ml.process.limits import ProcessLimits, Settings
from axhub.ml.process.model import OutcomeModel, Prediction

PENALTY = -1e6


@dataclass(frozen=True)
class Objective:
    """score = yield_weight x yield + Σ weight x metric (negative weight: less is better)."""

    yield_weight: float = 1.0
    metric_weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    settings: dict[str, float]
    current: dict[str, float]
    predicted: Prediction  # expected yield at the recommended settings, 90 % interval
    current_predicted: Prediction  # ... and at today's settings
    metrics: dict[str, dict[str, float]]  # predicted metrics (mean/low/high) at the recommendation
    evidence: dict[str, Any]

    @property
    def changes(self) -> dict[str, tuple[float, float]]:
        return {
            n: (self.current[n], v)
            for n, v in self.settings.items()
            if not math.isclose(v, self.current[n], rel_tol=1e-9, abs_tol=1e-12)
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "current": self.current,
            "predicted": self.predicted.to_json(),
            "current_predicted": self.current_predicted.to_json(),
            "metrics": self.metrics,
            "evidence": self.evidence,
        }


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _validated(model: OutcomeModel) -> list[dict[str, float]]:
    return [b.settings for b in model.batches]


def recommend(
    yield_model: OutcomeModel,
    limits: ProcessLimits,
    current: Settings,
    *,
    lot: str = "",
    context: Mapping[str, float] | None = None,
    metric_models: Mapping[str, OutcomeModel] | None = None,
    objective: Objective | None = None,
    explore: float = 0.0,
    trials: int = 60,
    seed: int = 0,
) -> Recommendation:
    """The allowed settings with the best (optimistic, if ``explore``) objective."""
    optuna = _quiet_optuna()
    objective = objective or Objective()
    metric_models = dict(metric_models or {})
    context = dict(context or {})
    current = {n: float(current[n]) for n in limits.names}
    validated = _validated(yield_model)
    box = limits.step_box(current)

    def score(settings: dict[str, float]) -> float:
        if limits.violations(settings, current, validated):
            return PENALTY
        mu, sd = yield_model.latent([settings], context, lot)
        value = objective.yield_weight / (1.0 + math.exp(-float(mu[0] + explore * sd[0])))
        for name, weight in objective.metric_weights.items():
            m_mu, m_sd = metric_models[name].latent([settings], context, lot)
            value += weight * float(m_mu[0] - math.copysign(explore, weight) * m_sd[0])
        return value

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=15)
    )
    if not limits.violations(current):  # a hand-moved machine may sit outside its bounds
        study.enqueue_trial(current)
    for prior in sorted(validated, key=lambda s: limits.distance_to(s, [current]))[:3]:
        if not limits.violations(prior, current, validated):
            study.enqueue_trial(prior)  # good settings already seen, when within one step

    def trial_score(trial: Any) -> float:
        settings = {n: trial.suggest_float(n, lo, hi) for n, (lo, hi) in box.items()}
        return score(settings)

    study.optimize(trial_score, n_trials=trials)
    best = {n: float(v) for n, v in study.best_params.items()}
    if study.best_value <= PENALTY:
        best = current
    return _describe(yield_model, limits, current, best, lot, context, metric_models)


def _describe(
    yield_model: OutcomeModel,
    limits: ProcessLimits,
    current: dict[str, float],
    best: dict[str, float],
    lot: str,
    context: Mapping[str, float],
    metric_models: Mapping[str, OutcomeModel],
) -> Recommendation:
    """The evidence: batches behind the model, the nearest ones run, what drives the outcome."""
    nearest = sorted(yield_model.batches, key=lambda b: limits.distance_to(best, [b.settings]))[:3]
    evidence = {
        "batches": len(yield_model.batches),
        "parts": sum(b.n_parts for b in yield_model.batches),
        "distance_to_validated": limits.distance_to(best, _validated(yield_model)),
        "trust_radius": limits.trust_radius,
        "nearest": [
            {"settings": b.settings, "lot": b.lot, "parts": b.n_parts, "yield": b.yield_rate} for b in nearest
        ],
        "importance": yield_model.importance(),
    }
    return Recommendation(
        settings=best,
        current=current,
        predicted=yield_model.predict(best, context, lot),
        current_predicted=yield_model.predict(current, context, lot),
        metrics={n: m.predict(best, context, lot).to_json() for n, m in metric_models.items()},
        evidence=evidence,
    )


def pareto_front(
    yield_model: OutcomeModel,
    metric_models: Mapping[str, OutcomeModel],
    limits: ProcessLimits,
    current: Settings,
    *,
    lot: str = "",
    context: Mapping[str, float] | None = None,
    trials: int = 150,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Allowed settings that no other beats on yield (max) and every metric (min) at once."""
    optuna = _quiet_optuna()
    context = dict(context or {})
    current = {n: float(current[n]) for n in limits.names}
    validated = _validated(yield_model)
    box = limits.step_box(current)
    names = list(metric_models)

    study = optuna.create_study(
        directions=["maximize", *["minimize"] * len(names)],
        sampler=optuna.samplers.NSGAIISampler(seed=seed),
    )
    study.enqueue_trial(current)

    def values(trial: Any) -> list[float]:
        settings = {n: trial.suggest_float(n, lo, hi) for n, (lo, hi) in box.items()}
        broken = len(limits.violations(settings, current, validated))
        trial.set_user_attr("violations", broken)
        trial.set_constraint("limits", float(broken))  # feasible when 0
        out = [yield_model.predict(settings, context, lot).mean]
        out += [metric_models[n].predict(settings, context, lot).mean for n in names]
        return out

    study.optimize(values, n_trials=trials)
    front = []
    for t in study.best_trials:
        if t.user_attrs["violations"]:
            continue
        front.append(
            {
                "settings": {n: float(v) for n, v in t.params.items()},
                "yield": float(t.values[0]),
                **{n: float(v) for n, v in zip(names, t.values[1:], strict=True)},
            }
        )
    return sorted(front, key=lambda p: -float(p["yield"]))

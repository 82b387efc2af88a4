"""Outcome models of a process: yield (and any per-part metric) from setpoints and context.

A Gaussian process on the batch outcome: the posterior gives every prediction an interval,
which the recommender needs (a trust region is about what the data supports) and people need
(a change is proposed with "2.1 % scrap, 90 % interval 1.2-3.5 %", not a bare number).
Yield is modelled on the logit scale with each batch's binomial noise, so a batch of 5 parts
counts for less than a batch of 200. Inputs: the setpoints scaled by their bounds, numeric
context (tool-life counter, ambient temperature, signal features from the cycle, ...) and the
material lot, one-hot.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from axhub.ml.process.limits import ProcessLimits, Settings

Z90 = 1.6449  # two-sided 90 % interval


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch (or one part: n_parts=1) taught: settings, context, counts and metrics."""

    settings: dict[str, float]
    n_parts: int
    n_passed: int
    lot: str = ""
    context: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. cycle_time_s, energy_kwh means

    @property
    def yield_rate(self) -> float:
        return self.n_passed / self.n_parts if self.n_parts else math.nan


@dataclass(frozen=True)
class Prediction:
    mean: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high}


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class _Design:
    """Turns (settings, context, lot) into the model's input matrix."""

    def __init__(
        self, limits: ProcessLimits, batches: Sequence[BatchOutcome], context_names: Sequence[str]
    ) -> None:
        self.limits = limits
        self.context_names = list(context_names)
        self.lots = sorted({b.lot for b in batches if b.lot})
        ctx = np.array([[b.context.get(c, 0.0) for c in self.context_names] for b in batches])
        ctx = ctx.reshape(len(batches), len(self.context_names))
        self.ctx_mean = ctx.mean(axis=0) if len(batches) else np.zeros(len(self.context_names))
        std = ctx.std(axis=0) if len(batches) else np.ones(len(self.context_names))
        self.ctx_std = np.where(std > 0, std, 1.0)

    def row(self, settings: Settings, context: Mapping[str, float], lot: str) -> list[float]:
        ctx = [
            (context.get(c, float(self.ctx_mean[i])) - self.ctx_mean[i]) / self.ctx_std[i]
            for i, c in enumerate(self.context_names)
        ]
        return [*self.limits.scale(settings), *ctx, *[float(lot == k) for k in self.lots]]

    def matrix(self, batches: Sequence[BatchOutcome]) -> np.ndarray:
        return np.array([self.row(b.settings, b.context, b.lot) for b in batches], dtype=float)


class OutcomeModel:
    """A GP of one outcome: ``target="yield"`` (logit, binomial noise) or a metric's name."""

    def __init__(
        self,
        limits: ProcessLimits,
        *,
        target: str = "yield",
        context_names: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        self.limits = limits
        self.target = target
        self.context_names = list(context_names)
        self.seed = seed
        self.batches: list[BatchOutcome] = []

    # ------------------------------------------------------------------------------ fit
    def _targets(self, batches: Sequence[BatchOutcome]) -> tuple[np.ndarray, np.ndarray]:
        if self.target == "yield":
            n = np.array([b.n_parts for b in batches], dtype=float)
            k = np.array([b.n_passed for b in batches], dtype=float)
            p = (k + 0.5) / (n + 1.0)  # Jeffreys-style smoothing: 0 or all pass stays finite
            return _logit(p), 1.0 / ((n + 1.0) * p * (1.0 - p))
        y = np.array([b.metrics[self.target] for b in batches], dtype=float)
        # Metrics are means over a batch: little noise, the white kernel learns the rest.
        return y, np.full(len(y), 1e-3 * max(1e-12, float(np.var(y))))

    def fit(self, batches: Sequence[BatchOutcome]) -> OutcomeModel:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        usable = [
            b for b in batches if b.n_parts > 0 and (self.target == "yield" or self.target in b.metrics)
        ]
        if len(usable) < 2:
            raise ValueError("at least two batches with outcomes are needed to learn the process")
        self.batches = list(usable)
        self.design = _Design(self.limits, usable, self.context_names)
        x = self.design.matrix(usable)
        width = x.shape[1]
        kernel = ConstantKernel(1.0, (0.05, 20.0)) * Matern(
            length_scale=np.full(width, 0.5), length_scale_bounds=(0.05, 20.0), nu=2.5
        )
        # Part-by-part records (one part per row): pass/fail is a class, not a noisy rate, so a
        # GP classifier (Laplace) replaces the binomial-noise regression.
        self.per_part = self.target == "yield" and all(b.n_parts == 1 for b in usable)
        self.constant: float | None = None
        with warnings.catch_warnings():
            # Hyper-parameters at a bound are expected with few batches (a flat direction).
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.per_part:
                labels = np.array([b.n_passed for b in usable])
                if len(set(labels.tolist())) < 2:
                    self.constant = float(_logit(np.array([0.9 if labels[0] else 0.1]))[0])
                    return self
                self.gpc = GaussianProcessClassifier(kernel=kernel, random_state=self.seed)
                self.gpc.fit(x, labels)
                return self
            y, noise = self._targets(usable)
            self.y_mean = float(y.mean())
            self.y_std = float(y.std()) or 1.0
            self.gp = GaussianProcessRegressor(
                kernel=kernel + WhiteKernel(0.01, (1e-5, 1.0)),
                alpha=noise / self.y_std**2,
                normalize_y=False,
                n_restarts_optimizer=1 if self.target == "yield" else 0,
                random_state=self.seed,
            )
            self.gp.fit(x, (y - self.y_mean) / self.y_std)
        return self

    # -------------------------------------------------------------------------- predict
    def _latent(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.per_part:
            if self.constant is not None:
                return np.full(len(x), self.constant), np.full(len(x), 2.0)
            mean, var = self.gpc.latent_mean_and_variance(x)
            return np.asarray(mean), np.sqrt(np.maximum(np.asarray(var), 0.0))
        mu, sd = self.gp.predict(x, return_std=True)
        return mu * self.y_std + self.y_mean, sd * self.y_std

    def latent(
        self, settings: Sequence[Settings], context: Mapping[str, float] | None = None, lot: str = ""
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd on the model's scale (logit for yield)."""
        x = np.array([self.design.row(s, context or {}, lot) for s in settings], dtype=float)
        return self._latent(x)

    def predict(
        self, settings: Settings, context: Mapping[str, float] | None = None, lot: str = ""
    ) -> Prediction:
        """Expected outcome and its 90 % interval (yield: a fraction; metric: its units)."""
        mu, sd = self.latent([settings], context, lot)
        low, high = mu - Z90 * sd, mu + Z90 * sd
        if self.target == "yield":
            mu, low, high = _sigmoid(mu), _sigmoid(low), _sigmoid(high)
        return Prediction(float(mu[0]), float(low[0]), float(high[0]))

    def expected(self, x: np.ndarray) -> np.ndarray:
        mu, _ = self._latent(x)
        return _sigmoid(mu) if self.target == "yield" else mu

    # ---------------------------------------------------------------------- explanations
    def importance(self, seed: int = 0) -> dict[str, float]:
        """How much each setpoint moves the prediction over the data seen (shares summing to 1).

        Permutation on the training inputs: shuffle one setpoint's column, measure the mean
        absolute change of the expected outcome.
        """
        rng = np.random.default_rng(seed)
        x = self.design.matrix(self.batches)
        base = self.expected(x)
        effect = {}
        for i, name in enumerate(self.limits.names):
            shuffled = x.copy()
            shuffled[:, i] = rng.permutation(shuffled[:, i]) if len(x) > 2 else 1 - shuffled[:, i]
            effect[name] = float(np.mean(np.abs(self.expected(shuffled) - base)))
        total = sum(effect.values()) or 1.0
        return {n: v / total for n, v in effect.items()}

    def partial_dependence(self, name: str, points: int = 21) -> dict[str, list[float]]:
        """Expected outcome as ``name`` sweeps its bounds, averaged over the batches seen."""
        lo, hi = self.limits.bounds[name]
        i = self.limits.names.index(name)
        x = self.design.matrix(self.batches)
        grid = np.linspace(lo, hi, points)
        means = []
        for value in grid:
            swept = x.copy()
            swept[:, i] = (value - lo) / (hi - lo)
            means.append(float(np.mean(self.expected(swept))))
        return {"x": [float(v) for v in grid], "mean": means}

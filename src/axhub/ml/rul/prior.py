"""What an RUL model may assume about a unit's remaining life before it looks at the sensors.

A unit seen at age ``t`` has ``R = L - t`` cycles left, ``L`` its (unknown) life. Which ``R`` are
plausible depends on how units come to be scored: in a continuously monitored fleet the age is a
random moment of the life, so ``p(R = r | t) ∝ p_L(t + r)`` (the survival prior); a set of units
cut short some time before failure (the C-MAPSS test sets, a batch sent for inspection) has its own
distribution of ``R``. Writing ``p(R = r | t) ∝ q(r) · p_L(t + r)`` covers both: ``q`` flat is the
survival prior, and for a population of units whose ages are known (no labels) ``q`` can be
estimated by deconvolution: their ages are ``t = L - R`` with ``L`` from the training lives, so
``q`` is the EM (Richardson-Lucy) solution of ``p(t) = Σ_r q(r) p_L(t + r)``, smoothed a little
at every step (EMS), which keeps a small population from making a spiky ``q``.

The model uses the prior through two tables per age: the odds that ``R`` exceeds the cap and the
mean excess ``E[R - cap | R > cap]`` (see ``RulWindowEstimator._fit_beyond_cap``).
"""

from __future__ import annotations

import numpy as np

#: Fewer scored units than this: their ages say too little, keep the survival prior.
MIN_POPULATION = 20


def life_pmf(lives: np.ndarray, length: int) -> np.ndarray:
    """Gaussian-kernel estimate of the life distribution on cycles ``0 .. length - 1`` (the
    bandwidth is half of Silverman's rule, at least 3 cycles: lives are a few hundred numbers)."""
    lives = np.asarray(lives, dtype=np.float64)
    spread = float(lives.std()) if len(lives) > 1 else 10.0
    bandwidth = max(3.0, 0.5 * 1.06 * spread * len(lives) ** -0.2)
    grid = np.arange(length, dtype=np.float64)
    density = np.exp(-0.5 * ((grid[:, None] - lives[None, :]) / bandwidth) ** 2).sum(axis=1)
    return np.asarray(density / density.sum())


def remaining_life_weights(
    lives: np.ndarray, ages: np.ndarray | None, iterations: int = 300, smoothing: float = 5.0
) -> np.ndarray:
    """``q(r)`` on ``r = 0 .. horizon - 1``: flat (the survival prior) when ``ages`` is None or
    holds fewer than :data:`MIN_POPULATION` units, else the EM deconvolution of the ages."""
    lives = np.asarray(lives, dtype=np.float64)
    horizon = int(1.3 * lives.max()) + 1
    flat = np.full(horizon, 1.0 / horizon)
    if ages is None or len(ages) < MIN_POPULATION:
        return flat
    p_life = life_pmf(lives, 2 * horizon + 1)
    r = np.arange(horizon)
    t = np.clip(np.round(np.asarray(ages, dtype=np.float64)), 0, horizon).astype(np.int64)
    kernel_rows = p_life[t[:, None] + r[None, :]]  # p_L(t_i + r)
    kernel_rows = kernel_rows[kernel_rows.sum(axis=1) > 1e-12]  # ages no training life reaches
    if len(kernel_rows) < MIN_POPULATION:
        return flat
    taps = np.arange(-3 * int(smoothing), 3 * int(smoothing) + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / smoothing) ** 2)
    kernel /= kernel.sum()
    q = flat.copy()
    for _ in range(iterations):
        w = kernel_rows * q[None, :]
        w /= w.sum(axis=1, keepdims=True)
        q = np.convolve(w.mean(axis=0), kernel, mode="same")
        q /= q.sum()
    return np.asarray(q)


def prior_tables(lives: np.ndarray, q: np.ndarray, cap: float, n_age: int) -> tuple[np.ndarray, np.ndarray]:
    """Per age ``a = 0 .. n_age - 1``: the prior odds of ``R > cap`` and ``E[R - cap | R > cap]``
    under ``p(R = r | a) ∝ q(r) p_L(a + r)``."""
    horizon = len(q)
    p_life = life_pmf(np.asarray(lives, dtype=np.float64), n_age + horizon + 1)
    r = np.arange(horizon, dtype=np.float64)
    beyond = r > cap
    odds = np.zeros(n_age)
    excess = np.zeros(n_age)
    for a in range(n_age):
        w = q * p_life[a : a + horizon]
        total, far = float(w.sum()), float(w[beyond].sum())
        if total <= 1e-300 or far <= 1e-300:
            # no training life reaches this far: nothing beyond the cap (keep the last excess)
            excess[a] = excess[a - 1] if a else 0.0
            continue
        p = min(max(far / total, 1e-4), 1 - 1e-4)
        odds[a] = p / (1 - p)
        excess[a] = float(np.sum(w[beyond] * (r[beyond] - cap)) / far)
    return odds, excess

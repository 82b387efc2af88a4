"""Which beyond-cap tail to trust, decided on held-out training units only.

How units come to be scored changes what the right tail is (see :mod:`.prior`), and a test set's
way of cutting units is not known in advance. So the held-out predictions of the training units
(every cycle of every held-out unit) are cut in several ways fixed a priori, and each tail is
scored on each: the capped head read as the RUL, the survival prior, and the prior estimated from
the cut units' ages (no labels). The tail with the lowest mean RMSE over the schemes is the
default; test labels are never involved.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from axhub.ml.rul.prior import prior_tables, remaining_life_weights
from axhub.ml.rul.target import phm08_score, rmse

if TYPE_CHECKING:
    from axhub.ml.rul.base import RulWindowEstimator

#: Ways of cutting a held-out unit of life ``L`` (cycles observed >= MIN_SEEN where possible):
#: a random moment of life; remaining life uniform on 0-200; cut at 30-90 % of life; remaining
#: life exponential with mean 60 (mostly close to failure).
SCHEMES = ("random moment", "RUL uniform 0-200", "cut at 30-90 % of life", "RUL exponential 60")
TAILS = ("capped head", "survival prior", "population prior")
MIN_SEEN = 30


def _unit_starts(true: np.ndarray) -> np.ndarray:
    """Rows are whole units in order, RUL falling within a unit: a new unit starts where it rises."""
    rises = np.flatnonzero(np.diff(true) >= 0) + 1
    return np.r_[0, rises, len(true)]


def _cut(scheme: str, life: int, rng: np.random.Generator) -> int:
    """Row index (0-based, within the unit) of the last observed cycle."""
    floor = min(MIN_SEEN, life - 1)
    if scheme == SCHEMES[0]:
        return int(rng.integers(0, life))
    if scheme == SCHEMES[1]:
        return life - 1 - min(int(rng.integers(0, 201)), life - 1 - floor)
    if scheme == SCHEMES[2]:
        return min(int(life * rng.uniform(0.3, 0.9)), life - 1)
    return life - 1 - min(int(rng.exponential(60.0)), life - 1 - floor)


def validate_tails(model: RulWindowEstimator, repeats: int = 3, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{scheme: {tail: RMSE, tail + " score/unit": PHM08 per unit}}`` on held-out training units."""
    held = getattr(model, "validation_", None)
    lives = getattr(model, "lives_", np.zeros(0))
    if held is None or held["age"] is None or len(lives) == 0:
        return {}
    yc, true, age = (np.asarray(held[k], dtype=np.float64) for k in ("capped_prediction", "true", "age"))
    bounds = _unit_starts(true)
    rng = np.random.default_rng(seed)
    survival = (model.prior_odds_, model.excess_table_)
    out: dict[str, dict[str, float]] = {}
    for scheme in SCHEMES:
        rows = np.asarray(
            [
                start + _cut(scheme, int(end - start), rng)
                for _ in range(repeats)
                for start, end in pairwise(bounds)
            ]
        )
        n_units = len(bounds) - 1
        preds: dict[str, np.ndarray] = {"capped head": model._capped_numpy(yc[rows])}
        preds["survival prior"] = model._beyond_cap_numpy(yc[rows], age[rows], survival)
        figures: dict[str, float] = {}
        population = []
        for r in range(repeats):  # one population per repeat, as a test set is one population
            part = rows[r * n_units : (r + 1) * n_units]
            q = remaining_life_weights(lives, age[part])
            tables = prior_tables(lives, q, float(model.cap), len(model.prior_odds_))
            population.append(model._beyond_cap_numpy(yc[part], age[part], tables))
        preds["population prior"] = np.concatenate(population)
        for tail, pred in preds.items():
            figures[tail] = round(rmse(pred, true[rows]), 2)
            figures[f"{tail} score/unit"] = round(phm08_score(pred, true[rows]) / len(rows), 1)
        out[scheme] = figures
    return out


def best_tail(validation: dict[str, dict[str, float]]) -> str:
    """The tail with the lowest mean RMSE over the schemes (the survival prior when unvalidated)."""
    if not validation:
        return "survival prior"
    return min(TAILS, key=lambda tail: float(np.mean([v[tail] for v in validation.values()])))

"""Differential privacy on a member's side: clip the update, add Gaussian noise, account ε.

Each round releases one Gaussian mechanism with noise multiplier z on an update whose L2 norm
is clipped to C (sensitivity C, noise std z·C). ε after T rounds comes from Google's
``dp_accounting`` RDP accountant (no subsampling: the whole update is released), so it is
tighter than adding per-round ε but never optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from axhub.federated.policy import DifferentialPrivacy


@lru_cache(maxsize=4096)
def epsilon_after(rounds: int, noise_multiplier: float, delta: float) -> float:
    """ε of ``rounds`` releases of the Gaussian mechanism with this noise multiplier."""
    if rounds <= 0:
        return 0.0
    import dp_accounting

    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)
    return float(accountant.get_epsilon(delta))


def clip_and_noise(
    update: list[np.ndarray], dp: DifferentialPrivacy, rng: np.random.Generator
) -> tuple[list[np.ndarray], float]:
    """The update clipped to ``dp.clip_norm`` (all arrays together) plus N(0, (z·C)²) noise;
    also the norm before clipping (for the member's own log, it is not sent)."""
    norm = float(np.sqrt(sum(float(np.sum(np.square(u, dtype=np.float64))) for u in update)))
    scale = min(1.0, dp.clip_norm / max(norm, 1e-12))
    std = dp.noise_multiplier * dp.clip_norm
    noised = [
        (u.astype(np.float64) * scale + rng.normal(0.0, std, size=u.shape)).astype(u.dtype) for u in update
    ]
    return noised, norm


@dataclass
class PrivacyLedger:
    """How much of a member's ε budget is spent; refuses a round that would overspend it."""

    dp: DifferentialPrivacy
    rounds_released: int = 0
    history: list[float] = field(default_factory=list)

    @property
    def spent(self) -> float:
        return epsilon_after(self.rounds_released, self.dp.noise_multiplier, self.dp.delta)

    def can_release(self) -> bool:
        after = epsilon_after(self.rounds_released + 1, self.dp.noise_multiplier, self.dp.delta)
        return after <= self.dp.epsilon_budget

    def record_release(self) -> float:
        self.rounds_released += 1
        self.history.append(self.spent)
        return self.history[-1]

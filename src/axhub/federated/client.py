"""A member's Flower client: trains on its own arrays and sends back only parameters and the
metrics its site policy lets out. The policy is the member's, applied here, whatever the
server asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.client import NumPyClient

from axhub.core.errors import AxHubError
from axhub.federated import learner
from axhub.federated.learner import FedTask
from axhub.federated.policy import SitePolicy
from axhub.federated.privacy import PrivacyLedger, clip_and_noise

# Why a member sent nothing this round (status metric; 0 = trained).
REFUSED_SAMPLES, REFUSED_SECAGG, REFUSED_BUDGET = 1, 2, 3


@dataclass
class MemberData:
    """A member's own training and validation arrays (never sent anywhere)."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass
class WireLog:
    """What this client handed to Flower to send, message by message (for audits and tests)."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    def record(self, kind: str, arrays: list[np.ndarray], num_examples: int, metrics: dict[str, Any]) -> None:
        self.sent.append(
            {
                "kind": kind,
                "shapes": [list(a.shape) for a in arrays],
                "bytes": int(sum(a.nbytes for a in arrays)),
                "num_examples": num_examples,
                "metrics": dict(metrics),
            }
        )


class MemberClient(NumPyClient):
    def __init__(
        self,
        member: str,
        task: FedTask,
        policy: SitePolicy,
        data: MemberData,
        *,
        seed: int = 0,
        noise_seed: int | None = None,
        secure_aggregation: bool = False,
    ) -> None:
        self.member = member
        # Whether this member's own client app masks its update (SecAgg+): a fact of the
        # member's side, never taken from the server's config.
        self.secure_aggregation = secure_aggregation
        self.task = task
        self.policy = policy
        self.data = data
        # ``seed`` makes local training repeatable; the DP noise must not be: anyone who knows
        # the seed could subtract it. It comes from the OS's entropy unless a benchmark or a
        # test asks for repeatable noise with ``noise_seed``.
        self.noise_seed = noise_seed
        self.rng = np.random.default_rng(noise_seed)
        self.seed = seed
        self.round = 0
        self.ledger = PrivacyLedger(policy.dp) if policy.dp is not None else None
        self.wire = WireLog()
        self._local_only: list[np.ndarray] | None = None

    # -- what the member reports about itself ---------------------------------------------
    def _status(self, code: int) -> dict[str, Any]:
        out: dict[str, Any] = {"member": self.member, "status": code}
        if self.ledger is not None:
            out["epsilon_spent"] = self.ledger.spent
            out["epsilon_budget"] = self.ledger.dp.epsilon_budget
        return out

    def _weight(self) -> int:
        # The sample count is itself information; it leaves only if the policy allows it.
        return len(self.data.x) if "n_samples" in self.policy.allowed_metrics else 1

    def _refuse(self, params: list[np.ndarray], code: int) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        metrics = self._status(code)
        self.wire.record("fit", [], 0, metrics)
        return [], 0, metrics

    # -- Flower ------------------------------------------------------------------------------
    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return learner.get_params(learner.build_net(self.task))

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        self.round += 1
        try:
            self.policy.check_secure_aggregation(self.secure_aggregation)
        except AxHubError:
            return self._refuse(parameters, REFUSED_SECAGG)
        try:
            self.policy.check_samples(len(self.data.x))
        except AxHubError:
            return self._refuse(parameters, REFUSED_SAMPLES)
        if self.ledger is not None and not self.ledger.can_release():
            return self._refuse(parameters, REFUSED_BUDGET)
        # The server's mu is ignored: the task the member accepted fixes it.
        new = learner.train_local(
            self.task, parameters, self.data.x, self.data.y, seed=self.seed + self.round
        )
        if self.ledger is not None and self.policy.dp is not None:
            update = [n - p for n, p in zip(new, parameters, strict=True)]
            noised, _ = clip_and_noise(update, self.policy.dp, self.rng)
            new = [p + u for p, u in zip(parameters, noised, strict=True)]
            self.ledger.record_release()
        metrics = self._status(0)
        metrics.update(self.policy.outgoing_metrics(self._metrics(new)))
        self.wire.record("fit", new, self._weight(), metrics)
        return new, self._weight(), metrics

    def _metrics(self, params: list[np.ndarray]) -> dict[str, float]:
        out = learner.evaluate(self.task, params, self.data.x_val, self.data.y_val)
        out["n_samples"] = float(len(self.data.x))
        return out

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        """Scores the candidates the server sends (joint model first, then the joint model
        without each member, for contributions) on this member's own validation data."""
        size = len(learner.get_params(learner.build_net(self.task)))
        n = max(1, len(parameters) // size)
        metrics = self._status(0)
        joint = parameters[:size]
        own = self._metrics(joint)
        if "loss" in self.policy.allowed_metrics:
            for k in range(1, n):
                cand = parameters[k * size : (k + 1) * size]
                metrics[f"cand_loss_{k}"] = learner.evaluate(
                    self.task, cand, self.data.x_val, self.data.y_val
                )["loss"]
        metrics.update({f"joint_{k}": v for k, v in self.policy.outgoing_metrics(own).items()})
        if bool(config.get("final", False)):
            local = self._local_only_params()
            metrics.update(
                {f"local_{k}": v for k, v in self.policy.outgoing_metrics(self._metrics(local)).items()}
            )
        loss = own["loss"] if "loss" in self.policy.allowed_metrics else 0.0
        self.wire.record("evaluate", [], self._weight(), metrics)
        return float(loss), self._weight(), metrics

    def _local_only_params(self) -> list[np.ndarray]:
        if self._local_only is None:
            epochs = max(1, int(self.task.local_epochs) * max(self.round, 1))
            self._local_only = learner.fit_centrally(
                self.task, self.data.x, self.data.y, epochs=epochs, seed=self.seed
            )
        return self._local_only

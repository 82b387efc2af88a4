"""The hub's side: FedAvg (FedProx when the task sets mu) that keeps a round-by-round record
(members' reported metrics, bytes each way, time) and stops when a member's policy says no.

Contribution is leave-one-out per round: after each round the members score the joint model
and the joint model without each member on their own validation data (only losses come back);
a member's contribution is the mean increase in loss when it is left out, averaged over rounds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import (
    EvaluateIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.strategy.aggregate import aggregate

from axhub.federated.client import REFUSED_BUDGET, REFUSED_SAMPLES, REFUSED_SECAGG

REFUSAL_REASONS = {
    REFUSED_SAMPLES: "min_samples",
    REFUSED_SECAGG: "secure_aggregation",
    REFUSED_BUDGET: "epsilon_budget",
}


def _param_bytes(p: Parameters) -> int:
    return int(sum(len(t) for t in p.tensors))


@dataclass
class RoundRecord:
    round: int
    seconds: float = 0.0
    bytes_down: int = 0  # hub → members
    bytes_up: int = 0  # members → hub
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: dict[str, dict[str, Any]] = field(default_factory=dict)
    contribution: dict[str, float] = field(default_factory=dict)


class RecordingFedAvg(FedAvg):
    def __init__(
        self,
        *,
        n_members: int,
        proximal_mu: float,
        secure_aggregation: bool,
        num_rounds: int,
        progress_path: Path | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(
            min_fit_clients=n_members,
            min_evaluate_clients=n_members,
            min_available_clients=n_members,
            fraction_fit=1.0,
            fraction_evaluate=1.0,
            **kw,
        )
        self.proximal_mu = proximal_mu
        self.secure_aggregation = secure_aggregation
        self.num_rounds = num_rounds
        # Rounds finished so far, rewritten after each round: a job watching the run shows progress.
        self.progress_path = progress_path
        self.records: list[RoundRecord] = []
        self.stopped: str | None = None  # why the run ended early
        self.final_parameters: list[np.ndarray] | None = None
        self._last: list[tuple[str, list[np.ndarray], int]] = []
        self._started = 0.0

    def _record(self, server_round: int) -> RoundRecord:
        if not self.records or self.records[-1].round != server_round:
            self.records.append(RoundRecord(round=server_round))
        return self.records[-1]

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> Any:
        if self.stopped:
            return []
        self._started = time.perf_counter()
        instructions = super().configure_fit(server_round, parameters, client_manager)
        rec = self._record(server_round)
        for _, ins in instructions:
            ins.config["proximal_mu"] = self.proximal_mu
            ins.config["secure_aggregation"] = self.secure_aggregation
            rec.bytes_down += _param_bytes(ins.parameters)
        return instructions

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: list[Any]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        rec = self._record(server_round)
        kept: list[tuple[str, list[np.ndarray], int]] = []
        for _, res in results:
            member = str(res.metrics.get("member", "?"))
            rec.members[member] = dict(res.metrics)
            if not self.secure_aggregation:
                # Under SecAgg+ every result already holds the unmasked aggregate; what each
                # member sent (its masked vector) is counted by the server app instead.
                rec.bytes_up += _param_bytes(res.parameters)
            status = int(res.metrics.get("status", 0))
            if status:
                self.stopped = self.stopped or f"{member}: {REFUSAL_REASONS.get(status, status)}"
                continue
            kept.append((member, parameters_to_ndarrays(res.parameters), res.num_examples))
        if failures and not self.stopped:
            self.stopped = f"{len(failures)} member(s) failed"
        if self.stopped or not kept:
            rec.seconds = time.perf_counter() - self._started
            return None, {}
        self._last = kept
        # SecAgg+ hands the strategy the weighted mean it unmasked (the same in every result);
        # the members' own updates never reach the server, so there is nothing to average.
        joint = kept[0][1] if self.secure_aggregation else aggregate([(p, n) for _, p, n in kept])
        self.final_parameters = joint
        rec.seconds = time.perf_counter() - self._started
        return ndarrays_to_parameters(joint), {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> Any:
        if not self._last or self.stopped:
            return []
        joint = parameters_to_ndarrays(parameters)
        candidates = list(joint)
        # Leave-one-out needs each member's update, which SecAgg+ hides: no candidates then.
        if len(self._last) > 1 and not self.secure_aggregation:
            for i in range(len(self._last)):
                rest = [(p, n) for j, (_, p, n) in enumerate(self._last) if j != i]
                candidates.extend(aggregate(rest))
        final = server_round >= self.num_rounds
        ins = EvaluateIns(ndarrays_to_parameters(candidates), {"final": final})
        self._record(server_round).bytes_down += _param_bytes(ins.parameters) * len(self._last)
        clients = client_manager.sample(num_clients=len(self._last), min_num_clients=len(self._last))
        return [(c, ins) for c in clients]

    def aggregate_evaluate(self, server_round: int, results: list[Any], failures: list[Any]) -> Any:
        rec = self._record(server_round)
        order = [m for m, _, _ in self._last]
        gains: dict[str, list[float]] = {m: [] for m in order}
        for _, res in results:
            member = str(res.metrics.get("member", "?"))
            rec.evaluation[member] = dict(res.metrics)
            if "cand_loss_1" not in res.metrics:
                continue  # this member's policy keeps its losses at home
            base = float(res.loss)
            for k, left_out in enumerate(order, start=1):
                gains[left_out].append(float(res.metrics[f"cand_loss_{k}"]) - base)
        rec.contribution = {m: float(np.mean(v)) for m, v in gains.items() if v}
        self._write_progress(server_round)
        return None, {}

    def _write_progress(self, server_round: int) -> None:
        if self.progress_path is None:
            return
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"round": server_round, "of": self.num_rounds, "stopped": self.stopped}))
        tmp.replace(self.progress_path)  # a reader never sees half a file

    # -- summary --------------------------------------------------------------------------
    def contribution(self) -> dict[str, float]:
        """Leave-one-out contribution averaged over rounds (loss increase without the member)."""
        per: dict[str, list[float]] = {}
        for rec in self.records:
            for m, v in rec.contribution.items():
                per.setdefault(m, []).append(v)
        return {m: float(np.mean(v)) for m, v in per.items()}

    def summary(self) -> dict[str, Any]:
        return {
            "rounds": [rec.__dict__ for rec in self.records],
            "rounds_completed": sum(
                1 for r in self.records if r.contribution or (r.members and not self.stopped)
            ),
            "stopped": self.stopped,
            "contribution": self.contribution(),
        }

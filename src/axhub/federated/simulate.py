"""The same members and the same aggregation in one process, for benchmarks that sweep many
settings on a shared CPU. Real deployments and the tests run ``process.launch`` (separate
processes over Flower's gRPC); this loop calls the very same ``MemberClient`` objects."""

from __future__ import annotations

import time
from typing import Any

from flwr.server.strategy.aggregate import aggregate

from axhub.federated import learner
from axhub.federated.client import MemberClient
from axhub.federated.learner import FedTask


def simulate(task: FedTask, clients: list[MemberClient], rounds: int) -> dict[str, Any]:
    params = learner.get_params(learner.build_net(task))
    records: list[dict[str, Any]] = []
    stopped: str | None = None
    for r in range(1, rounds + 1):
        started = time.perf_counter()
        results = []
        down = up = 0
        for c in clients:
            down += sum(p.nbytes for p in params)
            new, n, metrics = c.fit(params, {})
            up += sum(p.nbytes for p in new)
            if metrics["status"]:
                stopped = stopped or f"{c.member}: status {metrics['status']}"
            else:
                results.append((new, n))
        if stopped or not results:
            break
        params = aggregate(results)
        records.append(
            {"round": r, "seconds": time.perf_counter() - started, "bytes_down": down, "bytes_up": up}
        )
    return {"params": params, "rounds": records, "stopped": stopped}

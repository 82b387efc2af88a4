"""The closed loop, machine-agnostic: run a batch, learn, recommend within the limits, repeat.

``run_batch`` is whatever makes parts (the simulator in benchmarks and tests; on a plant, the
approved write-back followed by the measured batch). The first batches step around the
starting settings (one step each way at most) so the model has a local slope to learn from.
The upper-confidence bonus ``explore`` shrinks over the budget (to a fifth of it at the end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from axhub.ml.process.limits import ProcessLimits
from axhub.ml.process.model import BatchOutcome, OutcomeModel
from axhub.ml.process.recommend import recommend

RunBatch = Callable[[Mapping[str, float]], BatchOutcome]
NextContext = Callable[[], tuple[str, dict[str, float]]]  # (lot, context) of the next batch


@dataclass
class LoopTrace:
    settings: list[dict[str, float]] = field(default_factory=list)
    outcomes: list[BatchOutcome] = field(default_factory=list)
    violations: list[list[str]] = field(default_factory=list)


def run_loop(
    run_batch: RunBatch,
    next_context: NextContext,
    limits: ProcessLimits,
    start: Mapping[str, float],
    *,
    batches: int,
    context_names: tuple[str, ...] = (),
    explore: float = 1.0,
    warmup: int = 3,
    trials: int = 60,
    seed: int = 0,
) -> LoopTrace:
    rng = np.random.default_rng(seed)
    trace = LoopTrace()
    current = {n: float(start[n]) for n in limits.names}
    for t in range(batches):
        validated = [o.settings for o in trace.outcomes] or [current]
        previous = trace.settings[-1] if trace.settings else None
        trace.violations.append(limits.violations(current, previous, validated))
        outcome = run_batch(current)
        trace.settings.append(current)
        trace.outcomes.append(outcome)
        if t + 1 >= batches:
            break
        lot, context = next_context()
        if t + 1 < warmup:
            current = _local_probe(limits, current, trace, rng)
            continue
        model = OutcomeModel(limits, context_names=context_names, seed=seed).fit(trace.outcomes)
        # Explore less as the budget runs out: the last batches should be the best ones.
        beta = explore * max(0.2, 1.0 - t / batches)
        rec = recommend(
            model, limits, current, lot=lot, context=context, explore=beta, trials=trials,
            seed=seed + t,
        )  # fmt: skip
        current = rec.settings
    return trace


def _local_probe(
    limits: ProcessLimits, current: dict[str, float], trace: LoopTrace, rng: np.random.Generator
) -> dict[str, float]:
    """A random allowed point within one step of the start (falls back to staying put)."""
    validated = [o.settings for o in trace.outcomes]
    box = limits.step_box(current)
    for _ in range(200):
        cand = {n: float(rng.uniform(lo, hi)) for n, (lo, hi) in box.items()}
        if not limits.violations(cand, current, validated):
            return cand
    return current

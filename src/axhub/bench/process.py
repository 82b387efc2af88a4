"""``axhub bench process``: closed-loop process optimisation on the simulator, and quality
prediction on the real CNC mill records.

Simulator (``sim.process``, hidden true response): from the plant's baseline settings, each
method gets the same budget of batches and the same lots and tool wear:

* **AX Hub loop**: GP yield model + optuna search under every limit (bounds, max step per
  change, forbidden regions, trust region), upper-confidence exploration;
* **random search**: uniform allowed settings (bounds and forbidden regions respected; it
  ignores the step and trust limits, which only makes it freer than the loop);
* **DOE**: a 3-level full factorial (27 runs) plus centre points, in random order, forbidden
  points moved to the centre (the classic screening design), then the best run kept.

Regret is measured against the truth, batch by batch: cumulative regret = Σ (optimum yield −
true yield of the settings run), i.e. scrap above the best possible, in parts per part made;
final regret = the same gap for the settings each method would keep after its budget.

CNC mill (``../shared/datasets/cnc_mill``): feed rate and clamp pressure (+ tool condition) →
machining finished / part good (finished and passed visual inspection), leave one experiment
out, beside the majority class of the training folds. Fourteen experiments: tiny, reported as is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

import numpy as np
import typer

from axhub.bench._output import DATA_HELP, DOCS_HELP, OUT_HELP, BenchIO
from axhub.bench.report import BenchResult

YIELD_SHARE_TARGET = 0.95


@lru_cache(maxsize=512)
def _optimum(lot: str, batch: int) -> float:
    from axhub.sim import process as sp

    return sp.optimum(lot, batch)[1]


def _limits() -> Any:
    from axhub.ml.process.limits import ProcessLimits
    from axhub.sim import process as sp

    return ProcessLimits(
        bounds=dict(sp.BOUNDS), max_step=dict(sp.MAX_STEP), forbidden=list(sp.FORBIDDEN),
        trust_radius=0.3,
    )  # fmt: skip


class _Plant:
    """The simulator, counting the truth for every batch it runs."""

    def __init__(self, seed: int, parts: int) -> None:
        from axhub.sim.process import ProcessSim

        self.sim = ProcessSim(seed=seed, parts_per_batch=parts)
        self.regret: list[float] = []
        self.share: list[float] = []

    def context(self) -> tuple[str, dict[str, float]]:
        return self.sim.next_lot(), {"tool_batches": float(self.sim.batch % 60)}

    def run(self, settings: Mapping[str, float]) -> Any:
        from axhub.ml.process.model import BatchOutcome
        from axhub.sim import process as sp

        batch, (lot, context) = self.sim.batch, self.context()
        parts = self.sim.run_batch(settings)
        best, got = _optimum(lot, batch), sp.true_yield(settings, lot, batch)
        self.regret.append(best - got)
        self.share.append(got / best)
        return BatchOutcome(
            dict(settings), len(parts), sum(p.passed for p in parts), lot, context,
            {"cycle_time_s": parts[0].cycle_time_s, "energy_kwh": parts[0].energy_kwh},
        )  # fmt: skip

    def final_regret(self, settings: Mapping[str, float]) -> float:
        """The gap of the settings a method keeps, on the last batch's lot and tool wear."""
        from axhub.sim import process as sp

        batch = self.sim.batch - 1
        lot = sp.lot_for(batch)
        return _optimum(lot, batch) - sp.true_yield(settings, lot, batch)


def _ours(plant: _Plant, budget: int, seed: int) -> tuple[dict[str, float], int]:
    from axhub.ml.process.loop import run_loop
    from axhub.sim import process as sp

    trace = run_loop(
        plant.run, plant.context, _limits(), sp.BASELINE, batches=budget,
        context_names=("tool_batches",), explore=1.0, seed=seed,
    )  # fmt: skip
    return trace.settings[-1], sum(1 for v in trace.violations if v)


def _random(plant: _Plant, budget: int, seed: int) -> tuple[dict[str, float], int]:
    from axhub.sim import process as sp

    rng = np.random.default_rng(10_000 + seed)
    outcomes: list[Any] = []
    while len(outcomes) < budget:
        cand = {n: float(rng.uniform(lo, hi)) for n, (lo, hi) in sp.BOUNDS.items()}
        if not sp.in_forbidden(cand):
            outcomes.append(plant.run(cand))
    best = max(outcomes, key=lambda o: o.yield_rate)
    return best.settings, 0


def _doe(plant: _Plant, budget: int, seed: int) -> tuple[dict[str, float], int]:
    from itertools import product

    from axhub.sim import process as sp

    names = list(sp.BOUNDS)
    centre = {n: (lo + hi) / 2 for n, (lo, hi) in sp.BOUNDS.items()}
    levels = [(lo, (lo + hi) / 2, hi) for lo, hi in sp.BOUNDS.values()]
    design = [dict(zip(names, p, strict=True)) for p in product(*levels)]
    design = [centre if sp.in_forbidden(p) else p for p in design]
    design += [centre] * max(0, budget - len(design))
    order = np.random.default_rng(20_000 + seed).permutation(len(design))[:budget]
    outcomes = [plant.run(design[i]) for i in order]
    best = max(outcomes, key=lambda o: o.yield_rate)
    return best.settings, 0


METHODS: dict[str, Callable[[_Plant, int, int], tuple[dict[str, float], int]]] = {
    "AX Hub loop (GP + optuna, limits)": _ours,
    "random search": _random,
    "DOE 3^3 factorial + centre": _doe,
}


def simulate(seeds: int, budget: int, parts: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    per: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for seed in range(seeds):
        for name, method in METHODS.items():
            plant = _Plant(seed, parts)
            started = time.perf_counter()
            final, violations = method(plant, budget, seed)
            reached = next((i + 1 for i, s in enumerate(plant.share) if s >= YIELD_SHARE_TARGET), 0)
            per[name].append(
                {
                    "cumulative_regret": sum(plant.regret),
                    "final_regret": plant.final_regret(final),
                    "last_share": plant.share[-1],
                    "first_batch_95": reached,
                    "violations": violations,
                    "seconds": time.perf_counter() - started,
                }
            )
    rows = []
    for name, runs in per.items():

        def stat(key: str, runs: list[dict[str, float]] = runs) -> str:
            values = [r[key] for r in runs]
            return f"{mean(values):.3f} ± {pstdev(values):.3f}"

        rows.append(
            {
                "method": name,
                "cumulative regret": stat("cumulative_regret"),
                "final regret": stat("final_regret"),
                "yield share at last batch": stat("last_share"),
                "first batch ≥95 %": stat("first_batch_95"),
                "seeds ≥95 % at end": sum(r["last_share"] >= YIELD_SHARE_TARGET for r in runs),
                "violations": int(sum(r["violations"] for r in runs)),
                "s/run": round(mean(r["seconds"] for r in runs), 1),
            }
        )  # fmt: skip
    ours, rand, doe = (per[m] for m in METHODS)
    cum = {m: mean(r["cumulative_regret"] for r in runs) for m, runs in per.items()}
    names = list(METHODS)
    verdict = {
        "cumulative_regret_vs_random": cum[names[0]] / cum[names[1]],
        "cumulative_regret_vs_doe": cum[names[0]] / cum[names[2]],
        "final_regret_ours_random_doe": [mean(r["final_regret"] for r in x) for x in (ours, rand, doe)],
        "seeds_at_95_at_last_batch": sum(r["last_share"] >= YIELD_SHARE_TARGET for r in ours),
        "seeds": seeds,
        "violations": sum(r["violations"] for r in ours),
        "runs": per,
    }  # fmt: skip
    return rows, verdict


def _halves(regrets: list[float]) -> bool:
    ours, *others = regrets
    return all(ours <= 0.5 * other for other in others)


def cnc_quality(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Leave-one-experiment-out on the CNC mill records (two tasks), majority beside it."""
    from axhub.core.errors import AxHubError
    from axhub.ml.datasets import load_cnc_mill
    from axhub.ml.process.limits import ProcessLimits
    from axhub.ml.process.model import BatchOutcome, OutcomeModel

    try:
        mill = load_cnc_mill(root)
    except AxHubError as exc:
        return [], [f"CNC mill records not evaluated: {exc}"]
    exps = mill.experiments
    limits = ProcessLimits(
        bounds={
            "feedrate": (min(e.feedrate for e in exps), max(e.feedrate for e in exps)),
            "clamp_pressure": (
                min(e.clamp_pressure for e in exps), max(e.clamp_pressure for e in exps)
            ),
        }
    )  # fmt: skip
    tasks = {
        "machining finished": lambda e: bool(e.machining_finalized),
        "part good (finished and passed inspection)": lambda e: bool(
            e.machining_finalized and e.passed_visual_inspection
        ),
    }
    rows = []
    for task, label in tasks.items():
        hits = {"GP yield model": 0, "logistic regression": 0, "majority": 0}
        brier = []
        for held in exps:
            train = [e for e in exps if e is not held]
            truth = label(held)
            outcomes = [
                BatchOutcome(
                    {"feedrate": e.feedrate, "clamp_pressure": e.clamp_pressure},
                    1,
                    int(label(e)),
                    context={"tool_worn": float(e.tool_worn)},
                )
                for e in train
            ]
            model = OutcomeModel(limits, context_names=("tool_worn",)).fit(outcomes)
            p = model.predict(
                {"feedrate": held.feedrate, "clamp_pressure": held.clamp_pressure},
                {"tool_worn": float(held.tool_worn)},
            ).mean
            hits["GP yield model"] += (p >= 0.5) == truth
            brier.append((p - truth) ** 2)
            hits["logistic regression"] += _logistic(train, held, label) == truth
            hits["majority"] += (sum(label(e) for e in train) * 2 >= len(train)) == truth
        rows.append(
            {
                "task": task,
                "experiments": len(exps),
                "positives": sum(label(e) for e in exps),
                **{f"accuracy ({k})": v / len(exps) for k, v in hits.items()},
                "Brier (GP)": float(np.mean(brier)),
            }
        )
    return rows, []


def _logistic(train: list[Any], held: Any, label: Callable[[Any], bool]) -> bool:
    """The classic per-part classifier on the same three inputs, for comparison."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def x(e: Any) -> list[float]:
        return [e.feedrate, e.clamp_pressure, float(e.tool_worn)]

    y = [label(e) for e in train]
    if len(set(y)) < 2:
        return bool(y[0])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit([x(e) for e in train], y)
    return bool(clf.predict([x(held)])[0])


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("process")
    def process(
        seeds: int = typer.Option(5, help="simulator seeds / 시뮬레이터 시드 수"),
        batches: int = typer.Option(30, help="batches per method (the budget) / 배치 예산"),
        parts: int = typer.Option(40, help="parts per batch / 배치당 부품 수"),
        data: Path | None = typer.Option(None, help=DATA_HELP),
        out: Path | None = typer.Option(None, help=OUT_HELP),
        update_docs: bool = typer.Option(False, "--update-docs", help=DOCS_HELP),
    ) -> None:
        """Process optimisation on the simulator + CNC quality prediction. / 공정 최적화 벤치마크."""
        io = BenchIO.make("process", data, out, update_docs)
        rows, verdict = simulate(seeds, batches, parts)
        cnc_rows, cnc_notes = cnc_quality(io.data)
        vs_r, vs_d = verdict["cumulative_regret_vs_random"], verdict["cumulative_regret_vs_doe"]
        notes = [
            f"simulator, {seeds} seeds x {batches} batches x {parts} parts, from the baseline settings; "
            "regret against the hidden true response (optimum per lot and tool wear).",
            f"target: ≥95 % of the optimum's yield within {batches} batches: "
            f"{verdict['seeds_at_95_at_last_batch']}/{seeds} seeds at the last batch.",
            f"target: cumulative regret ≤ 0.5 x random and x DOE: ours/random = {vs_r:.2f}, "
            f"ours/DOE = {vs_d:.2f} ({'met' if max(vs_r, vs_d) <= 0.5 else 'MISSED'}).",
            "final regret (settings kept after the budget, random/DOE keep their best-observed batch) "
            "ours/random/DOE = "
            + " / ".join(f"{v:.3f}" for v in verdict["final_regret_ours_random_doe"])
            + (
                " (≤ 0.5 x both: met)"
                if _halves(verdict["final_regret_ours_random_doe"])
                else " (≤ 0.5 x both: MISSED on this measure)"
            ),
            f"constraint violations by the loop: {verdict['violations']} "
            "(random/DOE respect bounds and forbidden regions but not step or trust limits).",
            *[
                f"CNC mill, {r['task']}: accuracy GP {r['accuracy (GP yield model)']:.3f}, "
                f"logistic {r['accuracy (logistic regression)']:.3f}, majority "
                f"{r['accuracy (majority)']:.3f}; Brier (GP) {r['Brier (GP)']:.3f} "
                f"({r['experiments']} experiments, {r['positives']} positive; leave one experiment out)"
                for r in cnc_rows
            ],
            *cnc_notes,
        ]
        result = BenchResult(
            name="process",
            title="Process optimisation (closed loop) and quality prediction",
            dataset="sim.process (hidden response) + cnc_mill records",
            split=f"{seeds} seeds; CNC leave-one-experiment-out",
            rows=rows,
            notes=notes,
            extra={"verdict": verdict, "cnc": cnc_rows},
        )
        io.publish(result)

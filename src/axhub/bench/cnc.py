"""``axhub bench cnc``: UMich SMART CNC mill, leave-one-experiment-out.

For each task (tool worn, machining finalized, passed visual inspection) every experiment is
predicted by a model trained on the others; inspection is only known for finished jobs.
"""

from __future__ import annotations

import time
from typing import Any

import typer

TASKS = ("tool_worn", "machining_finalized", "passed_visual_inspection")


def run() -> None:
    import numpy as np

    from axhub.bench.report import BenchResult, save_result
    from axhub.ml.datasets import load_cnc_mill
    from axhub.ml.machining.outcome import Job, leave_one_experiment_out

    mill = load_cnc_mill()
    jobs = [Job(e.signals, e.feedrate, e.clamp_pressure) for e in mill.experiments]
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"experiments": [e.number for e in mill.experiments]}
    for method in ("aggregate", "windows"):
        row: dict[str, Any] = {
            "model": f"{method} ({'logistic regression' if method == 'aggregate' else 'random forest'})"
        }
        started = time.perf_counter()
        for task in TASKS:
            labels = [getattr(e, task) for e in mill.experiments]
            truth, proba = leave_one_experiment_out(jobs, labels, method=method)
            pred = proba >= 0.5
            row[f"{task} acc %"] = round(100 * float(np.mean(pred == truth)), 1)
            row[f"{task} n"] = len(truth)
            extra[f"{method}/{task}"] = {"true": truth.tolist(), "proba": proba.round(3).tolist()}
        row["LOEO time s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
    result = BenchResult(
        name="cnc",
        title="CNC mill machining outcome (leave-one-experiment-out)",
        dataset=f"UMich SMART CNC mill, {len(jobs)} experiments",
        split="leave one experiment out",
        rows=rows,
        notes=[
            "Target: tool condition >= 90 % (issue 3). Majority-class baselines: tool 50 %, "
            "finalized 79 %, inspection 55 % on these experiments.",
            "Only experiments 1-14 are shipped here (the original set has 18).",
            "Caveat: the following-error features (actual - command position while moving) were added "
            "after per-experiment aggregates had been looked at next to the labels of all 14 experiments, "
            "so these LOEO figures are not a clean estimate; experiments 15-18 will tell.",
            "With 7 worn / 7 unworn jobs over 6 feedrates, leaving one job out leaves its feedrate twin "
            "with the other label: models that key on feedrate (directly or through axis velocities) "
            "score below chance (the windows row).",
        ],
        extra=extra,
    )
    save_result(result)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("cnc")
    def cnc() -> None:
        """CNC mill: tool wear, job completion, visual inspection. / CNC 가공 결과 예측 벤치마크."""
        from axhub.ml.datasets.common import dataset_folder

        dataset_folder("cnc_mill")
        run()

"""``axhub bench cnc``: UMich SMART CNC mill, leave-one-experiment-out (or a train/test split).

For each task (tool worn, machining finalized, passed visual inspection) every experiment is
predicted by a model trained on the others; inspection is only known for finished jobs. Tool
wear also gets the settings-normalised cutting-phase model (:mod:`axhub.ml.machining.wear`), its
balanced accuracy, a permutation test against shuffled labels, and the matched-pair evidence
(jobs with identical feedrate and clamp pressure but a different tool). ``--test`` names
experiments to hold out instead of leaving each one out in turn.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from axhub.bench._output import DATA_HELP, DOCS_HELP, OUT_HELP, BenchIO, fail_nothing, split_list

TASKS = ("tool_worn", "machining_finalized", "passed_visual_inspection")


def run(io: BenchIO, experiments: list[int] | None, test: list[int], permutations: int) -> None:
    import numpy as np

    from axhub.bench.report import BenchResult
    from axhub.ml.baseline import majority_accuracy
    from axhub.ml.datasets import load_cnc_mill
    from axhub.ml.machining.outcome import Job, MachiningOutcomeClassifier, leave_one_experiment_out
    from axhub.ml.machining.wear import (
        SettingsNormalisedWear,
        balanced_accuracy,
        leave_one_out,
        matched_pairs,
        permutation_p_value,
    )

    mill = load_cnc_mill(io.data)
    chosen = [e for e in mill.experiments if experiments is None or e.number in experiments]
    jobs = [Job(e.signals, e.feedrate, e.clamp_pressure) for e in chosen]
    numbers = [e.number for e in chosen]
    held = [i for i, n in enumerate(numbers) if n in test]
    split = "leave one experiment out" if not held else f"train on {len(jobs) - len(held)}, test on {test}"
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"experiments": numbers, "test": test}

    def evaluate(labels: list[Any], predict: Any) -> tuple[np.ndarray, np.ndarray]:
        known = [i for i, v in enumerate(labels) if v is not None]
        if held:
            train = [i for i in known if i not in held]
            target = [i for i in known if i in held]
            proba = predict([jobs[i] for i in train], [labels[i] for i in train], [jobs[i] for i in target])
            return np.asarray([labels[i] for i in target], dtype=bool), proba
        return predict.loo([jobs[i] for i in known], [labels[i] for i in known])

    class Fixed:
        def __init__(self, method: str) -> None:
            self.method = method

        def __call__(self, train: list[Job], y: list[bool], target: list[Job]) -> np.ndarray:
            model = MachiningOutcomeClassifier(method=self.method).fit(train, y)
            return np.asarray([model.predict_proba(j) for j in target])

        def loo(self, known: list[Job], y: list[bool]) -> tuple[np.ndarray, np.ndarray]:
            truth, proba = leave_one_experiment_out(known, list[bool | None](y), method=self.method)
            return np.asarray(truth, dtype=bool), np.asarray(proba)

    class Wear:
        def __call__(self, train: list[Job], y: list[bool], target: list[Job]) -> np.ndarray:
            return SettingsNormalisedWear().fit(train, y).predict_proba(target)

        def loo(self, known: list[Job], y: list[bool]) -> tuple[np.ndarray, np.ndarray]:
            return np.asarray(y, dtype=bool), leave_one_out(known, y)

    baseline: dict[str, Any] = {"model": "baseline: majority class of the evaluated jobs"}
    for method, label in (
        ("aggregate", "aggregate (logistic regression)"),
        ("windows", "windows (random forest)"),
        ("wear", "cutting phase, normalised by feedrate and clamp (logistic regression)"),
    ):
        row: dict[str, Any] = {"model": label}
        started = time.perf_counter()
        for task in TASKS if method != "wear" else ("tool_worn",):
            labels = [getattr(e, task) for e in chosen]
            truth, proba = evaluate(labels, Wear() if method == "wear" else Fixed(method))
            pred = proba >= 0.5
            row[f"{task} acc %"] = round(100 * float(np.mean(pred == truth)), 1)
            row[f"{task} balanced acc %"] = round(100 * balanced_accuracy(truth, pred), 1)
            row[f"{task} n"] = len(truth)
            baseline[f"{task} acc %"] = round(100 * majority_accuracy(truth), 1)
            baseline[f"{task} balanced acc %"] = 50.0
            baseline[f"{task} n"] = len(truth)
            extra[f"{method}/{task}"] = {"true": truth.tolist(), "proba": np.round(proba, 3).tolist()}
        row["time s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
    rows.append(baseline)

    worn = [bool(e.tool_worn) for e in chosen]
    wear_ba = rows[2]["tool_worn balanced acc %"] / 100
    p_value = float("nan")
    if not held and permutations > 0:
        p_value, null = permutation_p_value(jobs, worn, wear_ba, permutations)
        extra["permutation"] = {
            "p": p_value,
            "null_mean": float(null.mean()),
            "null_q95": float(np.quantile(null, 0.95)),
        }
    rows[2]["tool_worn permutation p"] = round(p_value, 3) if p_value == p_value else "n/a"
    pairs = matched_pairs(jobs, worn, numbers)
    extra["matched_pairs"] = pairs.round(3).to_dict(orient="records")
    signs = (
        {f: f"{int((pairs[f] > 0).sum())}+/{int((pairs[f] < 0).sum())}-" for f in pairs.columns[4:]}
        if len(pairs)
        else {}
    )
    result = BenchResult(
        name="cnc",
        title="CNC mill machining outcome and tool wear (by experiment)",
        dataset=f"UMich SMART CNC mill, {len(jobs)} experiments",
        split=split,
        rows=rows,
        notes=[
            "Target (issue 13): tool condition balanced accuracy >= 80 % leaving one experiment out, and a "
            "permutation test against shuffled labels with p < 0.05. Balanced accuracy = mean of the recalls "
            "of worn and unworn; the majority class scores 50 %.",
            "Settings-normalised model: per job, over the cutting phases only, log spindle power and current "
            "and log X/Y drive current and power while the axis moves; inside each fold a linear model "
            "feature ~ log(feedrate) + clamp fitted on the training jobs removes what the settings explain, "
            "and a logistic regression classifies the residuals. The feature list was fixed from the physics "
            "(force rises with wear) before it was scored; the permutation test covers the model's fitting, "
            "not that choice.",
            f"Permutation test ({permutations} label shuffles, the whole leave-one-out rerun each time): "
            f"p = {p_value:.3f}."
            if p_value == p_value
            else "Permutation test: not run (split given).",
            "Matched pairs (identical feedrate and clamp, worn minus unworn, log units; "
            "extra.matched_pairs): "
            "the sign of the difference per feature over the pairs: "
            + (", ".join(f"{k} {v}" for k, v in signs.items()) or "no pairs")
            + ". Wear would show as a consistent positive sign; where signs are mixed the signals do not "
            "carry wear across experiments at fixed settings, and no model can learn it from 14 jobs.",
            "Only experiments 1-14 are shipped here (the original set has 18). The following-error features "
            "of the aggregate model were added after per-experiment aggregates had been looked at next to "
            "the "
            "labels, so its figures are not a clean estimate.",
        ],
        extra=extra,
    )
    io.publish(result)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("cnc")
    def cnc(
        experiments: str = typer.Option(
            "", help="experiment numbers to use, e.g. 1,2,3 (default: all) / 실험"
        ),
        test: str = typer.Option("", help="hold these experiments out instead of leave-one-out / 시험 실험"),
        permutations: int = typer.Option(
            200, help="label shuffles for the permutation test / 순열 검정 횟수"
        ),
        data: Path | None = typer.Option(None, help=DATA_HELP),
        out: Path | None = typer.Option(None, help=OUT_HELP),
        update_docs: bool = typer.Option(False, "--update-docs", help=DOCS_HELP),
    ) -> None:
        """CNC mill: tool wear, job completion, visual inspection. / CNC 가공 결과 예측 벤치마크."""
        from axhub.core.errors import AxHubError
        from axhub.ml.datasets import load_cnc_mill

        io = BenchIO.make("cnc", data, out, update_docs)
        try:
            found = [e.number for e in load_cnc_mill(io.data).experiments]
        except AxHubError as exc:
            raise fail_nothing(str(exc)) from exc
        wanted = [int(x) for x in split_list(experiments)] or found
        held = [int(x) for x in split_list(test)]
        missing = sorted(set(wanted + held) - set(found))
        if missing or len(wanted) < 3:
            raise fail_nothing(
                f"CNC experiments {missing or wanted} not usable under {io.data / 'cnc_mill'} "
                f"(found {found}); need three or more"
            )
        run(io, sorted(set(wanted) | set(held)), held, permutations)

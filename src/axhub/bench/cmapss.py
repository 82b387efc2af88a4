"""``axhub bench cmapss``: NASA C-MAPSS, the standard last-cycle protocol, on any subset.

Models are fitted on ``train_<subset>`` only, with hyper-parameters fixed beforehand by
cross-validation on training units; each test unit's RUL at its last cycle is compared with
``RUL_<subset>`` twice: against the file as given (uncapped) and against the truth clipped at
the evaluation cap (predictions clipped too). RMSE, PHM08 score, the mean error at true RUL
50-100 (the late bias the score punishes) and the coverage of the 90 % intervals. Two trivial
baselines sit in the same table: a constant (the mean training RUL) and the age-only survival
prior ``E[L - t | L > t]`` of the training lives. The deep model is run with several seeds
(mean ± std) and is the default only if it beats the trees on training-unit validation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from axhub.bench._output import DATA_HELP, DOCS_HELP, OUT_HELP, BenchIO, fail_nothing, split_list

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from axhub.ml.datasets.cmapss import CmapssSubset

# Published test RMSE / PHM08 score against the RUL file as given (papers' own tables; FD001 and
# FD003 from the datasets README, FD002 and FD004 as quoted in the same papers), so a run on a
# subset not shipped here (FD004) still shows where the literature stands.
REFERENCES: dict[str, dict[str, tuple[float, float]]] = {
    "CNN (Babu 2016)": {
        "FD001": (18.45, 1299),
        "FD002": (30.29, 13570),
        "FD003": (19.82, 1600),
        "FD004": (29.16, 7886),
    },
    "Deep LSTM (Zheng 2017)": {
        "FD001": (16.14, 338),
        "FD002": (24.49, 4450),
        "FD003": (16.18, 852),
        "FD004": (28.17, 5550),
    },
    "MS-DCNN": {"FD001": (11.44, 196), "FD003": (11.67, 242)},
    "FFVE": {"FD001": (12.31, 280), "FD003": (12.43, 302)},
    "MTSTAN": {"FD001": (10.97, 175), "FD003": (10.90, 188)},
}
# Targets of issue 13 (uncapped RMSE, capped RMSE); the score target is "below the best published".
TARGETS = {"FD001": (11.0, 10.5), "FD002": (13.0, 11.5), "FD003": (11.0, 10.5)}
SEEDS = (0, 1, 2)


def _pad_short_units(test: pd.DataFrame, window: int) -> pd.DataFrame:
    """Units seen for fewer cycles than the window get their first row repeated in front (as
    training rows do), so every test unit can be scored."""
    import numpy as np
    import pandas as pd

    parts = []
    for _, unit in test.groupby("unit", sort=True):
        short = window - len(unit)
        parts.append(pd.concat([unit.iloc[np.zeros(short, dtype=int)], unit]) if short > 0 else unit)
    return pd.concat(parts, ignore_index=True)


def _last_cycle(model: Any, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, lower, upper, capped head) at the last cycle of every test unit."""
    import numpy as np

    padded = _pad_short_units(test, int(model.window))
    out = model._outputs(padded)
    last = padded.groupby("unit", sort=True).tail(1).index.to_numpy()  # RangeIndex: positions
    pred, lower, upper, capped = (
        np.asarray(out[k], dtype=np.float64)[last] for k in ("prediction", "lower", "upper", "capped")
    )
    return pred, lower, upper, capped


def find_subsets(root: Path) -> list[str]:
    """Every subset with train_, test_ and RUL_ files under ``<root>/cmapss``."""
    folder = root / "cmapss"
    names = sorted(p.stem.removeprefix("train_") for p in folder.glob("train_*.txt"))
    return [n for n in names if (folder / f"test_{n}.txt").is_file() and (folder / f"RUL_{n}.txt").is_file()]


def figures(
    pred: np.ndarray, true: np.ndarray, cap: float, capped: np.ndarray | None = None
) -> dict[str, Any]:
    """RMSE / score against the truth as given, and of ``capped`` (default: the prediction
    clipped at ``cap``) against the truth clipped at ``cap``, and the late bias at true 50-100."""
    import numpy as np

    from axhub.ml.rul.target import phm08_score, rmse

    mid = (true >= 50) & (true <= 100)
    capped = np.minimum(pred, cap) if capped is None else capped
    return {
        "RMSE": round(rmse(pred, true), 2),
        "score": round(phm08_score(pred, true), 1),
        f"RMSE capped {cap:g}": round(rmse(capped, np.minimum(true, cap)), 2),
        f"score capped {cap:g}": round(phm08_score(capped, np.minimum(true, cap)), 1),
        "bias @ true 50-100": round(float(np.mean(pred[mid] - true[mid])), 1) if mid.any() else "",
    }


def survival_prior(train: pd.DataFrame, ages: np.ndarray) -> np.ndarray:
    """Age-only baseline: ``E[L - t | L > t]`` over the training lives (the last life when no
    training unit lived longer than ``t``)."""
    import numpy as np

    lives = train.groupby("unit")["cycle"].max().to_numpy(dtype=np.float64)
    out = np.empty(len(ages))
    for i, t in enumerate(ages):
        longer = lives[lives > t]
        out[i] = float(np.mean(longer - t)) if len(longer) else 0.0
    return out


def _baselines(data: CmapssSubset, cap: float) -> dict[str, dict[str, Any]]:
    import numpy as np

    from axhub.ml.rul.target import run_to_failure_rul

    true_rows = run_to_failure_rul(data.train["unit"].to_numpy(), data.train["cycle"].to_numpy())
    ages = data.test.groupby("unit", sort=True)["cycle"].max().to_numpy(dtype=np.float64)
    constant = np.full(len(data.test_rul), float(np.mean(true_rows)))
    rows = {
        "baseline: constant mean training RUL": figures(constant, data.test_rul, cap),
        "baseline: age only, mean remaining training life beyond age t": figures(
            survival_prior(data.train, ages), data.test_rul, cap
        ),
    }
    # the capped figure of a constant is fairest with the mean of the capped target
    capped_constant = np.full(len(constant), float(np.mean(np.minimum(true_rows, cap))))
    capped = figures(capped_constant, data.test_rul, cap)
    rows["baseline: constant mean training RUL"].update(
        {k: v for k, v in capped.items() if k.endswith(f"capped {cap:g}")}
    )
    return rows


def run(
    io: BenchIO,
    subsets: list[str],
    seeds: tuple[int, ...] = SEEDS,
    cap: float = 125.0,
    deep: bool = True,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from rich.progress import Progress

    from axhub.bench.report import BenchResult
    from axhub.ml.datasets import load_cmapss
    from axhub.ml.datasets.cmapss import SENSOR_COLUMNS, SETTING_COLUMNS
    from axhub.ml.rul.gbm import RulGBM
    from axhub.ml.rul.validation import best_tail, validate_tails

    inputs: dict[str, Any] = {
        "columns": [*SENSOR_COLUMNS, "cycle"],
        "regime_columns": list(SETTING_COLUMNS),
        "group": "unit",
        "cap": cap,
    }
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"cap": cap}
    fig, axes = plt.subplots(1, len(subsets), figsize=(5 * len(subsets), 4), squeeze=False)
    n_steps = len(subsets) * (1 + (len(seeds) if deep else 0))
    with Progress() as progress:
        task = progress.add_task("C-MAPSS", total=n_steps)
        for ax, subset in zip(axes[0], subsets, strict=True):
            data = load_cmapss(subset, io.data)
            true = data.test_rul
            info: dict[str, Any] = {
                "test_units": len(true),
                "test_units_beyond_cap": int(np.sum(true > cap)),
                "max_true_rul": float(true.max()),
            }
            for name, figs in _baselines(data, cap).items():
                rows.append({"model": name, "subset": subset, **figs})

            started = time.perf_counter()
            gbm = RulGBM(**inputs).fit(data.train)
            gbm_s = time.perf_counter() - started
            progress.advance(task)
            # which tail: decided on held-out training units cut in several ways (no test labels)
            validation = validate_tails(gbm)
            tail = best_tail(validation)
            ages = data.test.groupby("unit", sort=True)["cycle"].max().to_numpy(dtype=np.float64)
            p_surv, lo_s, hi_s, c_gbm = _last_cycle(gbm, data.test)
            gbm.adapt_prior(ages)
            p_pop, lo_p, hi_p, _ = _last_cycle(gbm, data.test)
            by_tail = {
                "survival prior": (p_surv, lo_s, hi_s),
                "population prior": (p_pop, lo_p, hi_p),
                "capped head": (c_gbm, None, None),
            }
            p_gbm, lo, hi = by_tail[tail]
            labels = {
                "population prior": "tail: prior from the test units' ages (no labels)",
                "survival prior": "tail: survival prior of the training lives",
                "capped head": "capped head read as the RUL (no tail)",
            }
            for name, (pred, low, high) in by_tail.items():
                row = {
                    "model": f"window features + LightGBM, {labels[name]}"
                    + (" (default: best on training units)" if name == tail else ""),
                    "subset": subset,
                    **figures(pred, true, cap, c_gbm),
                }
                if low is not None and high is not None:
                    row["coverage 90%"] = round(float(np.mean((true >= low) & (true <= high))), 3)
                if name == tail:
                    row["train s"] = round(gbm_s, 1)
                rows.append(row)
            info["gbm"] = {
                "regimes": len(gbm.centroids_),
                "validation_rmse_capped": gbm.calibration_rmse_,
                "tail_validation": validation,
                "default_tail": tail,
                "phm_shift_table": gbm.shift_table_[::25].tolist(),
                "capped_phm_shift_table": gbm.capped_shift_table_[::25].tolist(),
                "capped_head": c_gbm.round(2).tolist(),
                "predictions": p_gbm.round(2).tolist(),
            }
            if lo is None or hi is None:
                lo, hi = p_gbm, p_gbm

            p_cnn = None
            if deep:
                from axhub.ml.rul.cnn import RulCNN

                preds, per_seed, cnn_s, val = [], [], 0.0, []
                for seed in seeds:
                    started = time.perf_counter()
                    cnn = RulCNN(seed=seed, **inputs).fit(data.train)
                    cnn_s += time.perf_counter() - started
                    progress.advance(task)
                    if tail == "population prior":
                        cnn.adapt_prior(ages)
                    p, _, _, c = _last_cycle(cnn, data.test)
                    p = c if tail == "capped head" else p
                    preds.append(p)
                    per_seed.append(figures(p, true, cap, c))
                    val.append(cnn.calibration_rmse_)
                keys = [k for k in per_seed[0] if isinstance(per_seed[0][k], float)]
                cnn_row: dict[str, Any] = {
                    "model": f"1D-CNN, {labels[tail]} (rul/cnn), {len(seeds)} seeds",
                    "subset": subset,
                }
                for key in keys:
                    values = np.array([f[key] for f in per_seed], dtype=np.float64)
                    cnn_row[key] = f"{values.mean():.2f} ± {values.std():.2f}"
                cnn_row["train s"] = round(cnn_s / len(seeds), 1)
                rows.append(cnn_row)
                p_cnn = np.mean(preds, axis=0)
                info["cnn"] = {"per_seed": per_seed, "validation_rmse_capped": val}
                # the default is chosen on training units only (held-out validation RMSE)
                info["default"] = "cnn" if float(np.mean(val)) < gbm.calibration_rmse_ else "gbm"
            else:
                info["default"] = "gbm"
            extra[subset] = info

            order = np.argsort(true)
            ax.plot(true[order], "k.-", label="true RUL (file)")
            ax.errorbar(
                np.arange(len(order)),
                p_gbm[order],
                yerr=[p_gbm[order] - lo[order], hi[order] - p_gbm[order]],
                fmt="r.",
                alpha=0.4,
                label="LightGBM (90% interval)",
            )
            if p_cnn is not None:
                ax.plot(p_cnn[order], "b.", alpha=0.6, label="1D-CNN (seed mean)")
            ax.axhline(cap, color="grey", ls=":", lw=0.8, label=f"cap {cap:g}")
            ax.set_title(f"C-MAPSS {subset} test units")
            ax.set_xlabel("test unit (sorted by true RUL)")
            ax.set_ylabel("RUL (cycles)")
            ax.legend(fontsize=7)
    plot = io.plot("bench-cmapss-pred.png")
    fig.tight_layout()
    fig.savefig(plot, dpi=70)
    plt.close(fig)

    references = [
        {"model": model, "subset": s, "RMSE": rmse_, "score": score}
        for model, by_subset in REFERENCES.items()
        for s, (rmse_, score) in by_subset.items()
        if s in subsets
    ]
    defaults = ", ".join(f"{s}: {extra[s]['default']}" for s in subsets)
    notes = [
        "Protocol: fit on train_<subset> only; predict each test unit at its last cycle. 'RMSE'/'score': "
        f"against RUL_<subset> as given (uncapped), of the model's RUL output. 'capped {cap:g}': the "
        f"model's capped head E[min(RUL, {cap:g})] (the trees' own output plus its PHM08 shift) against "
        f"the truth clipped at {cap:g} cycles, the piece-wise linear cap used for training; baselines: "
        "their prediction clipped.",
        "Targets (issue 13): uncapped RMSE FD001 <= 11.0, FD002 <= 13.0, FD003 <= 11.0 and PHM08 score below "
        "the best published; capped at 125: <= 10.5 (FD001/FD003), <= 11.5 (FD002).",
        "Beyond the cap: prediction = capped prediction + P(RUL > cap | sensors, age) x E[RUL - cap | "
        "RUL > cap, age], P from the likelihood ratio of out-of-fold capped predictions at the same age "
        "(a monotone classifier of 'beyond the cap' on capped prediction and age, over the prior odds of "
        "that age, so the age the trees already use is not counted twice) times the prior odds, "
        "plus a PHM08-optimal shift per prediction bin from out-of-fold predictions. The prior of RUL at "
        "age t is q(r) p_life(t + r): the survival prior takes q flat (age = a random moment of life); the "
        "population prior estimates q from the scored units' ages alone (EM deconvolution with the "
        "training lives; ages, never labels).",
        "Tail choice (default row): on held-out training units cut four ways fixed a priori (a random "
        "moment of life; RUL uniform 0-200; cut at 30-90 % of life; RUL exponential, mean 60), the tail "
        "with the lowest mean RMSE; per subset: "
        + "; ".join(
            f"{s}: {extra[s]['gbm']['default_tail']} ("
            + ", ".join(
                f"{t} {np.mean([v[t] for v in extra[s]['gbm']['tail_validation'].values()]):.1f}"
                for t in ("capped head", "survival prior", "population prior")
            )
            + ")"
            for s in subsets
            if extra[s]["gbm"]["tail_validation"]
        )
        + ". Test labels are never used to choose anything.",
        "Hyper-parameters (window 60, cap 125, trees) were fixed earlier by 4-fold cross-validation on "
        "FD001 training units. The health-index features (the same window kernels over a least-squares "
        "combination of the sensors fitted to the capped RUL on degrading training rows) were adopted on "
        "4-fold unit-wise cross-validation of training units cut at RUL uniform 0-150 (capped RMSE FD001 "
        "10.13 -> 9.31, FD003 10.05 -> 9.49); tried the same way and not adopted: windows 120/200 (10.07 "
        "/ 10.90), 3 LightGBM seeds averaged (9.97, three times the training time), blends with "
        "ExtraTrees or ridge (10.23 / 10.37).",
        "Default model per subset, chosen on training-unit validation RMSE (deep must beat trees): "
        f"{defaults}.",
        "Baselines: a constant (mean training RUL; its capped figure uses the mean capped RUL) and the "
        "age-only survival prior E[life - t | life > t] from the training lives.",
        "FD002 and FD004 references are those of the same papers (not in the datasets README); none of "
        "the listed papers say whether they clip the truth.",
        "Intervals: split-conformal from out-of-fold (LightGBM) or held-out-unit (CNN) residuals, 90 % "
        "nominal. Train times: wall-clock, 1 thread, on a 2-core machine shared with other jobs.",
    ]
    if not deep:
        notes.append("The 1D-CNN was not run (--no-deep); it is never the default unless it beats the trees.")
    result = BenchResult(
        name="cmapss",
        title="C-MAPSS remaining useful life",
        dataset="NASA C-MAPSS " + ", ".join(subsets),
        split="train_<subset> -> test_<subset> last cycle",
        rows=rows,
        references=references,
        notes=notes,
        plots=[plot.name],
        extra=extra,
    )
    io.publish(result)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("cmapss")
    def cmapss(
        subsets: str = typer.Option(
            "", help="comma-separated subsets, e.g. FD001,FD002 (default: all found) / 서브셋"
        ),
        seeds: int = typer.Option(3, help="CNN seeds (mean ± std) / CNN 시드 수"),
        cap: float = typer.Option(125.0, help="RUL cap for training and the capped figures / 상한"),
        deep: bool = typer.Option(True, help="also run the 1D-CNN / CNN도 실행"),
        data: Path | None = typer.Option(None, help=DATA_HELP),
        out: Path | None = typer.Option(None, help=OUT_HELP),
        update_docs: bool = typer.Option(False, "--update-docs", help=DOCS_HELP),
    ) -> None:
        """C-MAPSS remaining useful life (RMSE, PHM08 score, capped and uncapped). / 잔여 수명 벤치마크."""
        io = BenchIO.make("cmapss", data, out, update_docs)
        found = find_subsets(io.data)
        wanted = split_list(subsets) or found
        missing = [s for s in wanted if s not in found]
        if missing or not wanted:
            raise fail_nothing(
                f"C-MAPSS subset(s) {', '.join(missing) or '(none)'} not found under {io.data / 'cmapss'} "
                f"(found: {', '.join(found) or 'none'}); each needs train_, test_ and RUL_<subset>.txt"
            )
        run(io, wanted, seeds=tuple(range(seeds)), cap=cap, deep=deep)

"""``axhub bench cmapss``: NASA C-MAPSS FD001 and FD003, the standard last-cycle protocol.

Models are fitted on the training trajectories only, with hyper-parameters fixed beforehand by
cross-validation on training units (held-out units cut at random cycles, like the test sets);
each test unit's RUL at its last cycle is compared with ``RUL_FD00x``: RMSE and the PHM08 score,
plus the coverage of the conformal intervals. The deep model is run with several seeds and
reported as mean ± std.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _ref(model: str, fd001: tuple[float, float], fd003: tuple[float, float]) -> dict[str, Any]:
    return {
        "model": model,
        "FD001 RMSE": fd001[0],
        "FD001 score": fd001[1],
        "FD003 RMSE": fd003[0],
        "FD003 score": fd003[1],
    }


REFERENCES = [
    _ref("CNN (Babu 2016)", (18.45, 1299), (19.82, 1600)),
    _ref("Deep LSTM (Zheng 2017)", (16.14, 338), (16.18, 852)),
    _ref("MS-DCNN", (11.44, 196), (11.67, 242)),
    _ref("FFVE", (12.31, 280), (12.43, 302)),
    _ref("MTSTAN", (10.97, 175), (10.90, 188)),
]
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


def _last_cycle(model: Any, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    padded = _pad_short_units(test, int(model.window))
    pred, lower, upper = model.predict_interval(padded)
    last = padded.groupby("unit", sort=True).tail(1).index.to_numpy()  # RangeIndex: positions
    return pred[last], lower[last], upper[last]


def _throughput(model: Any) -> float:
    """Windows per second through the model's ONNX graph alone (1 thread)."""
    import numpy as np

    n_in = model.w_.shape[0] if hasattr(model, "w_") else None
    shape = (20_000, n_in) if n_in is not None else (2_000, int(model.window), len(model.feature_names_in_))
    batch = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    model._run_graph(batch[:10])
    started = time.perf_counter()
    model._run_graph(batch)
    return round(len(batch) / (time.perf_counter() - started))


def run(
    subsets: tuple[str, ...] = ("FD001", "FD003"), seeds: tuple[int, ...] = SEEDS, ensemble: bool = False
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from axhub.bench.report import BenchResult, _repo_root, save_result
    from axhub.ml.datasets import load_cmapss
    from axhub.ml.datasets.cmapss import SENSOR_COLUMNS, SETTING_COLUMNS
    from axhub.ml.rul.cnn import RulCNN
    from axhub.ml.rul.gbm import RulGBM
    from axhub.ml.rul.target import phm08_score, rmse

    inputs: dict[str, Any] = {
        "columns": [*SENSOR_COLUMNS, "cycle"],
        "regime_columns": list(SETTING_COLUMNS),
        "group": "unit",
    }
    rows: dict[str, dict[str, Any]] = {
        "gbm": {"model": "window features + LightGBM (rul/gbm)"},
        "cnn": {"model": f"1D-CNN (rul/cnn), mean ± std over {len(seeds)} seeds"},
        "ens": {"model": "mean of LightGBM and the seed-averaged CNN"},
    }
    extra: dict[str, Any] = {}
    fig, axes = plt.subplots(1, len(subsets), figsize=(5 * len(subsets), 4), squeeze=False)
    for ax, subset in zip(axes[0], subsets, strict=True):
        data = load_cmapss(subset)
        true = data.test_rul
        info: dict[str, Any] = {}

        started = time.perf_counter()
        gbm = RulGBM(**inputs).fit(data.train)
        gbm_s = time.perf_counter() - started
        p_gbm, lo, hi = _last_cycle(gbm, data.test)
        row = rows["gbm"]
        row[f"{subset} RMSE"] = round(rmse(p_gbm, true), 2)
        row[f"{subset} score"] = round(phm08_score(p_gbm, true), 1)
        row[f"{subset} coverage (90%)"] = round(float(np.mean((true >= lo) & (true <= hi))), 3)
        row[f"{subset} train s"] = round(gbm_s, 1)
        info["gbm"] = {
            "regimes": len(gbm.centroids_),
            "constant_sensors_dropped": gbm.constant_columns_,
            "out_of_fold_rmse_capped": gbm.calibration_rmse_,
            "interval_width_mean": float(np.mean(hi - lo)),
            "onnx_windows_per_s_1thread": _throughput(gbm),
        }

        cnn_preds, rmses, scores, covers, cnn_s = [], [], [], [], 0.0
        for seed in seeds:
            started = time.perf_counter()
            cnn = RulCNN(seed=seed, **inputs).fit(data.train)
            cnn_s += time.perf_counter() - started
            p, lo_c, hi_c = _last_cycle(cnn, data.test)
            cnn_preds.append(p)
            rmses.append(rmse(p, true))
            scores.append(phm08_score(p, true))
            covers.append(float(np.mean((true >= lo_c) & (true <= hi_c))))
        row = rows["cnn"]
        row[f"{subset} RMSE"] = f"{np.mean(rmses):.2f} ± {np.std(rmses):.2f}"
        row[f"{subset} score"] = f"{np.mean(scores):.0f} ± {np.std(scores):.0f}"
        row[f"{subset} coverage (90%)"] = round(float(np.mean(covers)), 3)
        row[f"{subset} train s"] = round(cnn_s, 1)
        info["cnn"] = {
            "rmse_per_seed": rmses,
            "score_per_seed": scores,
            "onnx_windows_per_s_1thread": _throughput(cnn),
        }

        p_cnn = np.mean(cnn_preds, axis=0)
        p_ens = (p_gbm + p_cnn) / 2
        if ensemble:
            rows["ens"][f"{subset} RMSE"] = round(rmse(p_ens, true), 2)
            rows["ens"][f"{subset} score"] = round(phm08_score(p_ens, true), 1)
            rows["ens"][f"{subset} train s"] = round(gbm_s + cnn_s, 1)
        extra[subset] = info

        order = np.argsort(true)
        ax.plot(true[order], "k.-", label="true RUL")
        err = [p_gbm[order] - lo[order], hi[order] - p_gbm[order]]
        ax.errorbar(
            np.arange(len(order)),
            p_gbm[order],
            yerr=err,
            fmt="r.",
            alpha=0.4,
            label="LightGBM (90% interval)",
        )
        ax.plot(p_cnn[order], "b.", alpha=0.6, label="1D-CNN (seed mean)")
        ax.set_title(f"C-MAPSS {subset} test units")
        ax.set_xlabel("test unit (sorted by true RUL)")
        ax.set_ylabel("RUL (cycles)")
        ax.legend(fontsize=7)
    img = _repo_root() / "docs" / "img" / "bench-cmapss-pred.png"
    img.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(img, dpi=70)
    notes = [
        "Protocol: fit on train_FD00x only; predict each test unit at its last cycle; RMSE and PHM08 "
        "score against RUL_FD00x (uncapped truth). Targets (issue 3): RMSE <= 11.0 on both, score <= 200.",
        "Hyper-parameters (window 60 for both models, cap 125, ...) were chosen by 4-fold "
        "cross-validation on training units only; test labels were never used to choose anything.",
        "Cross-validation on FD001 training units (RMSE at random cuts): LightGBM 11.46, CNN 15.06, "
        "their mean 12.35; the deep model does not win here and the ensemble is not reported "
        "(run(ensemble=True) shows it).",
        "Test units shorter than a model's window are padded with their first row (as in training).",
        "Intervals: split-conformal from out-of-fold (LightGBM) or held-out-unit (CNN) residuals, "
        "90% nominal.",
        "Train times are wall-clock on a 2-core machine shared with other jobs.",
    ]
    result = BenchResult(
        name="cmapss",
        title="C-MAPSS remaining useful life",
        dataset="NASA C-MAPSS " + ", ".join(subsets),
        split="train_FD00x -> test_FD00x last cycle",
        rows=[rows["gbm"], rows["cnn"]] + ([rows["ens"]] if ensemble else []),
        references=REFERENCES,
        notes=notes,
        plots=["img/bench-cmapss-pred.png"],
        extra=extra,
    )
    save_result(result)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("cmapss")
    def cmapss(
        seeds: int = typer.Option(3, help="CNN seeds (mean ± std). / CNN 시드 수."),
    ) -> None:
        """C-MAPSS FD001/FD003 remaining useful life (RMSE, PHM08 score). / 잔여 수명 예측 벤치마크."""
        from axhub.ml.datasets.common import dataset_folder

        dataset_folder("cmapss")
        run(seeds=tuple(range(seeds)))

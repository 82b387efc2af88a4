"""``axhub bench federated``: companies that keep their data learn together.

C-MAPSS FD002 (six operating conditions, one fault mode): engines are split among N companies
by the operating condition they start in (six conditions dealt round-robin; with 6 companies one
each), training and test engines by the same label-free key, so each company holds a different
fleet of a different size. (An earlier split by engine life leaked the test labels into which
company an engine went to: local models looked better than pooled ones; not used.) Every company normalises
its own sensors per operating regime with its own statistics (nothing leaves for that).
Compared on each company's own test engines (RMSE at the last cycle, truth capped at 125):
the joint federated model, the pooled model (all rows in one place, same network and epochs),
and each company's local-only model. DP runs repeat the federated run with the member-side
Gaussian mechanism at several noise levels and report the ε spent against RMSE.

CWRU (12 kHz drive end): one company per motor load (the data here has 0 HP and 1 HP), windows
of each recording split in time (first 70 % train, last 30 % test), features from the vibration
spectrum; accuracy per company.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from axhub.bench._output import DATA_HELP, DOCS_HELP, OUT_HELP, BenchIO, fail_nothing, split_list

SENSORS = [f"s_{i}" for i in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21)]
CAP = 125.0
# Published: federated RUL across airlines (the reference): federated beat local-only
# for 5 of 6 airlines.
REFERENCE = "federated beats local-only for 5 of 6 airlines (published airline study)"


# ------------------------------------------------------------------ C-MAPSS features per company
def _company_rows(frame: Any, seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """Features for every cycle of ``frame`` with this company's own regime normaliser."""
    from axhub.ml.rul.regimes import RegimeNormalizer

    settings = frame[["setting_1", "setting_2", "setting_3"]].to_numpy()
    norm = RegimeNormalizer(seed=seed).fit(settings, frame[SENSORS].to_numpy(), SENSORS)
    if len(norm.keep_) != len(SENSORS):
        raise RuntimeError("a company's data left out a schema sensor; the schema needs all 14")
    return _features(frame, norm), np.minimum(_rul(frame), CAP), norm


def _features(frame: Any, norm: Any) -> np.ndarray:
    import pandas as pd

    settings = frame[["setting_1", "setting_2", "setting_3"]].to_numpy()
    z = norm.transform(settings, frame[SENSORS].to_numpy())
    zf = pd.DataFrame(z, index=frame.index)
    zf["unit"] = frame["unit"].to_numpy()
    cols = list(range(z.shape[1]))
    rolled = zf.groupby("unit")[cols].transform(lambda v: v.rolling(15, min_periods=1).mean()).to_numpy()
    cycle = frame["cycle"].to_numpy()[:, None] / 200.0
    return np.hstack([z, rolled, cycle]).astype(np.float32)


def _rul(frame: Any) -> np.ndarray:
    life = frame.groupby("unit")["cycle"].transform("max")
    return (life - frame["cycle"]).to_numpy(np.float64)


def _start_condition(frame: Any) -> Any:
    """Each engine's operating condition at its first cycle (one of six), a label-free key
    that sorts training and test engines alike."""
    first = frame.groupby("unit").head(1).set_index("unit")
    key = first[["setting_1", "setting_2", "setting_3"]].round(0)
    return key.apply(tuple, axis=1)


def cmapss_companies(root: Path, n_companies: int, seed: int) -> list[dict[str, Any]]:
    from axhub.ml.datasets.cmapss import load_cmapss

    sub = load_cmapss("FD002", root)
    conditions = sorted(set(_start_condition(sub.train)))
    # Six start conditions: dealt to the companies in order (6 companies: one each).
    owner = {cond: i % n_companies for i, cond in enumerate(conditions)}
    train_key, test_key = _start_condition(sub.train), _start_condition(sub.test)
    test_units = np.sort(sub.test["unit"].unique())
    companies = []
    for c in range(n_companies):
        units = [u for u, k in train_key.items() if owner[k] == c]
        train = sub.train[sub.train["unit"].isin(units)].reset_index(drop=True)
        x, y, norm = _company_rows(train, seed)
        t_units = [u for u, k in test_key.items() if owner.get(k) == c]
        test = sub.test[sub.test["unit"].isin(t_units)].reset_index(drop=True)
        xt = _features(test, norm)
        last = test.groupby("unit").tail(1).index.to_numpy()
        truth = sub.test_rul[np.searchsorted(test_units, test.loc[last, "unit"].to_numpy())]
        companies.append(
            {
                "name": f"C{c + 1}",
                "x": x,
                "y": y,
                "x_test": xt[last],
                "y_test": np.minimum(truth, CAP),
                "units": len(units),
            }
        )
    return companies


# ------------------------------------------------------------------ CWRU features per load
def cwru_companies(root: Path, window: int = 2048) -> list[dict[str, Any]]:
    from axhub.ml.datasets.cwru import list_cwru_recordings, load_cwru_signal

    recs = list_cwru_recordings(root)
    labels = sorted({r.label for r in recs})
    by_rpm: dict[int, list[Any]] = {}
    for r in recs:
        by_rpm.setdefault(int(r.rpm), []).append(r)
    companies = []
    for rpm, group in sorted(by_rpm.items()):
        xs, ys, xts, yts = [], [], [], []
        for r in group:
            sig = load_cwru_signal(r).reshape(-1)
            n = len(sig) // window
            wins = sig[: n * window].reshape(n, window)
            spec = np.log1p(np.abs(np.fft.rfft(wins * np.hanning(window), axis=1)))
            # 64 log-spectrum bands: a fixed schema every company computes the same way.
            bands = np.stack([b.mean(axis=1) for b in np.array_split(spec, 64, axis=1)], axis=1)
            cut = int(n * 0.7)
            xs.append(bands[:cut])
            xts.append(bands[cut:])
            ys += [labels.index(r.label)] * cut
            yts += [labels.index(r.label)] * (n - cut)
        x, xt = np.vstack(xs), np.vstack(xts)
        mu, sd = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-9)
        companies.append(
            {
                "name": f"{rpm}rpm",
                "x": ((x - mu) / sd).astype(np.float32),
                "y": np.asarray(ys),
                "x_test": ((xt - mu) / sd).astype(np.float32),
                "y_test": np.asarray(yts),
                "units": len(group),
            }
        )
    return [dict(c, n_classes=len(labels)) for c in companies]


# ------------------------------------------------------------------ one experiment
def _metric(task: Any, params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    from axhub.federated import learner

    m = learner.evaluate(task, params, x, y)
    return m["rmse"] if task.kind == "regression" else m["accuracy"]


def experiment(
    companies: list[dict[str, Any]], task: Any, rounds: int, seed: int, dp: dict[str, float] | None
) -> dict[str, Any]:
    from axhub.federated import learner
    from axhub.federated.client import MemberClient, MemberData
    from axhub.federated.policy import SitePolicy
    from axhub.federated.simulate import simulate

    task = dataclasses.replace(task, seed=seed)
    policy = SitePolicy.parse(
        {
            "min_local_samples": 10,
            "allowed_metrics": ["n_samples"],
            **({"dp": {**dp, "epsilon_budget": 1e9}} if dp else {}),
        }
    )
    clients = [
        MemberClient(
            c["name"],
            task,
            policy,
            MemberData(c["x"], c["y"], c["x_test"][:1], c["y_test"][:1]),
            seed=seed * 100 + i,
            noise_seed=seed * 100 + i,  # repeatable runs for mean ± std over seeds
        )
        for i, c in enumerate(companies)
    ]
    started = time.perf_counter()
    fed = simulate(task, clients, rounds)
    fed_seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "joint": {c["name"]: _metric(task, fed["params"], c["x_test"], c["y_test"]) for c in companies},
        "rounds": fed["rounds"],
        "seconds": fed_seconds,
        "epsilon": clients[0].ledger.spent if clients[0].ledger else None,
    }
    if dp is None:
        epochs = rounds * task.local_epochs
        pooled = learner.fit_centrally(
            task,
            np.vstack([c["x"] for c in companies]),
            np.concatenate([c["y"] for c in companies]),
            epochs=epochs,
            seed=seed,
        )
        out["pooled"] = {c["name"]: _metric(task, pooled, c["x_test"], c["y_test"]) for c in companies}
        out["local"] = {
            c["name"]: _metric(
                task,
                learner.fit_centrally(task, c["x"], c["y"], epochs=epochs, seed=seed),
                c["x_test"],
                c["y_test"],
            )
            for c in companies
        }
    return out


def _overall(per: dict[str, float], companies: list[dict[str, Any]], kind: str) -> float:
    """All test items together: RMSE pools squared errors, accuracy pools hits."""
    w = np.array([len(c["y_test"]) for c in companies], dtype=float)
    v = np.array([per[c["name"]] for c in companies])
    return (
        float(np.sqrt(np.sum(w * v**2) / w.sum())) if kind == "regression" else float(np.sum(w * v) / w.sum())
    )


def run_dataset(
    name: str,
    companies: list[dict[str, Any]],
    task: Any,
    rounds: int,
    seeds: list[int],
    noise: list[float],
    clip: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    kind = task.kind
    metric = "RMSE" if kind == "regression" else "accuracy"
    better = (lambda a, b: a < b) if kind == "regression" else (lambda a, b: a > b)
    runs = [experiment(companies, task, rounds, s, None) for s in seeds]
    rows = []

    def mean_std(key: str, comp: str) -> tuple[float, float]:
        vals = [r[key][comp] for r in runs]
        return float(np.mean(vals)), float(np.std(vals))

    for c in companies:
        j, js = mean_std("joint", c["name"])
        p, _ = mean_std("pooled", c["name"])
        loc, _ = mean_std("local", c["name"])
        rows.append(
            {
                "dataset": name,
                "company": c["name"],
                "train items": len(c["y"]),
                "test items": len(c["y_test"]),
                f"joint {metric}": f"{j:.3f} ± {js:.3f}",
                f"pooled {metric}": round(p, 3),
                f"local-only {metric}": round(loc, 3),
                "joint beats local": bool(better(j, loc)),
            }
        )
    overall = {
        k: float(np.mean([_overall(r[k], companies, kind) for r in runs]))
        for k in ("joint", "pooled", "local")
    }
    gap = (overall["joint"] - overall["pooled"]) / overall["pooled"] * (1 if kind == "regression" else -1)
    rows.append(
        {
            "dataset": name,
            "company": "all",
            "train items": sum(len(c["y"]) for c in companies),
            "test items": sum(len(c["y_test"]) for c in companies),
            f"joint {metric}": round(overall["joint"], 3),
            f"pooled {metric}": round(overall["pooled"], 3),
            f"local-only {metric}": round(overall["local"], 3),
            "joint beats local": f"{sum(bool(r['joint beats local']) for r in rows)}/{len(companies)}",
        }
    )
    per_round = [rr for r in runs for rr in r["rounds"]]
    curve = []
    for z in noise:
        dp_runs = [
            experiment(companies, task, rounds, s, {"clip_norm": clip, "noise_multiplier": z}) for s in seeds
        ]
        curve.append(
            {
                "noise_multiplier": z,
                "epsilon": dp_runs[0]["epsilon"],
                metric: float(np.mean([_overall(r["joint"], companies, kind) for r in dp_runs])),
            }
        )
    extra = {
        "overall": overall,
        "gap_to_pooled": gap,
        "seconds_per_round": float(np.mean([r["seconds"] for r in per_round])),
        "bytes_per_round": float(np.mean([r["bytes_down"] + r["bytes_up"] for r in per_round])),
        "dp_curve": curve,
        "delta": 1e-5,
    }
    return rows, extra


def _plot(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5))
    for ax, (name, curve) in zip(np.atleast_1d(axes), curves.items(), strict=False):
        metric = next(k for k in curve[0] if k not in ("noise_multiplier", "epsilon"))
        ax.semilogx([c["epsilon"] for c in curve], [c[metric] for c in curve], "o-")
        if metric == "RMSE":
            ax.set_yscale("log")  # a ruined model's RMSE is thousands; the useful range is 15-60
        ax.set_xlabel("ε (δ = 1e-5)")
        ax.set_ylabel(metric)
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    io: BenchIO, datasets: list[str], companies: int, rounds: int, seeds: list[int], noise: list[float]
) -> None:
    from axhub.bench.report import BenchResult
    from axhub.federated.learner import FedTask

    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if "cmapss" in datasets:
        comps = cmapss_companies(io.data, companies, seed=0)
        task = FedTask(
            kind="regression", n_features=comps[0]["x"].shape[1], hidden=64, lr=2e-3, target_scale=CAP
        )
        r, e = run_dataset("C-MAPSS FD002", comps, task, rounds, seeds, noise, clip=0.5)
        rows += r
        extra["cmapss"] = e
    if "cwru" in datasets:
        comps = cwru_companies(io.data)
        task = FedTask(
            kind="classification",
            n_features=64,
            n_outputs=comps[0]["n_classes"],
            hidden=64,
            lr=2e-3,
            batch_size=64,
        )
        r, e = run_dataset("CWRU 12k DE", comps, task, rounds, seeds, noise, clip=0.5)
        rows += r
        extra["cwru"] = e
    plot = io.plot("federated_dp_curve.png")
    curves = {k: v["dp_curve"] for k, v in extra.items() if v["dp_curve"]}
    if curves:
        _plot(curves, plot)
    notes = [
        "Targets (issue 16): joint within 5 % of pooled, better than every company's local-only model; "
        + REFERENCE,
        "Same network (MLP 2×64), same epochs for joint (rounds × 1 local epoch), pooled and local-only.",
        f"seeds {seeds}; rounds {rounds}; DP: member-side Gaussian on each update, clip 0.5, RDP accounting",
    ]
    for k, e in extra.items():
        curve = [(round(c["epsilon"], 1), round(list(c.values())[-1], 3)) for c in e["dp_curve"]]
        notes.append(
            f"{k}: joint vs pooled gap {100 * e['gap_to_pooled']:+.1f} %; {e['seconds_per_round']:.2f} s and "
            f"{e['bytes_per_round'] / 1e3:.0f} kB per round; (ε, metric) {curve}"
        )
    result = BenchResult(
        name="federated",
        title="Federated learning across companies (joint vs pooled vs local-only, DP cost)",
        dataset=", ".join(datasets),
        split="C-MAPSS FD002 by start operating condition; CWRU by motor load",
        rows=rows,
        notes=notes,
        plots=[str(plot)] if curves else [],
        extra=extra,
    )
    io.publish(result)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("federated")
    def federated(
        datasets: str = typer.Option("cmapss,cwru", help="cmapss and/or cwru / 데이터셋"),
        companies: int = typer.Option(6, help="companies C-MAPSS is split into (4-6) / 회사 수"),
        rounds: int = typer.Option(10, help="federated rounds / 라운드 수"),
        seeds: int = typer.Option(1, help="seeds (the full run uses 3) / 시드 수"),
        noise: str = typer.Option("0.01,0.1", help="DP noise multipliers for the ε curve / DP 잡음 배수"),
        data: Path | None = typer.Option(None, help=DATA_HELP),
        out: Path | None = typer.Option(None, help=OUT_HELP),
        update_docs: bool = typer.Option(False, "--update-docs", help=DOCS_HELP),
    ) -> None:
        """Federated learning: joint vs pooled vs local-only, ε vs metric. / 연합 학습 벤치마크."""
        io = BenchIO.make("federated", data, out, update_docs)
        wanted = split_list(datasets)
        present = {
            "cmapss": (io.data / "cmapss" / "train_FD002.txt").is_file(),
            "cwru": (io.data / "cwru_12k_de").is_dir(),
        }
        missing = [d for d in wanted if not present.get(d, False)]
        if missing or not wanted:
            raise fail_nothing(f"dataset(s) {', '.join(missing) or '(none)'} not found under {io.data}")
        run(io, wanted, companies, rounds, list(range(seeds)), [float(z) for z in split_list(noise)])

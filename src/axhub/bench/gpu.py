"""``axhub bench gpu``: what a data-center GPU buys each torch workload, CPU and GPU in one run.

Four workloads, each run on the CPU and on the GPU of the same machine (``ml/device.py`` places
them exactly as a ``gpu``-class job would):

* **vision feature extraction** (images/s): the frozen EfficientNet-Lite0 on 224 px images, the
  PatchCore patch features (stages 2-3) and the full backbone (stages 1-7, pooled), fp32 on both
  and bf16 autocast on the GPU, with the bf16 features' relative error against fp32;
* **PatchCore fit** (s): feature extraction, greedy coreset and threshold calibration on
  synthetic castings (``sim/images.py``), then the image AUROC on held-out good and defective parts;
* **RUL 1D-CNN** (epochs/s): C-MAPSS FD001 when the datasets are at hand, else a synthetic fleet;
  test RMSE at the last cycle, mean ± std over seeds;
* **Conv-AE** (epochs/s): the sensor autoencoder on synthetic multivariate signals, at its
  default batch of 32 and at 256.

For each trained model the CPU-trained and the GPU-trained *bundles* are run through
onnxruntime on the same data (:func:`bundle_parity`): the ONNX graphs must have the same
operators and initialiser shapes, and their outputs must agree within the tolerance noted.
Without CUDA the benchmark says so and stops (``--devices cpu`` runs the CPU half only, e.g.
to check the benchmark itself).

JSON goes to the ``--out`` folder (default ``$AXHUB_HOME/bench/gpu``); ``docs/benchmarks.md`` and
``bench-results/gpu.json`` are written only with ``--update-docs``. ``--data`` is the datasets root
(C-MAPSS FD001 is used from there when present).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from axhub.bench._output import DATA_HELP, DOCS_HELP, OUT_HELP, BenchIO

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

    from axhub.ml.base import Estimator

INPUT_SIZE = 224


# ----------------------------------------------------------------------------------- parity
def onnx_signature(model_bytes: bytes) -> dict[str, Any]:
    """What must not depend on the training device: operators in order, initialiser shapes,
    input and output names."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    g = model.graph
    return {
        "ops": [n.op_type for n in g.node],
        "initializers": sorted((i.name, tuple(i.dims)) for i in g.initializer),
        "inputs": [i.name for i in g.input],
        "outputs": [o.name for o in g.output],
    }


def bundle_parity(cpu_model: Estimator, gpu_model: Estimator, data: Any, output: str) -> dict[str, Any]:
    """Save both models as bundles, run both through onnxruntime on ``data`` and compare."""
    import numpy as np

    from axhub.registry.bundle import BundleRunner

    with tempfile.TemporaryDirectory(prefix="axhub-parity-") as tmp:
        outs, sigs = [], []
        for tag, model in (("cpu", cpu_model), ("gpu", gpu_model)):
            path = model.save(Path(tmp) / tag)
            sigs.append(onnx_signature((path / "model.onnx").read_bytes()))
            outs.append(BundleRunner(path).run(model.bundle_input(data)))
    a, b = (np.asarray(o[output], dtype=np.float64) for o in outs)
    scale = float(np.abs(a).max()) or 1.0
    out: dict[str, Any] = {
        "same_graph": sigs[0] == sigs[1],
        "max_abs_diff": float(np.abs(a - b).max()),
        "max_rel_diff": float(np.abs(a - b).max() / scale),
        "corr": float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 1.0,
    }
    if "is_anomaly" in outs[0] and "is_anomaly" in outs[1]:
        out["same_decision"] = float(np.mean(outs[0]["is_anomaly"] == outs[1]["is_anomaly"]))
    return out


# ----------------------------------------------------------------------------------- timing
def _timed(devices_mod: Any, dev: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    devices_mod.synchronize(dev)
    started = time.perf_counter()
    value = fn()
    devices_mod.synchronize(dev)
    return value, time.perf_counter() - started


def _wrap_timer(model: Any, method: str, totals: dict[str, float]) -> None:
    """Add the time spent in ``model.<method>`` to ``totals['s']`` (calls counted in 'calls')."""
    original = getattr(model, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals["s"] = totals.get("s", 0.0) + time.perf_counter() - started
            totals["calls"] = totals.get("calls", 0.0) + 1

    setattr(model, method, timed)


# ----------------------------------------------------------------------------------- workloads
def _uint8_images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` synthetic 224 px RGB castings as a uint8 tensor (N, 3, H, W); 64 distinct, tiled."""
    import numpy as np
    import torch

    from axhub.sim.images import make_part_images

    parts = make_part_images(min(n, 48), min(n, 64) - min(n, 48), seed=seed, size=INPUT_SIZE, channels=3)
    arr = np.stack([p.image for p in parts]).transpose(0, 3, 1, 2)
    reps = -(-n // len(arr))
    return torch.from_numpy(np.ascontiguousarray(np.tile(arr, (reps, 1, 1, 1))[:n]))


def feature_throughput(
    dev: torch.device, images: torch.Tensor, stages: list[int], amp: bool
) -> dict[str, Any]:
    """Images/s through the frozen backbone, host uint8 → device → features, fp32 or bf16."""
    import contextlib

    import torch

    from axhub.ml import device as devices
    from axhub.ml.vision.backbone import LiteFeatures

    net = LiteFeatures(INPUT_SIZE, stages).to(dev)
    batch = devices.inference_batch(32, dev)
    src = images.pin_memory() if dev.type == "cuda" else images
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    def extract(limit: int | None = None) -> list[torch.Tensor]:
        out = []
        n = len(src) if limit is None else limit
        with torch.inference_mode(), ctx:
            for start in range(0, n, batch):
                x = src[start : start + batch].to(dev, non_blocking=True).float()
                maps = net(x)
                out.append(torch.cat([m.float().mean(dim=(2, 3)) for m in maps], dim=1))
        return out

    extract(batch)  # warm-up: cuDNN picks its kernels, caches fill
    _, seconds = _timed(devices, dev, extract)
    with torch.inference_mode():
        sample = src[:batch].to(dev).float()
        # Per-position feature maps (what PatchCore compares), not pooled ones that average errors out.
        ref = torch.cat([m.flatten(1) for m in net(sample)], dim=1)
        with ctx:
            got = torch.cat([m.float().flatten(1) for m in net(sample)], dim=1)
        rel = float((got - ref).norm() / ref.norm())
    return {"images_per_s": len(src) / seconds, "batch": batch, "rel_error_vs_fp32": rel}


def patchcore_run(device: str, train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict[str, Any]:
    from axhub.ml import device as devices
    from axhub.ml.vision.patchcore import PatchCore

    with devices.use_device(device):
        dev = devices.current()
        model = PatchCore(input_size=INPUT_SIZE, seed=seed)
        _, fit_s = _timed(devices, dev, lambda: model.fit(train))
        metrics, score_s = _timed(devices, dev, lambda: model.evaluate(test))
    return {"model": model, "fit_s": fit_s, "score_images_per_s": len(test) / score_s, **metrics}


def rul_data(data_root: Path | None) -> tuple[str, pd.DataFrame, pd.DataFrame, np.ndarray, dict[str, Any]]:
    """C-MAPSS FD001 when present, else a synthetic fleet cut like a test set."""
    from axhub.core.errors import AxHubError
    from axhub.ml.rul.synthetic import SYNTH_SENSORS, SYNTH_SETTINGS, synthetic_fleet, truncate_fleet

    try:
        from axhub.ml.datasets import load_cmapss
        from axhub.ml.datasets.cmapss import SENSOR_COLUMNS, SETTING_COLUMNS

        data = load_cmapss("FD001", data_root)
        inputs = {"columns": [*SENSOR_COLUMNS, "cycle"], "regime_columns": list(SETTING_COLUMNS)}
        return "C-MAPSS FD001", data.train, data.test, data.test_rul, inputs
    except AxHubError:  # no datasets on this machine: the throughput is the same on synthetic data
        train = synthetic_fleet(100, seed=1)
        test, truth = truncate_fleet(synthetic_fleet(40, seed=2), seed=3)
        inputs = {"columns": [*SYNTH_SENSORS, "cycle"], "regime_columns": list(SYNTH_SETTINGS)}
        return "synthetic fleet (100 units)", train, test, truth, inputs


def rul_run(
    device: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    truth: np.ndarray,
    inputs: dict[str, Any],
    seed: int,
    epochs: int,
) -> dict[str, Any]:
    from axhub.bench.cmapss import _last_cycle
    from axhub.ml import device as devices
    from axhub.ml.rul.cnn import RulCNN
    from axhub.ml.rul.target import rmse

    totals: dict[str, float] = {}
    with devices.use_device(device):
        model = RulCNN(seed=seed, epochs=epochs, group="unit", **inputs)
        _wrap_timer(model, "_train", totals)
        model.fit(train)
    pred = _last_cycle(model, test)[0]
    return {"model": model, "epochs_per_s": epochs * totals["calls"] / totals["s"], "rmse": rmse(pred, truth)}


def ae_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eight coupled signals (two load cycles plus noise); the test half gets a drift fault."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(2 * rows, dtype=np.float64)
    base = np.column_stack([np.sin(t / p) for p in (17, 29, 41, 53)])
    mix = rng.normal(size=(4, 8))
    x = base @ mix + rng.normal(0, 0.1, size=(len(t), 8))
    x[rows + rows // 2 :, 3] += np.linspace(0, 2.0, len(t) - rows - rows // 2)
    frame = pd.DataFrame(x, columns=[f"s{j}" for j in range(8)])
    return frame.iloc[:rows].reset_index(drop=True), frame.iloc[rows:].reset_index(drop=True)


def ae_run(device: str, train: pd.DataFrame, batch_size: int, epochs: int, seed: int) -> dict[str, Any]:
    from axhub.ml import device as devices
    from axhub.ml.anomaly.autoencoder import ConvAE

    totals: dict[str, float] = {}
    with devices.use_device(device):
        model = ConvAE(epochs=epochs, batch_size=batch_size, seed=seed)
        _wrap_timer(model, "_fit_core", totals)
        model.fit(train)
    return {"model": model, "epochs_per_s": epochs * totals["calls"] / totals["s"]}


# ----------------------------------------------------------------------------------- the run
def _mean_std(values: list[float]) -> str:
    import numpy as np

    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def run(
    *,
    devices_wanted: list[str],
    images: int,
    patchcore_images: int,
    seeds: int,
    rul_epochs: int,
    ae_rows: int,
    ae_epochs: int,
    io: BenchIO,
) -> dict[str, Any] | None:
    import torch

    from axhub.bench.report import BenchResult
    from axhub.ml import device as devices
    from axhub.ml.threads import torch_threads
    from axhub.sim.images import make_part_images

    # Deterministic cuBLAS (the training loops ask for it) needs this before the first cuBLAS call.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if "cuda" in devices_wanted and not torch.cuda.is_available():
        with devices.use_device("cuda"):
            reason = devices.fallback_reason()
        typer.echo(f"bench gpu skipped: no CUDA GPU here ({reason}). Nothing measured.")
        return None
    dev_of = {"cpu": torch.device("cpu"), "cuda": torch.device("cuda", 0)}
    names = {d: devices.describe(dev_of[d]) for d in devices_wanted}
    typer.echo("devices: " + "; ".join(f"{d} = {n}" for d, n in names.items()))
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"devices": names, "torch": torch.__version__, "parity": {}}

    def row(workload: str, metric: str, values: dict[str, float | str], note: str = "") -> None:
        line: dict[str, Any] = {"workload": workload, "metric": metric}
        for d in devices_wanted:
            line[d.upper() if d == "cpu" else "GPU"] = values.get(d, "")
        timing = "/s" in metric or metric.endswith(" s")
        if timing and "cpu" in values and "cuda" in values:
            cpu_v, gpu_v = values["cpu"], values["cuda"]
            if isinstance(cpu_v, float) and isinstance(gpu_v, float) and cpu_v > 0 and gpu_v > 0:
                faster = gpu_v / cpu_v if "/s" in metric else cpu_v / gpu_v
                line["GPU ÷ CPU speed"] = round(faster, 1)
        if note:
            line["note"] = note
        rows.append(line)
        typer.echo(json.dumps(line, default=str))

    # 1. feature extraction -------------------------------------------------------------
    stock = _uint8_images(images)
    for label, stages in (("patch features (stages 2-3)", [2, 3]), ("full backbone (stages 1-7)", [7])):
        fp32: dict[str, float | str] = {}
        for d in devices_wanted:
            n = len(stock) if d == "cuda" else max(32, len(stock) // 8)
            fp32[d] = feature_throughput(dev_of[d], stock[:n], stages, amp=False)["images_per_s"]
        row(f"Lite0 {label}, 224 px", "images/s (fp32)", fp32)
        if "cuda" in devices_wanted:
            bf16 = feature_throughput(dev_of["cuda"], stock, stages, amp=True)
            values: dict[str, float | str] = {"cuda": bf16["images_per_s"]}
            if "cpu" in fp32:
                values["cpu"] = fp32["cpu"]
            row(
                f"Lite0 {label}, 224 px",
                "images/s (GPU bf16)",
                values,
                f"bf16 features' relative error vs fp32 {bf16['rel_error_vs_fp32']:.1e}",
            )

    # 2. PatchCore ----------------------------------------------------------------------
    def frame(parts: list[Any]) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"image": [p.image for p in parts], "label": [p.label for p in parts]})

    pc_train = frame(make_part_images(patchcore_images, 0, seed=11, size=INPUT_SIZE))
    pc_test = frame(make_part_images(40, 40, seed=12, size=INPUT_SIZE))
    pc = {d: patchcore_run(d, pc_train, pc_test, seed=0) for d in devices_wanted}
    row(f"PatchCore fit, {patchcore_images} good images", "fit s", {d: r["fit_s"] for d, r in pc.items()})
    row("PatchCore scoring", "images/s", {d: r["score_images_per_s"] for d, r in pc.items()})
    row(
        "PatchCore image AUROC (synthetic defects)", "AUROC", {d: round(r["auroc"], 4) for d, r in pc.items()}
    )
    if len(pc) == 2:
        extra["parity"]["patchcore"] = bundle_parity(
            pc["cpu"]["model"], pc["cuda"]["model"], pc_test, "score"
        )

    # 3. RUL CNN ------------------------------------------------------------------------
    rul_name, train, test, truth, inputs = rul_data(io.data)
    rul: dict[str, list[dict[str, Any]]] = {d: [] for d in devices_wanted}
    for seed in range(seeds):
        for d in devices_wanted:
            rul[d].append(rul_run(d, train, test, truth, inputs, seed, rul_epochs))
    row(
        f"RUL 1D-CNN, {rul_name}",
        "epochs/s",
        {d: sum(r["epochs_per_s"] for r in v) / len(v) for d, v in rul.items()},
    )
    row(
        f"RUL 1D-CNN, {rul_name}",
        f"test RMSE ({seeds} seeds)",
        {d: _mean_std([r["rmse"] for r in v]) for d, v in rul.items()},
    )
    if len(rul) == 2:
        extra["parity"]["rul_cnn"] = bundle_parity(
            rul["cpu"][0]["model"], rul["cuda"][0]["model"], test, "prediction"
        )

    # 4. Conv-AE ------------------------------------------------------------------------
    ae_train, ae_test = ae_data(ae_rows)
    for batch in (32, 256):
        ae = {d: ae_run(d, ae_train, batch, ae_epochs, seed=0) for d in devices_wanted}
        row(
            f"Conv-AE, {ae_rows} rows x 8 signals, batch {batch}",
            "epochs/s",
            {d: r["epochs_per_s"] for d, r in ae.items()},
        )
        if len(ae) == 2:
            extra["parity"][f"conv_ae_batch{batch}"] = bundle_parity(
                ae["cpu"]["model"], ae["cuda"]["model"], ae_test, "score"
            )

    notes = [
        f"devices: {'; '.join(f'{d} = {n}' for d, n in names.items())}; torch {torch.__version__}",
        "GPU rows include host-to-device copies; training batch sizes are the models' defaults "
        "(they are hyper-parameters), inference batches grow to 256 on the GPU",
        f"CPU training of the small 1-D CNNs uses {torch_threads()} thread(s) (AXHUB_TORCH_THREADS), "
        f"as CPU jobs do; feature extraction uses torch's default ({torch.get_num_threads()})",
    ]
    for name, p in extra["parity"].items():
        notes.append(
            f"bundle parity {name}: same ONNX graph {p['same_graph']}, outputs max rel. diff "
            f"{p['max_rel_diff']:.1e}, corr {p['corr']:.4f}"
            + (f", same anomaly decision {p['same_decision']:.1%}" if "same_decision" in p else "")
        )
    result = BenchResult(
        name="gpu",
        title="CPU vs GPU: vision features, PatchCore, RUL CNN, Conv-AE"
        + (f" on {names['cuda'].split(' (')[0]}" if "cuda" in names else ""),
        dataset=f"synthetic castings 224 px; {rul_name}; synthetic sensor signals",
        split="fixed seeds; timings after one warm-up",
        rows=rows,
        notes=notes,
        extra=extra,
    )
    io.publish(result)
    payload = result.to_json()
    return payload


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("gpu")
    def gpu(
        devices: str = typer.Option("cpu,cuda", help="Devices to compare, e.g. 'cpu,cuda' or 'cpu'."),
        images: int = typer.Option(2048, help="Images for the feature-extraction timing (CPU uses 1/8)."),
        patchcore_images: int = typer.Option(200, help="Good images PatchCore is fitted on."),
        seeds: int = typer.Option(3, help="RUL CNN seeds (mean ± std)."),
        rul_epochs: int = typer.Option(30, help="RUL CNN epochs."),
        ae_rows: int = typer.Option(8000, help="Conv-AE training rows."),
        ae_epochs: int = typer.Option(10, help="Conv-AE epochs."),
        data: Path | None = typer.Option(None, help=DATA_HELP),
        out: Path | None = typer.Option(None, help=OUT_HELP),
        update_docs: bool = typer.Option(False, "--update-docs", help=DOCS_HELP),
    ) -> None:
        """CPU vs GPU for every torch workload; skips without CUDA. / CPU와 GPU 성능 비교."""
        wanted = [d.strip() for d in devices.split(",") if d.strip()]
        bad = [d for d in wanted if d not in ("cpu", "cuda")]
        if bad or not wanted:
            raise typer.BadParameter(f"devices must be 'cpu' and/or 'cuda', got {devices!r}")
        run(
            devices_wanted=wanted,
            images=images,
            patchcore_images=patchcore_images,
            seeds=seeds,
            rul_epochs=rul_epochs,
            ae_rows=ae_rows,
            ae_epochs=ae_epochs,
            io=BenchIO.make("gpu", data, out, update_docs),
        )

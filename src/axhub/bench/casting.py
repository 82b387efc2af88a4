"""``axhub bench casting``: visual inspection of impeller castings (unsupervised and supervised).

Protocol (fixed before looking at any test figure; nothing is chosen on test labels):

* **Test set without duplicates**: about a quarter of ``test/ok_front`` are byte-identical copies
  of ``train/ok_front`` images (a flaw of the original split); every test image whose sha256 is
  also in ``train/`` is left out, and the table says how many.
* **Unsupervised (PatchCore)**, trained on ``train/ok_front`` only with the model's defaults:
  backbone and feature stages chosen by the model on good training images alone
  (synthetic-defect self-check), a seeded random ``--bank-images`` good images for the memory
  bank and ``--calibration-images`` other good images for the threshold.
* **Operating points**: policy (a) from the good calibration images alone (target 1 % false
  alarms, 95 % bound); policy (b) with ``--calibration-defects`` (≤ 10) labelled defects drawn
  from ``train/def_front`` (target miss rate 5 %). Those defects come from the training split,
  so they can never count in the test figures.
* **INT8** (``--int8``): convolutions quantised statically, calibrated on 32 good training
  images; kept only if its AUROC on a validation set drawn from ``train/`` is within 0.5 point.
* **Light model**: PatchCore at 160 px, Lite0 stages (2, 3), 1000-patch bank, for small devices.
* **Supervised**: linear probe with temperature scaling (``DefectClassifier``) on a seeded,
  stratified ``--supervised-images`` subset of ``train/``; accuracy on the whole test split here.
* Latency: onnxruntime, one thread, batch 1, a 300×300 test image, median of 30 runs (the main
  model's graph holds the score only, see the variant's comment).
"""

from __future__ import annotations

import hashlib
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ort_scores(onnx_path: Path, images: list[np.ndarray], output: str = "score") -> np.ndarray:
    from axhub.ml.vision.onnx_export import image_input, ort_session

    session: Any = ort_session(onnx_path, threads=1)
    return np.array([float(session.run([output], {"image": image_input(img)})[0][0]) for img in images])


def run_casting(
    data: Path | None = None,
    out: Path | None = None,
    update_docs: bool = False,
    bank_images: int = 1200,
    calibration_images: int = 200,
    calibration_defects: int = 10,
    validation_images: int = 150,
    supervised_images: int = 2000,
    int8: bool = False,
    seed: int = 0,
    threads: int = 2,
    light: bool = True,
) -> Path:
    import torch

    from axhub.bench._vision import dataset_root, finish, latency_ms, load, output_dir
    from axhub.bench.report import BenchResult
    from axhub.ml.vision.base import binary_metrics
    from axhub.ml.vision.images import list_images
    from axhub.ml.vision.operating import good_only_threshold
    from axhub.ml.vision.patchcore import PatchCore
    from axhub.ml.vision.plots import anchored_heatmap_grid, roc_plot, score_histogram
    from axhub.ml.vision.progress import RichProgress
    from axhub.ml.vision.selection import describe_candidate

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    root = dataset_root(data, "casting", "train/ok_front")
    out_dir = output_dir("casting", out)
    rng = np.random.default_rng(seed)
    train_ok = list_images(root / "train" / "ok_front")
    train_def = list_images(root / "train" / "def_front")
    train_hashes = {_sha(p) for p in train_ok + train_def}
    test_all = list_images(root / "test" / "ok_front") + list_images(root / "test" / "def_front")
    test_paths = [p for p in test_all if _sha(p) not in train_hashes]
    n_dup = len(test_all) - len(test_paths)
    y_test = np.array([p.parent.name != "ok_front" for p in test_paths])

    ok_order = rng.permutation(len(train_ok))
    n_fit = bank_images + calibration_images
    fit_paths = [train_ok[i] for i in ok_order[:n_fit]]
    def_order = rng.permutation(len(train_def))
    cal_def_paths = [train_def[i] for i in def_order[:calibration_defects]]
    val_ok = [train_ok[i] for i in ok_order[n_fit : n_fit + validation_images]]
    val_def = [train_def[i] for i in def_order[calibration_defects : calibration_defects + validation_images]]
    fit_imgs = load(fit_paths, "good training images")
    cal_def_imgs = load(cal_def_paths, "calibration defects (train/def_front)")
    test_imgs = load(test_paths, "test images")

    import pandas as pd

    rows: list[dict[str, Any]] = [
        {
            "model": "always 'good' (trivial)",
            "image AUROC %": 50.0,
            "accuracy %": 100 * float((~y_test).mean()),
            "F1 % policy b": 0.0,
        },
        {
            "model": "PatchCore before issue 14 (full test, with duplicates)",
            "image AUROC %": 96.6,
            "F1 % policy a": 61.0,
        },
    ]
    extra: dict[str, Any] = {"test_duplicates_removed": n_dup}
    calib_fraction = calibration_images / n_fit
    variants: dict[str, dict[str, Any]] = {
        # Chosen on a validation split of train/ only (100 held-out good images against 100
        # train/def_front images, scripts/casting_patchcore_validation.py): 1200 bank images instead of 300
        # (AUROC 96.7 -> 98.1 %), image score = mean of the 10 highest patches (-> 98.6 %); a
        # 5000-patch bank instead of 2000 did not help (97.5 %). Backbone from the same split:
        # Lite2 (2, 3) 98.6 % against Lite0 (2, 3) 97.8 % (top-10 mean), so it is given here
        # rather than left to the good-only synthetic self-check, which had picked Lite0.
        # Issue 14 follow-up (scripts/casting_patchcore_search.py, 200 held-out good vs 200
        # train/def_front images, top-10 mean): 288 px instead of 224 px 97.2 -> 98.0 %, and no
        # local averaging of the patch features (patch_pool=1) instead of 3x3 -> 99.0 %; 5x5
        # averaging 91.7 %, stages (2, 3, 4) 96.9 %, (3, 4) 94.6 % at 224 px; PatchCore's eq. 7
        # re-weighting no better than the max; flip averaging +0.15 point for twice the latency.
        # The casting defects are a few pixels wide: averaging blurs them into the good texture.
        # Issue 14 latency (scripts/casting_patchcore_latency_validation.py, same 200 + 200 split):
        # the k-NN search against 2000 bank vectors (5184 patches x 72 dims) alone took ~25 ms on
        # one core, so the bank is 1000 patches (AUROC 99.22 -> 99.18 %; 500: 98.49 %, not kept)
        # and the score uses the pruned search (first 500 coreset picks, then the 256 farthest
        # patches against all 1000: the exact score on 98.5 % of the images, at most 0.2 % off,
        # AUROC 99.18 %). The bundle holds the score only; heatmaps come from explain().
        "PatchCore (288 px, top-10 mean, no patch averaging)": {
            "input_size": 288,
            "score_top_k": 10,
            "patch_pool": 1,
            "backbone": "lite2",
            "stages": [2, 3],
            "bank_size": 1000,
            "prune_coarse": 500,
            "prune_candidates": 256,
            "onnx_heatmap": False,
        },
        "PatchCore light (Lite0 (2, 3), 160 px)": {
            "input_size": 160,
            "bank_size": 1000,
            "backbone": "lite0",
            "stages": [2, 3],
        },
    }
    if not light:
        variants = dict(list(variants.items())[:1])
    main: tuple[PatchCore, np.ndarray] | None = None
    for label, params in variants.items():
        model = PatchCore(
            calibration_fraction=calib_fraction, calibration_defects=calibration_defects, seed=seed, **params
        )
        frame = pd.DataFrame(
            {
                "image": fit_imgs + cal_def_imgs,
                "label": ["good"] * len(fit_imgs) + ["defect"] * len(cal_def_imgs),
            }
        )
        t0 = time.perf_counter()
        with RichProgress() as progress:
            model.fit(frame, progress=progress)
        train_s = time.perf_counter() - t0
        fp32 = model.export_onnx(out_dir / f"pc{params['input_size']}.onnx")
        test_scores = _ort_scores(fp32, test_imgs)
        thr = float(model.threshold_ or 0.0)
        m_b = model.evaluate_scores(y_test, test_scores)
        point_a = good_only_threshold(
            np.asarray(model.calibration_scores_), model.target_false_alarm, model.confidence
        )
        m_a = binary_metrics(y_test, test_scores, point_a["threshold"])
        row: dict[str, Any] = {
            "model": f"{label}: {model.backbone_} {model.stages_}",
            "image AUROC %": 100 * m_b["auroc"],
            "accuracy %": 100 * m_b["accuracy"],
            "F1 % policy a": 100 * m_a["f1"],
            "F1 % policy b": 100 * m_b["f1"],
            "recall % b": 100 * m_b["recall"],
            "false alarms b": f"{int(((test_scores > thr) & ~y_test).sum())}/{int((~y_test).sum())}",
            "ms/img fp32": latency_ms(fp32, test_imgs[0]),
            "MB fp32": fp32.stat().st_size / 1e6,
            "train s": train_s,
        }
        extra[label] = {
            "policy_b": m_b,
            "policy_a": m_a,
            "operating_b": {k: v for k, v in model.operating_.items() if k != "curve"},
            "operating_a": point_a,
            "selection": model.selection_,
            "bank": list(model.bank.shape),
        }
        if int8:
            from axhub.ml.vision.quantize import int8_decision, quantize_int8

            val_imgs = load(val_ok + val_def, "validation images (train split)")
            y_val = np.array([False] * len(val_ok) + [True] * len(val_def))
            q = quantize_int8(fp32, out_dir / f"pc{params['input_size']}-int8.onnx", fit_imgs[:32])
            decision = int8_decision(_ort_scores(fp32, val_imgs), _ort_scores(q, val_imgs), y_val)
            int8_metrics = model.evaluate_scores(y_test, _ort_scores(q, test_imgs))
            row.update(
                {
                    "ms/img INT8": latency_ms(q, test_imgs[0]),
                    "INT8 AUROC %": 100 * int8_metrics["auroc"],
                    "INT8 shipped": "yes" if decision["keep"] else "no",
                }
            )
            extra[label]["int8"] = {"test": int8_metrics, "decision": decision}
        rows.append(row)
        if main is None:
            main = (model, test_scores)

    notes: list[str] = []
    clf_scores = None
    if supervised_images:
        clf_scores = _supervised(
            rows, extra, notes, train_ok, train_def, test_imgs, y_test, supervised_images, rng, seed, out_dir
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra["peak_memory_mb"] = peak_mb

    assert main is not None
    model, scores = main
    curves = {"PatchCore (unsupervised)": scores}
    if clf_scores is not None:
        curves["linear probe (supervised)"] = clf_scores
    pick = _picks(y_test)
    heats = list(model.explain([test_imgs[i] for i in pick]))
    plots = [
        roc_plot(y_test, curves, out_dir / "bench-casting-roc.png"),
        score_histogram(y_test, scores, model.threshold_, out_dir / "bench-casting-scores.png"),
        anchored_heatmap_grid(
            [test_imgs[i] for i in pick],
            heats,
            scores[pick],
            y_test[pick],
            float(model.threshold_ or 0.0),
            out_dir / "bench-casting-heatmaps.png",
        ),
    ]
    sel = model.selection_
    op = model.operating_
    op_a = extra[next(iter(variants))]["operating_a"]
    notes = [
        f"Test without duplicates: {n_dup} test images byte-identical to train/ images left out "
        f"({int((~y_test).sum())} good and {int(y_test.sum())} defective remain).",
        f"PatchCore trained on train/ok_front only: {bank_images} random good images for the memory bank, "
        f"{calibration_images} other good images for the threshold; {len(cal_def_imgs)} train/def_front "
        "images for policy (b) only (never in the bank, never in the test figures).",
        "Settings chosen on a validation split of train/ only (100 held-out good images vs 100 "
        "train/def_front images; Lite2 (2, 3), 224 px): bank from 300 good images AUROC 96.7 %, "
        "from 1200 98.1 %; image score = mean of the 10 highest patches 98.6 % (max: 98.1 %); a "
        "5000-patch coreset instead of 2000 97.5 % (not kept); Lite0 (2, 3) on the same split 97.8 % "
        "(top-10 mean), so Lite2 (2, 3) is given to the main model instead of the good-only self-check "
        "(which picked Lite0 in an earlier run). test/ took no part in these choices.",
        "Issue 14 follow-up, on a larger validation split of train/ (200 held-out good images vs 200 "
        "train/def_front images, bank from 1200 other good images, 2000-patch coreset; "
        "scripts/casting_patchcore_search.py): Lite2 (2, 3) top-10 mean at 224 px 97.2 %, at 288 px "
        "98.0 %, at 288 px without the 3×3 averaging of patch features (patch_pool=1) 99.0 % (max: "
        "98.0 %); 5×5 averaging 91.7 %, stages (2, 3, 4) 96.9 % and (3, 4) 94.6 % (224 px); PatchCore's "
        "eq. 7 re-weighting scores as the plain max; averaging a horizontally flipped pass +0.15 point "
        "(99.2 %) for twice the latency, not kept; Lite0 (2, 3) at 288 px without averaging 98.6 %. "
        "The simulated policy (b) F1 on that split (10 random validation defects, 200 draws) rose "
        "from 88.7 % to 92.0 %.",
        (
            f"Backbone/stages given: {model.backbone_} {model.stages_} (from the validation split above)"
            if sel.get("method") == "given"
            else "Backbone/stages chosen on good training images only (" + sel.get("method", "") + "): "
        )
        + "; ".join(describe_candidate(c) for c in sel.get("candidates", [])),
        f"Policy (b) threshold {op.get('threshold', 0):.3f}: miss rate "
        f"{op.get('miss_rate_calibration', 0):.0%} on the {op.get('n_defects')} calibration defects, "
        f"false alarms {op.get('false_alarm_rate_calibration', 0):.1%} "
        f"on the {op.get('n_good')} calibration good images.",
        f"Policy (a) threshold {op_a['threshold']:.3f}: false-alarm bound "
        f"{100 * op_a['false_alarm_rate_upper_bound']:.1f} % at 95 % from "
        f"{calibration_images} good images.",
        *notes,
        *(
            []
            if supervised_images
            else [
                "Supervised models: see the casting-supervised section (not run here, --supervised-images 0)."
            ]
        ),
        "Latency: onnxruntime, 1 thread, batch 1, 300×300 image incl. resize and kNN; the main model's "
        "graph gives the score only (heatmaps from the Python model), the light model's score and heatmap; "
        f"peak memory of "
        f"the whole benchmark process {peak_mb:.0f} MB; the machine is shared (2 cores, ~8 users), so "
        "timings are under load.",
        "Test split here is half of the official one (the other half is held back by the dataset keepers).",
    ]
    result = BenchResult(
        name="casting",
        title="Visual inspection: impeller castings",
        dataset="casting (submersible-pump impellers, 300×300)",
        split=f"train/ → test/ without train duplicates ({int((~y_test).sum())} ok, "
        f"{int(y_test.sum())} defective)",
        rows=rows,
        references=[
            {"model": "published supervised CNNs (official test split)", "accuracy %": "99.4–99.8"},
            {
                "model": "targets (issue 14)",
                "image AUROC %": "≥ 99",
                "F1 % policy b": "≥ 95",
                "ms/img fp32": "≤ 20",
            },
        ],
        notes=notes,
        plots=[f"img/{p.name}" for p in plots],
        extra=extra,
    )
    return finish(result, out_dir, update_docs)


def _picks(y: np.ndarray) -> np.ndarray:
    return np.r_[np.flatnonzero(y)[:4], np.flatnonzero(~y)[:4]]


def _supervised(
    rows: list[dict[str, Any]],
    extra: dict[str, Any],
    notes: list[str],
    train_ok: list[Path],
    train_def: list[Path],
    test_imgs: list[np.ndarray],
    y_test: np.ndarray,
    supervised_images: int,
    rng: np.random.Generator,
    seed: int,
    out_dir: Path,
) -> np.ndarray:
    """Linear probe on a stratified subset of train/, temperature-scaled on 15 % of it."""
    import pandas as pd
    import torch
    from rich.progress import Progress

    from axhub.bench._vision import latency_ms
    from axhub.ml.vision.classifier import DefectClassifier, PooledFeatures
    from axhub.ml.vision.images import decode_image

    share = min(1.0, supervised_images / (len(train_ok) + len(train_def)))

    def stratum(paths: list[Path]) -> list[Path]:
        return [paths[i] for i in np.sort(rng.permutation(len(paths))[: round(share * len(paths))])]

    sup_ok, sup_def = stratum(train_ok), stratum(train_def)
    train_paths = sup_ok + sup_def
    train_labels = ["good"] * len(sup_ok) + ["defect"] * len(sup_def)
    t0 = time.perf_counter()
    clf = DefectClassifier(seed=seed)
    pooled = PooledFeatures(clf.input_size, clf.stages)
    feats = []
    with Progress(transient=True) as progress:
        task = progress.add_task("supervised: backbone features of train/", total=len(train_paths))
        for start in range(0, len(train_paths), 16):
            chunk = [decode_image(p) for p in train_paths[start : start + 16]]
            feats.append(clf.features(pooled, chunk))
            progress.update(task, completed=start + len(chunk))
    clf.fit(pd.DataFrame({"path": train_paths, "label": train_labels}), features=torch.cat(feats))
    train_s = time.perf_counter() - t0
    onnx = clf.export_onnx(out_dir / "classifier.onnx")
    frame = pd.DataFrame({"image": test_imgs, "label": ["defect" if y else "good" for y in y_test]})
    metrics = clf.evaluate(frame)
    rows.append(
        {
            "model": "Supervised linear probe (Lite0, 224 px)",
            "image AUROC %": 100 * metrics["auroc"],
            "accuracy %": 100 * metrics["accuracy"],
            "ms/img fp32": latency_ms(onnx, test_imgs[0]),
            "MB fp32": onnx.stat().st_size / 1e6,
            "train s": train_s,
        }
    )
    extra["classifier"] = {"test": metrics, "calibration": clf.calibration_}
    notes.append(
        f"Supervised: {len(train_paths)} train/ images (stratified random subset); "
        "frozen backbone + linear head "
        f"(linear probe, not full fine-tuning), temperature T={clf.calibration_.get('temperature', 1.0):.2f} "
        f"fitted on 15 % of train/; validation ECE {clf.calibration_.get('ece_before', 0):.3f} → "
        f"{clf.calibration_.get('ece_after', 0):.3f}."
    )
    return clf.score(frame)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("casting")
    def casting(
        data: Path | None = typer.Option(None, help="dataset root (default AXHUB_DATASETS/casting)"),
        out: Path | None = typer.Option(None, help="results folder (default AXHUB_HOME/bench/casting)"),
        update_docs: bool = typer.Option(
            False, "--update-docs", help="also write docs/benchmarks.md, docs/img, bench-results/"
        ),
        bank_images: int = typer.Option(1200, help="good training images for the memory bank"),
        calibration_images: int = typer.Option(200, help="other good images that set the threshold"),
        calibration_defects: int = typer.Option(10, help="train/def_front images for policy (b) (>= 5)"),
        validation_images: int = typer.Option(150, help="per class, from train/, for the INT8 decision"),
        supervised_images: int = typer.Option(2000, help="train/ images for the supervised probe (0 = skip)"),
        int8: bool = typer.Option(False, "--int8", help="also quantise to INT8 and judge it"),
        seed: int = typer.Option(0),
        threads: int = typer.Option(2, help="torch threads"),
        light: bool = typer.Option(True, "--light/--no-light", help="also the light 160 px model"),
    ) -> None:
        """Casting inspection: PatchCore (good parts only), operating points, light model, supervised.
        / 주조품 외관 검사 벤치마크."""
        run_casting(
            data, out, update_docs, bank_images, calibration_images, calibration_defects,
            validation_images, supervised_images, int8, seed, threads, light,
        )  # fmt: skip

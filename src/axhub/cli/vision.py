"""``axhub vision``: train, score, export and import inspection-image models.

Heavy imports (torch) stay inside the commands so ``axhub --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from axhub.cli._context import friendly_errors
from axhub.cli._lang import current_lang, t
from axhub.cli._vision_text import describe_candidate, describe_method, describe_threshold, step_label

MODELS = {
    "patchcore": "anomaly detection from good parts only",
    "classifier": "supervised good/defect: fine-tuned when every class has 100+ images, else a linear probe",
    "finetuned": "supervised, last blocks of the backbone fine-tuned",
    "probe": "supervised, linear probe on the frozen backbone",
}


def _frame_from_folder(folder: Path) -> Any:
    """Images under ``folder``: labels from class folders (``good``/``ok``/defect names), masks
    beside images or under ``ground_truth/`` (read as masks, never as images); root files and
    images only in container folders such as ``Imgs/`` are unlabelled unless a mask decides."""
    import pandas as pd

    from axhub.ml.vision.images import labelled_folder

    if not folder.is_dir():
        raise typer.BadParameter(t("vision.not_a_folder", folder=folder))
    rows = labelled_folder(folder)
    if not rows:
        raise typer.BadParameter(t("vision.no_images", folder=folder))
    return pd.DataFrame(rows)


def _check_trainable(data: Any, model: str, where: str) -> None:
    """Refuse, naming the folder, data the model cannot learn from, before any image is read:
    PatchCore needs good parts; a supervised model needs at least two labelled classes."""
    from axhub.core.errors import InputValidationError, problem
    from axhub.ml.vision.images import is_good_label

    labels = list(data["label"]) if "label" in data.columns else None
    if model == "patchcore":
        if labels is not None and not any(label is None or is_good_label(label) for label in labels):
            raise InputValidationError(problem(where, None, None, "vision_no_good_images"))
        return
    if model not in ("classifier", "finetuned", "probe"):
        return
    classes = sorted({str(label) for label in labels or [] if label is not None})
    if not classes:
        raise InputValidationError(problem(where, None, None, "vision_needs_labels"))
    if len(classes) < 2:
        raise InputValidationError(problem(where, None, None, "vision_one_class", classes=", ".join(classes)))


def _register(bundle: Path, name: str | None, org: str | None, metrics: dict[str, Any] | None = None) -> str:
    """Register a bundle as the next version of ``name`` in the organisation's model registry."""
    from axhub.cli._context import open_database, org_id_for
    from axhub.core.settings import Settings
    from axhub.registry.store import ModelRegistry
    from axhub.store.blobs import BlobStore
    from axhub.store.scoped import OrgScope

    settings = Settings()
    db = open_database(settings)
    org_id = org_id_for(db, org or settings.default_org)
    with db.session() as session:
        row = ModelRegistry(OrgScope(session, org_id), BlobStore(settings.blob_root)).register(
            bundle, name=name, metrics=metrics
        )
        return f"{row.name} v{row.version} ({row.id})"


def _metrics_only(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def register(app: typer.Typer) -> None:
    vision = typer.Typer(
        help="Visual inspection: learn good parts, score images, heatmaps, export. / 외관 검사 (비전).",
        no_args_is_help=True,
    )

    @vision.command("train")
    @friendly_errors
    def train(
        out: Path = typer.Option(..., help="bundle folder to write / 모델 번들 폴더"),
        folder: Path | None = typer.Option(None, help="image folder; sub-folder names are labels"),
        dataset: str | None = typer.Option(None, help="an imported image dataset instead of a folder"),
        version: str | None = typer.Option(None, help="dataset version (latest if omitted)"),
        model: str = typer.Option(
            "patchcore",
            help="patchcore (good parts only), classifier (labelled: finetuned or probe by count)",
        ),
        input_size: int | None = typer.Option(
            None, help="model input size in pixels (short side; default 224)"
        ),
        backbone: str = typer.Option(
            "auto", help="PatchCore backbone: auto (chosen on good images), lite0, lite2"
        ),
        bank_size: int = typer.Option(2000, help="PatchCore memory-bank size (patches)"),
        target_false_alarm: float = typer.Option(0.01, help="policy (a): target false-alarm rate"),
        target_miss: float = typer.Option(
            0.05, help="policy (b), with >= 5 labelled defects: target miss rate"
        ),
        max_images: int = typer.Option(0, help="use at most this many images (random, seeded); 0 = all"),
        name: str | None = typer.Option(None, help="registry name (default: the bundle folder's name)"),
        org: str | None = typer.Option(None, "--org", help="organisation (default: settings) / 조직"),
        register_model: bool = typer.Option(
            True, "--register/--no-register", help="add to the model registry"
        ),
        threads: int = typer.Option(0, help="torch threads (0 = torch's default)"),
        seed: int = typer.Option(0),
    ) -> None:
        """Train a model, save it as a bundle (ONNX + JSON) and register it. / 모델 학습."""
        import numpy as np
        import torch

        from axhub.core.settings import Settings
        from axhub.ml.vision.backbone import BACKBONES
        from axhub.ml.vision.classifier import DefectClassifier
        from axhub.ml.vision.finetune import FineTunedClassifier, supervised_model_for
        from axhub.ml.vision.operating import weak_self_check
        from axhub.ml.vision.patchcore import PatchCore
        from axhub.ml.vision.progress import RichProgress

        if threads:
            torch.set_num_threads(threads)
        if (folder is None) == (dataset is None):
            raise typer.BadParameter(t("vision.folder_or_dataset"))
        if folder is not None:
            data = _frame_from_folder(folder)
        else:
            from axhub.ingest.images import load_dataset_images

            data = load_dataset_images(Settings(), str(dataset), version)
        if max_images and len(data) > max_images:
            data = data.iloc[np.sort(np.random.default_rng(seed).permutation(len(data))[:max_images])]
        # Images stay files: the models read them a batch at a time ("reading images" first
        # checks every file and notes its size), so large photographs do not all sit in memory.
        backbones = ["auto", *sorted(BACKBONES)]
        if model == "patchcore" and backbone not in backbones:
            raise typer.BadParameter(t("vision.unknown_backbone", backbone=backbone, choices=backbones))
        _check_trainable(data, model, str(folder or dataset))
        estimator: PatchCore | DefectClassifier
        with RichProgress(step_label) as progress:
            if model == "patchcore":
                estimator = PatchCore(
                    input_size=input_size or 224, backbone=backbone, bank_size=bank_size, seed=seed,
                    target_false_alarm=target_false_alarm, target_miss=target_miss,
                ).fit(data, progress=progress)  # fmt: skip
            elif model in ("classifier", "finetuned", "probe"):
                sized: dict[str, Any] = {"seed": seed, **({"input_size": input_size} if input_size else {})}
                if model == "classifier":
                    estimator = supervised_model_for(list(data["label"].dropna()), **sized)
                else:
                    estimator = (
                        FineTunedClassifier(**sized) if model == "finetuned" else DefectClassifier(**sized)
                    )
                typer.echo(t("vision.supervised_model", name=estimator.name))
                labelled = data.dropna(subset=["label"])
                if isinstance(estimator, FineTunedClassifier):
                    estimator.fit(labelled, progress=progress)
                else:
                    estimator.fit(labelled, progress=lambda done, n: progress("features", done, n))
            else:
                raise typer.BadParameter(t("vision.unknown_model", model=model, models=sorted(MODELS)))
        if isinstance(estimator, PatchCore):
            op = estimator.operating_
            typer.echo(
                t(
                    "vision.features",
                    backbone=estimator.backbone_,
                    stages=estimator.stages_,
                    h=estimator.shape_[0],
                    w=estimator.shape_[1],
                    method=describe_method(estimator.selection_),
                )
            )
            for candidate in estimator.selection_.get("candidates", []):
                typer.echo(f"  {describe_candidate(candidate)}")
            check = estimator.selection_.get("self_check")
            if check is not None and weak_self_check(check):
                # With labelled defects the threshold rests on real ones: only evaluating is left.
                calibrated = op.get("policy") == "miss-rate"
                typer.echo(
                    t(
                        "vision.self_check_weak_calibrated" if calibrated else "vision.self_check_weak",
                        auroc=check["synthetic_auroc"],
                        std=check["synthetic_auroc_std"],
                    )
                )
            typer.echo(describe_threshold(op, float(estimator.threshold_ or 0.0)))
        else:
            typer.echo(t("vision.classes", classes=estimator.classes_, calibration=estimator.calibration_))
        estimator.save(out)
        typer.echo(t("vision.bundle_written", out=out))
        if register_model:
            typer.echo(t("vision.registered", model=_register(out, name or out.name, org)))

    @vision.command("evaluate")
    @friendly_errors
    def evaluate(
        bundle: Path = typer.Argument(..., help="trained bundle folder"),
        folder: Path = typer.Argument(
            ..., help="labelled image folder (good/ok and defect sub-folders, masks optional)"
        ),
        out: Path = typer.Option(..., help="folder for metrics.json, curves and example heatmaps"),
        examples: int = typer.Option(4, help="example heatmaps per class"),
        register_metrics: bool = typer.Option(
            False, "--register", help="register the bundle with these metrics"
        ),
        name: str | None = typer.Option(None, help="registry name (with --register)"),
        org: str | None = typer.Option(None, "--org", help="organisation (with --register)"),
    ) -> None:
        """Evaluate a bundle on any labelled folder: metrics, ROC and score curves, heatmaps. / 모델 평가."""
        import json

        import numpy as np
        from rich.progress import track

        from axhub.ml.base import Estimator
        from axhub.ml.vision.images import decode_image, image_hash, is_good_label
        from axhub.ml.vision.onnx_export import image_input
        from axhub.ml.vision.overlay import save_overlay, unique_names
        from axhub.ml.vision.patchcore import seen_images
        from axhub.ml.vision.plots import roc_plot, score_histogram
        from axhub.registry.bundle import BundleRunner

        frame = _frame_from_folder(folder)
        estimator = Estimator.load(bundle)
        seen = seen_images(estimator)
        runner = BundleRunner(bundle)
        threshold = runner.threshold
        paths: list[Path] = []
        scores: list[float] = []
        y: list[bool] = []
        heats: dict[int, Any] = {}  # image index → heatmap, for the examples only
        shown = {True: 0, False: 0}  # examples kept so far, defect / good
        pixel_y: list[Any] = []
        pixel_s: list[Any] = []
        left_out = trained_left_out = 0
        for row in track(frame.to_dict("records"), description=step_label("scoring"), transient=True):
            if row["label"] is None:
                continue
            img = decode_image(Path(row["path"]))
            why = seen.get(image_hash(img))
            if why is not None:  # it calibrated the threshold or sits in the memory bank
                left_out += why == "calibration"
                trained_left_out += why == "training"
                continue
            result = runner.run(image_input(img))
            paths.append(Path(row["path"]))
            scores.append(float(np.asarray(result["score"]).reshape(-1)[0]))
            y.append(not is_good_label(row["label"]))
            if "heatmap" in result:
                heat = np.asarray(result["heatmap"][0])
                # Only the examples' heatmaps are kept whole: a few hundred full-size heatmaps of
                # 1024 x 1024 images held 1.4 GB.
                shown[y[-1]] += 1
                if shown[y[-1]] <= examples:
                    heats[len(y) - 1] = heat
                if row.get("mask") is not None or not y[-1]:
                    mask = (
                        decode_image(Path(row["mask"])) > 0
                        if row.get("mask") is not None
                        else np.zeros(heat.shape, bool)
                    )
                    if mask.shape == heat.shape:
                        pixel_y.append(mask[::2, ::2].ravel())
                        pixel_s.append(heat[::2, ::2].ravel())
        if not scores and (left_out or trained_left_out):
            raise typer.BadParameter(t("vision.evaluate_all_seen", folder=folder))
        if not scores:
            raise typer.BadParameter(t("vision.no_labelled", folder=folder))
        y_arr, s_arr = np.array(y), np.array(scores)
        from axhub.ml.vision.base import binary_metrics

        metrics: dict[str, Any] = binary_metrics(y_arr, s_arr, threshold)
        metrics.update(
            {
                "n_good": int((~y_arr).sum()),
                "n_defect": int(y_arr.sum()),
                "calibration_images_left_out": left_out,
                "training_images_left_out": trained_left_out,
            }
        )
        if pixel_y and any(p.any() for p in pixel_y):
            from sklearn.metrics import roc_auc_score

            metrics["pixel_auroc"] = float(roc_auc_score(np.concatenate(pixel_y), np.concatenate(pixel_s)))
            metrics["pixel_auroc_note"] = (
                "images with masks and good images, every 2nd pixel in each direction"
            )
        out.mkdir(parents=True, exist_ok=True)
        if 0 < y_arr.sum() < len(y_arr):
            roc_plot(y_arr, {bundle.name: s_arr}, out / "roc.png")
        score_histogram(y_arr, s_arr, threshold, out / "scores.png")
        if threshold is not None and heats:
            picks = list(np.flatnonzero(y_arr)[:examples]) + list(np.flatnonzero(~y_arr)[:examples])
            names = unique_names([paths[i] for i in picks])
            for i, fname in zip(picks, names, strict=True):
                save_overlay(decode_image(paths[i]), heats[i], float(threshold), out / "heatmaps" / fname)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out / "scores.csv").write_text(
            "path,defect,score\n"
            + "".join(f"{p},{int(t)},{s:.6f}\n" for p, t, s in zip(paths, y, scores, strict=True))
        )
        for key in ("auroc", "f1", "precision", "recall", "accuracy", "pixel_auroc"):
            if key in metrics:
                typer.echo(f"{t('vision.metric.' + key)}\t{metrics[key]:.4f}")
        if left_out:
            typer.echo(t("vision.evaluate_left_out_calibration", n=left_out))
        if trained_left_out:
            typer.echo(t("vision.evaluate_left_out_training", n=trained_left_out))
        typer.echo(t("vision.evaluate_written", out=out))
        if register_metrics:
            typer.echo(
                t(
                    "vision.registered",
                    model=_register(bundle, name or bundle.name, org, _metrics_only(metrics)),
                )
            )

    @vision.command("score")
    @friendly_errors
    def score(
        bundle: Path = typer.Argument(..., help="bundle folder or .zip"),
        images: list[Path] = typer.Argument(..., help="image files or folders"),
        heatmaps: Path | None = typer.Option(None, help="write heatmap overlays (PNG) here"),
        threshold: float | None = typer.Option(
            None, help="an operating point chosen from the trade-off (default: the bundle's threshold)"
        ),
    ) -> None:
        """Score images with a bundle (onnxruntime only). / 이미지 판정."""
        import numpy as np

        from axhub.core.errors import InputValidationError
        from axhub.ml.vision.images import decode_image, list_images
        from axhub.ml.vision.onnx_export import image_input
        from axhub.ml.vision.overlay import save_overlay, unique_names
        from axhub.registry.bundle import BundleRunner

        runner = BundleRunner(bundle)
        if threshold is None:
            threshold = runner.threshold
        files: list[Path] = []
        for item in images:
            files.extend(list_images(item) if item.is_dir() else [item])
        names = unique_names(files)
        for path, out_name in zip(files, names, strict=True):
            try:
                img = decode_image(path)
            except InputValidationError as exc:
                said = "; ".join(problem.text(current_lang()) for problem in exc.problems)  # path said once
                typer.echo(t("vision.score_skipped", path=path, error=said), err=True)
                continue
            result = runner.run(image_input(img))
            s = float(np.asarray(result["score"]).reshape(-1)[0])
            verdict = ""
            if "is_anomaly" in result and threshold is not None:
                verdict = t("vision.verdict_defect") if s > threshold else t("vision.verdict_good")
            elif "label" in result:
                verdict = str(result["label"][0])
            typer.echo(f"{path}\t{s:.4f}\t{verdict}")
            if heatmaps is not None and "heatmap" in result and threshold is not None:
                save_overlay(img, np.asarray(result["heatmap"][0]), float(threshold), heatmaps / out_name)

    @vision.command("operating-point")
    @friendly_errors
    def operating_point(
        bundle: Path = typer.Argument(..., help="trained bundle folder or .zip"),
        out: Path = typer.Option(..., help="folder for the bundle that judges at the new point"),
        threshold: float | None = typer.Option(None, help="an explicit threshold from the trade-off"),
        target_false_alarm: float | None = typer.Option(None, help="policy (a): target false-alarm rate"),
        target_miss: float | None = typer.Option(None, help="policy (b): target miss rate (>= 5 defects)"),
    ) -> None:
        """Choose the operating point of an anomaly bundle; the new bundle carries it. / 판정 기준점 선택."""
        import numpy as np

        from axhub.ml.vision import operating
        from axhub.registry.bundle import read_bundle
        from axhub.registry.operating_point import with_operating_point

        given = [v for v in (threshold, target_false_alarm, target_miss) if v is not None]
        if len(given) != 1:
            raise typer.BadParameter(t("vision.one_policy"))
        source = read_bundle(bundle)
        if "calibration_scores.npy" not in source.state_files():
            raise typer.BadParameter(t("vision.no_calibration", name=bundle.name))
        good = source.load_array("calibration_scores")
        defects = (
            source.load_array("calibration_defect_scores")
            if "calibration_defect_scores.npy" in source.state_files()
            else None
        )
        try:
            if target_false_alarm is not None:
                point = operating.good_only_threshold(good, target_false_alarm)
            elif target_miss is not None:
                point = operating.miss_rate_threshold(
                    good, defects if defects is not None else np.array([]), target_miss
                )
            else:
                point = {"policy": "chosen", "threshold": float(threshold or 0.0)}
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        chosen = float(point["threshold"])
        far = float((good > chosen).mean())
        with_operating_point(bundle, out, point)
        miss = (
            ""
            if defects is None
            else t("vision.operating_point_miss", miss=float((defects <= chosen).mean()))
        )
        typer.echo(t("vision.operating_point", threshold=chosen, far=far, miss=miss))
        typer.echo(t("vision.bundle_written", out=out))

    @vision.command("export")
    @friendly_errors
    def export(
        bundle: Path = typer.Argument(..., help="trained bundle folder"),
        out: Path = typer.Option(..., help="folder for the INT8 bundle"),
        calibration: Path = typer.Option(..., help="folder of real good images to calibrate INT8"),
        validation: Path | None = typer.Option(None, help="labelled folder (sub-folders) to judge INT8"),
        tolerance: float = typer.Option(0.005, help="largest AUROC loss allowed (0.005 = 0.5 point)"),
    ) -> None:
        """Quantise a bundle to INT8; writes it only if accuracy holds. / INT8 양자화."""
        import tempfile

        import numpy as np

        from axhub.ml.base import Estimator
        from axhub.ml.vision.base import images_of
        from axhub.ml.vision.images import is_good_label, list_images, load_images
        from axhub.ml.vision.onnx_export import image_input, ort_session
        from axhub.ml.vision.quantize import int8_decision, quantize_int8
        from axhub.registry.bundle import read_bundle, write_bundle

        source = read_bundle(bundle)
        estimator = Estimator.load(bundle)
        calibration_files = list_images(calibration) if calibration.is_dir() else []
        if not calibration_files:
            raise typer.BadParameter(t("vision.no_images", folder=calibration))
        calib = load_images(calibration_files[:64])
        if validation is not None:
            frame = _frame_from_folder(validation)
            val_imgs = images_of(frame)
            y = np.array([not is_good_label(v) for v in frame["label"]])
        else:
            val_imgs, y = calib, None
        with tempfile.TemporaryDirectory() as tmp:
            int8 = quantize_int8(source.model_path, Path(tmp) / "int8.onnx", calib)
            runs: list[Any] = [ort_session(source.model_path), ort_session(int8)]
            scores = [
                np.array([float(s.run(["score"], {"image": image_input(i)})[0][0]) for i in val_imgs])
                for s in runs
            ]
            decision = int8_decision(scores[0], scores[1], y, tolerance)
            typer.echo(t("vision.int8_decision", decision=decision))
            if not decision["keep"]:
                typer.echo(t("vision.int8_refused"))
                raise typer.Exit(code=1)
            manifest = estimator.manifest()
            manifest["quantization"] = {"type": "int8-static-qdq", **decision}
            files = {name: p.read_bytes() for name, p in source.state_files().items()}
            write_bundle(
                out,
                onnx_model=int8.read_bytes(),
                preprocessing=source.preprocessing,
                manifest=manifest,
                files={f"state/{k}": v for k, v in files.items()},
            )
        typer.echo(t("vision.int8_written", out=out))

    @vision.command("import")
    @friendly_errors
    def import_(
        folder: Path = typer.Argument(..., help="image folder (sub-folder names are labels)"),
        dataset: str = typer.Option(..., help="dataset name / 데이터셋 이름"),
        csv: Path | None = typer.Option(None, help="CSV with path,label[,mask,asset,part_id,time]"),
        masks: Path | None = typer.Option(None, help="folder of defect masks (same relative names)"),
        asset: str | None = typer.Option(None, help="asset (machine/line) the images come from"),
        append: bool = typer.Option(False, help="new version = previous version + these images"),
    ) -> None:
        """Import inspection images into the blob store as a new dataset version. / 이미지 가져오기."""
        from axhub.core.settings import Settings
        from axhub.ingest.images import import_images
        from axhub.ml.vision.images import list_images

        if csv is None and not (folder.is_dir() and list_images(folder)):
            raise typer.BadParameter(t("vision.no_images", folder=folder))  # before a version is made
        settings = Settings()
        settings.ensure_dirs()
        report = import_images(
            folder, settings=settings, dataset=dataset, labels_csv=csv, masks_dir=masks, asset=asset,
            append=append, progress=True,
        )  # fmt: skip
        typer.echo(t("vision.imported", n=report.imported, dataset=report.dataset, version=report.version))
        for problem in report.skipped:
            typer.echo(t("vision.import_skipped", problem=problem), err=True)
        for problem in report.mask_problems:
            typer.echo(t("vision.mask_left_out", problem=problem), err=True)

    app.add_typer(vision, name="vision")

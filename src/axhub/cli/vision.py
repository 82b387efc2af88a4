"""``axhub vision``: train, score, export and import inspection-image models.

Heavy imports (torch) stay inside the commands so ``axhub --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

MODELS = {"patchcore": "anomaly detection from good parts only", "classifier": "supervised good/defect"}


def _frame_from_folder(folder: Path) -> Any:
    """Images under ``folder`` with the sub-folder name as label (root files: no label)."""
    import pandas as pd

    from axhub.ml.vision.images import list_images

    paths = list_images(folder)
    if not paths:
        raise typer.BadParameter(f"no image files under {folder}")
    labels = [p.relative_to(folder).parent.name or None for p in paths]
    return pd.DataFrame({"path": paths, "label": labels})


def register(app: typer.Typer) -> None:
    vision = typer.Typer(
        help="Visual inspection: learn good parts, score images, heatmaps, export. / 외관 검사 (비전).",
        no_args_is_help=True,
    )

    @vision.command("train")
    def train(
        out: Path = typer.Option(..., help="bundle folder to write / 모델 번들 폴더"),
        folder: Path | None = typer.Option(None, help="image folder; sub-folder names are labels"),
        dataset: str | None = typer.Option(None, help="an imported image dataset instead of a folder"),
        version: str | None = typer.Option(None, help="dataset version (latest if omitted)"),
        model: str = typer.Option("patchcore", help="patchcore (good parts only) or classifier (labelled)"),
        input_size: int = typer.Option(224, help="model input size in pixels"),
        bank_size: int = typer.Option(2000, help="PatchCore memory-bank size (patches)"),
        max_images: int = typer.Option(0, help="use at most this many images (random, seeded); 0 = all"),
        seed: int = typer.Option(0),
    ) -> None:
        """Train a model and save it as a bundle (ONNX + JSON). / 모델 학습."""
        import numpy as np

        from axhub.core.settings import Settings
        from axhub.ml.vision.base import is_good_label
        from axhub.ml.vision.classifier import DefectClassifier
        from axhub.ml.vision.patchcore import PatchCore

        if (folder is None) == (dataset is None):
            raise typer.BadParameter("give exactly one of --folder or --dataset")
        if folder is not None:
            data = _frame_from_folder(folder)
        else:
            from axhub.ingest.images import load_dataset_images

            data = load_dataset_images(Settings(), str(dataset), version)
        if max_images and len(data) > max_images:
            data = data.iloc[np.sort(np.random.default_rng(seed).permutation(len(data))[:max_images])]
        estimator: PatchCore | DefectClassifier
        if model == "patchcore":
            if data["label"].notna().any():
                data = data[[lab is None or is_good_label(lab) for lab in data["label"]]]
            estimator = PatchCore(input_size=input_size, bank_size=bank_size, seed=seed).fit(data)
            typer.echo(f"threshold {estimator.threshold_:.4f} (from held-out good images)")
        elif model == "classifier":
            estimator = DefectClassifier(input_size=input_size, seed=seed).fit(data)
            typer.echo(f"classes {estimator.classes_}; calibration {estimator.calibration_}")
        else:
            raise typer.BadParameter(f"unknown model {model!r}; choose from {sorted(MODELS)}")
        estimator.save(out)
        typer.echo(f"bundle written: {out}")

    @vision.command("score")
    def score(
        bundle: Path = typer.Argument(..., help="bundle folder or .zip"),
        images: list[Path] = typer.Argument(..., help="image files or folders"),
        heatmaps: Path | None = typer.Option(None, help="write heatmap overlays (PNG) here"),
    ) -> None:
        """Score images with a bundle (onnxruntime only). / 이미지 판정."""
        import numpy as np

        from axhub.core.errors import InputValidationError
        from axhub.ml.vision.images import decode_image, list_images
        from axhub.ml.vision.onnx_export import image_input
        from axhub.registry.bundle import BundleRunner

        runner = BundleRunner(bundle)
        files: list[Path] = []
        for item in images:
            files.extend(list_images(item) if item.is_dir() else [item])
        for path in files:
            try:
                img = decode_image(path)
            except InputValidationError as exc:
                typer.echo(f"{path}: skipped - {exc}", err=True)
                continue
            result = runner.run(image_input(img))
            s = float(np.asarray(result["score"]).reshape(-1)[0])
            verdict = ""
            if "is_anomaly" in result:
                verdict = "DEFECT/불량" if bool(result["is_anomaly"][0]) else "OK/양품"
            elif "label" in result:
                verdict = str(result["label"][0])
            typer.echo(f"{path}\t{s:.4f}\t{verdict}")
            if heatmaps is not None and "heatmap" in result:
                from axhub.ml.vision.plots import save_overlay

                save_overlay(img, np.asarray(result["heatmap"][0]), heatmaps / f"{path.stem}-heatmap.png")

    @vision.command("export")
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
        from axhub.ml.vision.base import images_of, is_good_label
        from axhub.ml.vision.images import list_images, load_images
        from axhub.ml.vision.onnx_export import image_input, ort_session
        from axhub.ml.vision.quantize import int8_decision, quantize_int8
        from axhub.registry.bundle import read_bundle, write_bundle

        source = read_bundle(bundle)
        estimator = Estimator.load(bundle)
        calib = load_images(list_images(calibration)[:64])
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
            typer.echo(f"INT8 decision: {decision}")
            if not decision["keep"]:
                typer.echo("INT8 not shipped: accuracy did not hold; keep the float32 bundle.")
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
        typer.echo(f"INT8 bundle written: {out}")

    @vision.command("import")
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

        settings = Settings()
        settings.ensure_dirs()
        report = import_images(
            folder, settings=settings, dataset=dataset, labels_csv=csv, masks_dir=masks, asset=asset,
            append=append, progress=True,
        )  # fmt: skip
        typer.echo(f"{report.imported} images imported into {report.dataset} {report.version}")
        for problem in report.skipped:
            typer.echo(f"skipped: {problem}", err=True)
        for problem in report.mask_problems:
            typer.echo(f"mask left out: {problem}", err=True)

    app.add_typer(vision, name="vision")

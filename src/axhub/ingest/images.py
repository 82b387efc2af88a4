"""Import inspection images (folder or CSV) into the blob store, as a versioned dataset.

Sources
-------
* **Folder**: every file under the folder; the label is the name of the nearest sub-folder that
  names a class (``ok_front/a.jpg`` → ``ok_front``; container folders such as ``Imgs/`` or
  ``train/`` name none); files directly in the root have no label. Masks beside images
  (``<stem>_mask.png``, ``<stem>_label.png``) or under ``ground_truth/<type>/`` are attached as
  masks and never imported as images.
* **CSV** (``labels_csv``): columns ``path`` (relative to the CSV's folder, or absolute),
  optional ``label``, ``mask``, ``asset``, ``part_id``, ``time``.
* **Masks** (``masks_dir``, folder mode): a mask with the same relative path and stem as the
  image (any image suffix) is attached; non-zero pixels mark the defect. A mask whose size
  differs from its image is reported and left out (the image still lands).

Every file is fully decoded before it is stored, so a corrupt, truncated or non-image file is
reported by name (``ImportReport.skipped``: one :class:`~axhub.core.errors.InputProblem` each)
and skipped; the rest of the import lands. Images keep their original bytes (any size,
grayscale or colour), stored content-addressed in :class:`~axhub.store.blobs.BlobStore`.

Manifest (one per dataset version, immutable)
---------------------------------------------
``<data_root>/images/<dataset>/<version>.parquet`` with one row per image:
``sha256, source, label, mask_sha256, asset, part_id, time (UTC, nullable), width, height,
channels, dataset, version``; beside it ``<version>.json`` with counts, the skipped files and
the previous version when ``append`` carried its rows over. Versions are ``v1, v2, ...``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from axhub.core.errors import InputProblem, InputValidationError
from axhub.core.ids import check_path_safe
from axhub.core.settings import Settings

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".pgm")
MANIFEST_COLUMNS = [
    "sha256", "source", "label", "mask_sha256", "asset", "part_id", "time",
    "width", "height", "channels", "dataset", "version",
]  # fmt: skip


@dataclass
class ImportReport:
    dataset: str
    version: str
    manifest: Path
    imported: int = 0
    skipped: list[InputProblem] = field(default_factory=list)
    mask_problems: list[InputProblem] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.imported} images imported into {self.dataset} {self.version}"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped: " + "; ".join(str(p) for p in self.skipped)
        return text


def dataset_root(settings: Settings, dataset: str) -> Path:
    assert settings.data_root is not None
    return settings.data_root / "images" / check_path_safe(dataset, "dataset name")


def list_versions(settings: Settings, dataset: str) -> list[str]:
    root = dataset_root(settings, dataset)
    found = [p.stem for p in root.glob("v*.parquet") if p.stem[1:].isdigit()]
    return sorted(found, key=lambda v: int(v[1:]))


def read_manifest(settings: Settings, dataset: str, version: str | None = None) -> pd.DataFrame:
    """The rows of one dataset version (the latest when ``version`` is None)."""
    versions = list_versions(settings, dataset)
    if not versions:
        raise InputValidationError(
            InputProblem(dataset, None, None, "no such image dataset"), hint="import images first"
        )
    chosen = version or versions[-1]
    if chosen not in versions:
        raise InputValidationError(
            InputProblem(dataset, None, "version", f"unknown version {chosen!r}; have {versions}")
        )
    return pd.read_parquet(dataset_root(settings, dataset) / f"{chosen}.parquet")


def _rows_from_folder(source: Path, masks_dir: Path | None) -> list[dict[str, Any]]:
    from axhub.ml.vision.images import find_mask, folder_label, is_mask_path, labels_from_masks

    rows = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if is_mask_path(path, source):  # masks beside images or under ground_truth/ are masks
            continue
        rel = path.relative_to(source)
        mask = find_mask(path, source) if masks_dir is None else None
        if masks_dir is not None:
            for suffix in MASK_SUFFIXES:
                candidate = masks_dir / rel.parent / (path.stem + suffix)
                if candidate.is_file():
                    mask = candidate
                    break
        rows.append(
            {
                "path": path,
                "source": rel.as_posix(),
                "label": folder_label(path, source),
                "mask": mask,
            }
        )
    labels_from_masks(rows)
    return rows


def _rows_from_csv(csv_path: Path) -> list[dict[str, Any]]:
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if "path" not in frame.columns:
        raise InputValidationError(
            InputProblem(str(csv_path), None, "path", "column missing"),
            hint="the CSV needs a 'path' column (plus optional label, mask, asset, part_id, time)",
        )
    rows = []
    for i, rec in frame.iterrows():
        path = Path(rec["path"])
        path = path if path.is_absolute() else csv_path.parent / path
        mask = rec.get("mask") or None
        rows.append(
            {
                "path": path,
                "source": str(rec["path"]),
                "label": rec.get("label") or None,
                "mask": (Path(mask) if Path(mask).is_absolute() else csv_path.parent / mask)
                if mask
                else None,
                "asset": rec.get("asset") or None,
                "part_id": rec.get("part_id") or None,
                "time": rec.get("time") or None,
                "row": int(str(i)) + 2,  # 1-based, after the header line
            }
        )
    return rows


def import_images(
    source: Path,
    *,
    settings: Settings,
    dataset: str,
    labels_csv: Path | None = None,
    masks_dir: Path | None = None,
    asset: str | None = None,
    append: bool = False,
    progress: bool = False,
) -> ImportReport:
    """Import a folder (or the files a CSV lists) as a new version of ``dataset``."""
    import numpy as np

    from axhub.ml.vision.images import decode_image
    from axhub.store.blobs import BlobStore

    root = dataset_root(settings, dataset)
    rows = (
        _rows_from_csv(labels_csv) if labels_csv is not None else _rows_from_folder(Path(source), masks_dir)
    )
    versions = list_versions(settings, dataset)
    version = f"v{int(versions[-1][1:]) + 1 if versions else 1}"
    report = ImportReport(dataset=dataset, version=version, manifest=root / f"{version}.parquet")
    blobs = BlobStore(settings.blob_root)
    records: list[dict[str, Any]] = []

    iterator: Any = rows
    if progress:
        from rich.progress import track

        iterator = track(rows, description=f"importing into {dataset}")
    for row in iterator:
        path: Path = row["path"]
        where = str(row["source"]) + (f" (CSV row {row['row']})" if "row" in row else "")
        if not path.is_file():
            report.skipped.append(InputProblem(where, None, "path", "file not found"))
            continue
        try:
            img = decode_image(path, name=where)
        except InputValidationError as exc:
            report.skipped.extend(exc.problems)
            continue
        mask_sha = None
        if row.get("mask") is not None:
            try:
                mask = decode_image(Path(row["mask"]), name=f"mask of {where}")
                if mask.shape[:2] != img.shape[:2]:
                    raise InputValidationError(
                        InputProblem(
                            f"mask of {where}", None, None, f"size {mask.shape[:2]} ≠ image {img.shape[:2]}"
                        )
                    )
                mask_sha = blobs.put(Path(row["mask"]))
            except InputValidationError as exc:
                report.mask_problems.extend(exc.problems)
        time_value = pd.Timestamp(row["time"], tz="UTC") if row.get("time") else pd.NaT
        records.append(
            {
                "sha256": blobs.put(path),
                "source": str(row["source"]),
                "label": row.get("label"),
                "mask_sha256": mask_sha,
                "asset": row.get("asset") or asset,
                "part_id": row.get("part_id") or path.stem,
                "time": time_value,
                "width": int(img.shape[1]),
                "height": int(img.shape[0]),
                "channels": int(1 if img.ndim == 2 else img.shape[2]),
                "dataset": dataset,
                "version": version,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=MANIFEST_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    previous = versions[-1] if (append and versions) else None
    if previous is not None:
        old = read_manifest(settings, dataset, previous).assign(version=version)
        frame = pd.concat([old, frame], ignore_index=True).drop_duplicates(subset=["sha256"], keep="last")
    for col in ("width", "height", "channels"):
        frame[col] = frame[col].astype(np.int64)
    root.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(report.manifest, index=False)
    report.imported = len(records)
    summary = {
        "dataset": dataset,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(labels_csv or source),
        "previous_version": previous,
        "images": len(frame),
        "imported_now": len(records),
        "labels": {str(k): int(v) for k, v in frame["label"].value_counts(dropna=False).items()},
        "skipped": [str(p) for p in report.skipped],
        "mask_problems": [str(p) for p in report.mask_problems],
    }
    (root / f"{version}.json").write_text(json.dumps(summary, indent=2))
    return report


def load_dataset_images(settings: Settings, dataset: str, version: str | None = None) -> pd.DataFrame:
    """The manifest of a version with an ``image`` column of decoded arrays (for training)."""
    from axhub.ml.vision.images import decode_image
    from axhub.store.blobs import BlobStore

    frame = read_manifest(settings, dataset, version)
    blobs = BlobStore(settings.blob_root)
    frame = frame.copy()
    pairs = zip(frame["sha256"], frame["source"], strict=True)
    decoded = [decode_image(blobs.get(sha), name=src) for sha, src in pairs]
    frame["image"] = pd.Series(decoded, index=frame.index)
    return frame

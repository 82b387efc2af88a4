"""Importing inspection images: labels from folders or CSV, masks, bad files skipped by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from axhub.core.settings import Settings
from axhub.ingest.images import import_images, list_versions, load_dataset_images, read_manifest
from axhub.sim.images import make_part_image
from axhub.store.blobs import BlobStore


def _save(img: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path / "home")
    s.ensure_dirs()
    return s


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "inbox"
    for i in range(3):
        _save(make_part_image(i, size=48).image, root / "good" / f"g{i}.png")
    _save(make_part_image(10, size=40, channels=3).image, root / "good" / "colour.jpg")
    for i, kind in enumerate(("scratch", "hole")):
        part = make_part_image(20 + i, size=48, defect=kind)
        _save(part.image, root / "defect" / f"d{i}.png")
        _save((part.mask * 255).astype(np.uint8), tmp_path / "masks" / "defect" / f"d{i}.png")
    # the bad ones: random bytes named .jpg, a PNG cut in half, a text file
    (root / "good" / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    whole = _save(make_part_image(30, size=48).image, tmp_path / "whole.png").read_bytes()
    (root / "defect" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "notes.txt").write_text("shift 2, camera 1")
    return root


def test_folder_import_skips_bad_files_by_name_and_lands_the_rest(
    folder: Path, settings: Settings, tmp_path: Path
) -> None:
    report = import_images(
        folder, settings=settings, dataset="impeller", masks_dir=tmp_path / "masks", asset="cam-1"
    )
    skipped = sorted(p.file for p in report.skipped)
    assert skipped == ["defect/truncated.png", "good/corrupt.jpg", "notes.txt"]
    assert all("not a readable image" in p.problem for p in report.skipped)
    assert report.imported == 6 and report.version == "v1"
    rows = read_manifest(settings, "impeller")
    assert sorted(rows["label"]) == ["defect", "defect", "good", "good", "good", "good"]
    assert set(rows["asset"]) == {"cam-1"}
    colour = rows[rows["source"] == "good/colour.jpg"].iloc[0]
    assert (colour["width"], colour["height"], colour["channels"]) == (40, 40, 3)
    assert set(rows[rows["label"] == "good"]["channels"]) == {1, 3}
    # masks attached to the defective images, stored as blobs of the same size
    blobs = BlobStore(settings.blob_root)
    defects = rows[rows["label"] == "defect"]
    assert defects["mask_sha256"].notna().all()
    assert rows[rows["label"] == "good"]["mask_sha256"].isna().all()
    for sha, msha in zip(defects["sha256"], defects["mask_sha256"], strict=True):
        assert blobs.path(sha).is_file() and blobs.path(msha).is_file()
    # the stored bytes are the originals, so images decode back identically
    loaded = load_dataset_images(settings, "impeller")
    original = np.asarray(Image.open(folder / "good" / "g0.png"))
    assert np.array_equal(loaded[loaded["source"] == "good/g0.png"]["image"].iloc[0], original)


def test_versions_are_immutable_and_append_carries_rows(
    folder: Path, settings: Settings, tmp_path: Path
) -> None:
    import_images(folder / "good", settings=settings, dataset="impeller")
    v1 = read_manifest(settings, "impeller", "v1")
    report = import_images(folder / "defect", settings=settings, dataset="impeller", append=True)
    assert report.version == "v2" and list_versions(settings, "impeller") == ["v1", "v2"]
    v2 = read_manifest(settings, "impeller", "v2")
    assert len(v2) == len(v1) + report.imported
    assert read_manifest(settings, "impeller", "v1").equals(v1)


def test_csv_import_reports_missing_and_bad_rows(folder: Path, settings: Settings, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "path,label,part_id,time\n"
        f"{folder}/good/g0.png,ok,P-1,2024-05-01T08:00:00Z\n"
        "inbox/good/g1.png,ok,P-2,\n"
        "inbox/good/missing.png,ok,P-3,\n"
        "inbox/good/corrupt.jpg,ok,P-4,\n"
    )
    report = import_images(tmp_path, settings=settings, dataset="csvset", labels_csv=csv)
    assert report.imported == 2
    problems = {p.file: p.problem for p in report.skipped}
    assert problems["inbox/good/missing.png (CSV row 4)"] == "file not found"
    assert "not a readable image" in problems["inbox/good/corrupt.jpg (CSV row 5)"]
    rows = read_manifest(settings, "csvset")
    assert list(rows["part_id"]) == ["P-1", "P-2"]
    assert str(rows["time"].iloc[0]) == "2024-05-01 08:00:00+00:00"


def test_unsafe_dataset_name_is_refused(folder: Path, settings: Settings) -> None:
    from axhub.core.errors import AxHubError

    with pytest.raises(AxHubError, match="cannot be used"):
        import_images(folder, settings=settings, dataset="../escape")

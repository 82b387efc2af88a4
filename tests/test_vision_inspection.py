"""Inspection that an operator can trust: operating points, dataset layouts, anchored heatmaps,
one path from the CLI to the registry (issue 14). Tiny synthetic parts; real files, real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from axhub.ml.vision import operating  # noqa: E402
from axhub.ml.vision.images import find_mask, labelled_folder, list_images  # noqa: E402
from axhub.ml.vision.overlay import anchored, overlay, unique_names  # noqa: E402
from axhub.sim.images import make_part_images  # noqa: E402


# -- operating points -------------------------------------------------------------------------
def test_good_only_policy_bounds_false_alarms_by_the_number_of_images() -> None:
    rng = np.random.default_rng(0)
    few = operating.good_only_threshold(rng.normal(size=50), target_far=0.01, confidence=0.95)
    assert not few["target_met"] and few["threshold"] == pytest.approx(few["threshold"])
    assert few["rank"] == 50 and few["good_images_needed"] == 299
    assert 0.05 < few["false_alarm_rate_upper_bound"] < 0.06  # 1 - 0.05 ** (1/50)
    many = rng.normal(size=2000)
    point = operating.good_only_threshold(many, target_far=0.01, confidence=0.95)
    assert point["target_met"] and point["false_alarm_rate_upper_bound"] <= 0.01
    # the bound holds out of sample: fresh good scores from the same distribution
    fresh = rng.normal(size=200_000)
    assert (fresh > point["threshold"]).mean() <= 0.01


def test_miss_rate_policy_needs_five_defects_and_meets_its_target() -> None:
    good = np.linspace(0, 1, 40)
    with pytest.raises(ValueError, match="at least 5"):
        operating.miss_rate_threshold(good, np.array([2.0, 3.0, 4.0]))
    defects = np.array([0.9, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3])
    strict = operating.miss_rate_threshold(good, defects, target_miss=0.0)
    assert strict["miss_rate_calibration"] == 0 and strict["threshold"] < 0.9
    loose = operating.miss_rate_threshold(good, defects, target_miss=0.1)  # one miss allowed
    assert loose["miss_rate_calibration"] == pytest.approx(0.1)
    assert 1.0 < loose["threshold"] < 1.5 and loose["false_alarm_rate_calibration"] == 0
    curve = operating.tradeoff(good, defects)
    fars = [p["false_alarm_rate"] for p in curve]
    misses = [p["miss_rate"] for p in curve]
    assert fars == sorted(fars, reverse=True) and misses == sorted(misses)


# -- dataset layouts ----------------------------------------------------------------------------
def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_masks_are_read_as_masks_in_the_usual_layouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = make_part_images(2, 2, seed=3, size=48)
    empty = np.zeros((48, 48), np.uint8)
    # KolektorSDD-like: images in Imgs/ with PNG masks beside them
    kos = tmp_path / "kos"
    for i, p in enumerate(parts):
        _save(kos / "Imgs" / f"part{i}.jpg", p.image)
        _save(
            kos / "Imgs" / f"part{i}_label.png",
            ((p.mask if p.mask is not None else empty) > 0).astype(np.uint8) * 255,
        )
    rows = labelled_folder(kos)
    assert len(rows) == 4 and all(not str(r["path"]).endswith("_label.png") for r in rows)
    assert sorted(str(r["label"]) for r in rows) == ["defect", "defect", "good", "good"]
    # MVTec-like: train/good, test/<type>, ground_truth/<type>/<stem>_mask.png
    mv = tmp_path / "mv"
    _save(mv / "train" / "good" / "000.png", parts[0].image)
    _save(mv / "test" / "crack" / "000.png", parts[2].image)
    _save(mv / "ground_truth" / "crack" / "000_mask.png", empty + 255)
    assert [p.relative_to(mv).as_posix() for p in list_images(mv)] == [
        "test/crack/000.png",
        "train/good/000.png",
    ]
    assert find_mask(mv / "test" / "crack" / "000.png", mv) == mv / "ground_truth" / "crack" / "000_mask.png"
    # `evaluate product/test`: the masks sit beside the folder given, in ground_truth/
    assert labelled_folder(mv / "test")[0]["mask"] == mv / "ground_truth" / "crack" / "000_mask.png"
    monkeypatch.chdir(mv)  # the folder named relative to the working directory, as users type it
    for root in (Path("test"), Path(".")):
        masks = [r["mask"] for r in labelled_folder(root) if r["label"] == "crack"]
        assert masks == [mv / "ground_truth" / "crack" / "000_mask.png"], root
    assert {r["label"] for r in labelled_folder(mv)} == {"good", "crack"}
    # VisA as published: Data/Images/{Normal,Anomaly}/*.JPG, masks in Data/Masks/Anomaly/*.png
    visa = tmp_path / "visa" / "Data"
    _save(visa / "Images" / "Normal" / "0000.JPG", parts[0].image)
    _save(visa / "Images" / "Anomaly" / "000.JPG", parts[2].image)
    _save(visa / "Masks" / "Anomaly" / "000.png", empty + 255)
    for root in (visa, visa / "Images"):
        rows = {r["path"].name: (r["label"], r["mask"]) for r in labelled_folder(root)}
        assert rows == {
            "0000.JPG": ("Normal", None),
            "000.JPG": ("Anomaly", visa / "Masks" / "Anomaly" / "000.png"),
        }
    # KolektorSDD as published: one folder per part, good and cracked surfaces together, each
    # image with its mask beside it: the folder is a sample, the masks say good or defect.
    ks = tmp_path / "published"
    for folder, (good, bad) in {"kos01": (parts[0], parts[2]), "kos02": (parts[1], parts[3])}.items():
        for stem, part in (("Part0", good), ("Part1", bad)):
            _save(ks / folder / f"{stem}.jpg", part.image)
            _save(
                ks / folder / f"{stem}_label.bmp",
                ((part.mask if part.mask is not None else empty) > 0).astype(np.uint8) * 255,
            )
    labels = {r["path"].relative_to(ks).as_posix(): r["label"] for r in labelled_folder(ks)}
    assert labels == {f"kos0{i}/Part{j}.jpg": ["good", "defect"][j] for i in (1, 2) for j in (0, 1)}
    # Magnetic-tile as published: MT_<type>/Imgs/<stem>.jpg with its mask <stem>.png beside it;
    # MT_Free holds the defect-free tiles (empty masks)
    mt = tmp_path / "Magnetic-tile-defect-datasets"
    for folder, part in {"MT_Blowhole": parts[2], "MT_Free": parts[0]}.items():
        _save(mt / folder / "Imgs" / "exp1_num_1.jpg", part.image)
        mask = part.mask if part.mask is not None else empty
        _save(mt / folder / "Imgs" / "exp1_num_1.png", (mask > 0).astype(np.uint8) * 255)
    rows = {r["path"].relative_to(mt).as_posix(): (r["label"], r["mask"]) for r in labelled_folder(mt)}
    assert rows == {
        "MT_Blowhole/Imgs/exp1_num_1.jpg": ("MT_Blowhole", mt / "MT_Blowhole" / "Imgs" / "exp1_num_1.png"),
        "MT_Free/Imgs/exp1_num_1.jpg": ("good", mt / "MT_Free" / "Imgs" / "exp1_num_1.png"),
    }
    # KolektorSDD2 as published: train/10000.png beside 10000_GT.png (upper case)
    ks2 = tmp_path / "KolektorSDD2"
    for stem, part in (("10000", parts[0]), ("10001", parts[2])):
        _save(ks2 / "train" / f"{stem}.png", part.image)
        mask = part.mask if part.mask is not None else empty
        _save(ks2 / "train" / f"{stem}_GT.png", (mask > 0).astype(np.uint8) * 255)
    labels = {r["path"].name: r["label"] for r in labelled_folder(ks2)}
    assert labels == {"10000.png": "good", "10001.png": "defect"}
    # DAGM 2007 as published: Class1/Train/*.PNG, masks of the defective images only, in Label/
    dagm = tmp_path / "dagm" / "Class1"
    for split in ("Train", "Test"):
        _save(dagm / split / "0001.PNG", parts[0].image)
        _save(dagm / split / "0002.PNG", parts[2].image)
        _save(dagm / split / "Label" / "0002_label.PNG", empty + 255)
    for root in (dagm, dagm / "Test"):
        rows = {
            r["path"].relative_to(root).as_posix(): (r["label"], r["mask"]) for r in labelled_folder(root)
        }
        prefix = "" if root.name == "Test" else "Test/"
        assert rows[prefix + "0001.PNG"] == ("good", None), root
        assert rows[prefix + "0002.PNG"] == ("defect", dagm / "Test" / "Label" / "0002_label.PNG"), root
        assert all("Label" not in path for path in rows), root


def test_import_attaches_masks_and_never_imports_them(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from axhub.ingest.images import import_images, read_manifest

    parts = make_part_images(1, 1, seed=4, size=48)
    src = tmp_path / "src"
    for i, p in enumerate(parts):
        _save(src / "Imgs" / f"p{i}.png", p.image)
        _save(src / "Imgs" / f"p{i}_mask.png", np.full((48, 48), 255 * i, np.uint8))
    report = import_images(src, settings=settings, dataset="kos")
    frame = read_manifest(settings, "kos")
    assert report.imported == 2 and frame["mask_sha256"].notna().all()
    # Imgs/ names no class, so the masks do, as in `vision train --folder` (was: unlabelled, and a
    # good-only model trained on the import took the defects for good parts)
    assert frame.sort_values("source")["label"].tolist() == ["good", "defect"]


# -- heatmaps ---------------------------------------------------------------------------------
def test_overlay_is_calm_below_the_threshold_and_lights_up_above() -> None:
    image = np.full((20, 20), 100, np.uint8)
    calm = overlay(image, np.full((20, 20), 0.4), threshold=1.0)
    assert (calm == 100).all()  # no colour at all on a good part
    heat = np.zeros((20, 20))
    heat[5:8, 5:8] = 1.3
    hot = overlay(image, heat, threshold=1.0)
    assert hot[6, 6, 0] > 150 and hot[6, 6, 2] < 60 and (hot[15, 15] == 100).all()
    assert anchored(np.array([0.5, 0.75, 1.0, 2.0]), 1.0).tolist() == [0.0, 0.5, 1.0, 1.0]


def test_overlay_names_are_unique_across_folders(tmp_path: Path) -> None:
    paths = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "b" / "y.png"]
    names = unique_names(paths)
    assert len(set(names)) == 3 and names[2] == "y-heatmap.png"
    assert names[:2] == ["a__x-heatmap.png", "b__x-heatmap.png"]


# -- one path from CLI to registry ----------------------------------------------------------------
def test_cli_trains_on_a_plain_folder_registers_and_evaluates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from axhub.cli.main import app
    from axhub.core.settings import Settings
    from axhub.registry.store import ModelRegistry
    from axhub.store.blobs import BlobStore
    from axhub.store.db import Database
    from axhub.store.platform import ensure_org
    from axhub.store.scoped import OrgScope

    torch.set_num_threads(1)
    monkeypatch.setenv("AXHUB_HOME", str(tmp_path / "home"))
    good = tmp_path / "parts"
    for i, p in enumerate(make_part_images(12, 0, seed=5, size=64)):
        _save(good / f"{i:03d}.png", p.image)  # a plain folder: root files, no labels
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["vision", "train", "--folder", str(good), "--out", str(tmp_path / "b"), "--input-size", "64",
         "--backbone", "lite0", "--bank-size", "200", "--name", "parts-pc", "--threads", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "policy (a)" in res.output and "registered: parts-pc v1" in res.output
    assert (
        res.output.count("synthetic AUROC") == 4
    )  # every candidate's self-check figures: 2 stage pairs x 2 margins
    settings = Settings()
    db = Database(settings.database_url)
    with db.session() as session:
        org = ensure_org(session, settings.default_org, settings.default_org)
        versions, _ = ModelRegistry(OrgScope(session, org.id), BlobStore(settings.blob_root)).list()
        assert [(v.name, v.family, v.estimator) for v in versions] == [("parts-pc", "vision", "patchcore")]
    labelled = tmp_path / "labelled"
    test = make_part_images(3, 3, seed=6, size=64)
    for i, p in enumerate(test):
        _save(labelled / ("good" if p.defect is None else "scratch") / f"{i}.png", p.image)
    _save(labelled / "good" / "sub" / "0.png", test[0].image)  # same stem in another folder
    res = runner.invoke(
        app, ["vision", "evaluate", str(tmp_path / "b"), str(labelled), "--out", str(tmp_path / "ev")]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 7 and metrics["auroc"] > 0.8
    assert (tmp_path / "ev" / "roc.png").is_file() and len(
        list((tmp_path / "ev" / "heatmaps").iterdir())
    ) == 7
    res = runner.invoke(
        app, ["vision", "score", str(tmp_path / "b"), str(labelled), "--heatmaps", str(tmp_path / "hm")]
    )
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "hm").iterdir())) == 7  # no overwrite: 0.png in good/ and good/sub/
    seen = tmp_path / "seen"
    for path in sorted(good.iterdir()):  # the training images themselves, labelled good
        _save(labelled / "good" / "copies" / path.name, np.array(Image.open(path)))
        _save(seen / "good" / path.name, np.array(Image.open(path)))
    res = runner.invoke(
        app, ["vision", "evaluate", str(tmp_path / "b"), str(labelled), "--out", str(tmp_path / "ev2")]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev2" / "metrics.json").read_text())
    # 2 of the 12 calibrated the threshold, 10 are in the memory bank: none of them is scored
    assert metrics["n"] == 7
    assert metrics["calibration_images_left_out"] == 2 and metrics["training_images_left_out"] == 10
    assert "10 images left out: they trained the model" in res.output
    res = runner.invoke(
        app, ["vision", "evaluate", str(tmp_path / "b"), str(seen), "--out", str(tmp_path / "ev3")]
    )
    said = " ".join(res.output.replace("│", " ").split())  # the error panel wraps lines
    assert res.exit_code == 2 and "trained or calibrated this model" in said


def test_vision_cli_speaks_korean_to_a_korean_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app

    torch.set_num_threads(1)
    monkeypatch.setenv("AXHUB_HOME", str(tmp_path / "home"))
    parts = make_part_images(12, 6, seed=8, size=64)
    for i, p in enumerate(parts):  # folders named as a Korean engineer names them
        _save(tmp_path / "부품" / ("양품" if p.defect is None else "불량") / f"부품_{i:02d}.png", p.image)
    runner = CliRunner()
    model = str(tmp_path / "모델")
    runs = [
        ["--lang", "ko", "vision", "train", "--folder", str(tmp_path / "부품"), "--out", model,
         "--input-size", "64", "--backbone", "lite0", "--bank-size", "200", "--threads", "1"],
        ["--lang", "ko", "vision", "evaluate", model, str(tmp_path / "부품"),
         "--out", str(tmp_path / "결과")],
        ["--lang", "ko", "vision", "score", model, str(tmp_path / "부품" / "불량")],
        ["--lang", "ko", "vision", "operating-point", model, "--out", str(tmp_path / "모델2"),
         "--target-miss", "0.2"],
    ]  # fmt: skip
    said = []
    for args in runs:
        res = runner.invoke(app, args)
        # evaluating on the training folder: every image was seen, which is said (exit 2)
        assert res.exit_code in (0, 2), res.output
        said.append(res.output)
    text = "\n".join(said)
    assert "정책 (b), 레이블 불량 6장" in text  # 양품/ is good, 불량/ a defect class
    assert "모델 번들 저장" in text and "이미지 읽기" in text and "불량" in said[2]
    assert "학습이나 임계값 보정에 쓰였습니다" in " ".join(said[1].replace("│", " ").split())
    english = ["policy", "threshold", "bundle", "registered", "written", "synthetic", "margin",
               "recall", "reading", "features", "scoring", "coreset", "DEFECT", "false alarm"]  # fmt: skip
    ours = "\n".join(line for line in text.splitlines() if not line.startswith(("Usage:", "Try ")))  # Click's
    assert [w for w in english if w in ours] == [], ours
    # bad input: one line in Korean naming the file, never a traceback
    (tmp_path / "부품" / "양품" / "깨진파일.png").write_bytes(b"not an image")
    res = runner.invoke(app, runs[0])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "깨진파일.png:읽을수있는이미지가아닙니다" in "".join(res.output.split())  # the console wraps
    for i, p in enumerate(x for x in parts if x.defect is not None):  # defects only: nothing to learn
        _save(tmp_path / "불량만" / "불량" / f"{i}.png", p.image)
    only_defects = ["--lang", "ko", "vision", "train", "--folder", str(tmp_path / "불량만"), "--out", model]
    res = runner.invoke(app, only_defects)
    assert res.exit_code == 1 and "양품이미지가없습니다" in "".join(res.output.split()), res.output
    res = runner.invoke(app, [*only_defects, "--model", "classifier"])  # one class cannot be told apart
    assert res.exit_code == 1 and "부류가둘이상필요한데불량뿐입니다" in "".join(res.output.split()), (
        res.output
    )


def test_operating_points_over_the_api_and_the_choice_is_stored(tmp_path: Path) -> None:
    import pandas as pd

    from _api_helpers import make_hub
    from axhub.ml.vision.patchcore import PatchCore
    from axhub.registry.store import ModelRegistry
    from axhub.store.blobs import BlobStore
    from axhub.store.platform import ensure_org
    from axhub.store.scoped import OrgScope

    torch.set_num_threads(1)
    good = make_part_images(10, 0, seed=7, size=64)
    bad = make_part_images(0, 6, seed=8, size=64)
    frame = pd.DataFrame({"image": [p.image for p in good + bad], "label": ["ok"] * 10 + ["dent"] * 6})
    model = PatchCore(input_size=64, bank_size=100, backbone="lite0", stages=[2, 3], calibration_fraction=0.3)
    bundle = model.fit(frame).save(tmp_path / "bundle")
    hub = make_hub(tmp_path / "home", f"sqlite:///{tmp_path / 'hub.db'}")
    with hub.db.session() as session:
        org = ensure_org(session, "acme", "acme")
        version_id = (
            ModelRegistry(OrgScope(session, org.id), BlobStore(hub.settings.blob_root)).register(bundle).id
        )
    url = f"/api/v1/models/{version_id}/operating-point"
    got = hub.client("a_viewer").get(url + "s")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["n_good"] == 3 and body["n_defects"] == 6 and body["chosen"]["policy"] == "miss-rate"
    assert all(p["miss_rate"] is not None for p in body["curve"])
    assert hub.client("a_viewer").post(url, json={"target_false_alarm": 0.05}).status_code == 403
    assert hub.client("b_admin").get(url + "s").status_code == 404
    bad_body = hub.client("a_engineer").post(url, json={"target_miss": 0.1, "threshold": 3.0})
    assert bad_body.status_code == 422
    pick = body["curve"][len(body["curve"]) // 2]["threshold"]
    chosen = hub.client("a_engineer").post(url, json={"threshold": pick})
    assert chosen.status_code == 200, chosen.text
    again = hub.client("a_viewer").get(url + "s").json()["chosen"]
    assert again["policy"] == "chosen" and again["threshold"] == pytest.approx(pick)
    stored = hub.client("a_viewer").get(f"/api/v1/models/{version_id}").json()["params"]["operating_point"]
    assert stored["threshold"] == pytest.approx(pick)


# -- a product never seen: shape, border, layers, memory ------------------------------------------
def test_long_parts_keep_their_aspect_and_layers_are_chosen_on_good_images(tmp_path: Path) -> None:
    from axhub.ml.base import Estimator
    from axhub.ml.vision.base import graph_input
    from axhub.ml.vision.patchcore import PatchCore, model_shape
    from axhub.registry.bundle import BundleRunner

    assert model_shape([(1250, 500)], 224, keep_aspect=True) == (576, 224)
    assert model_shape([(300, 310)], 224, keep_aspect=True) == (224, 224)
    torch.set_num_threads(1)
    long_parts = [np.tile(p.image, (4, 1))[:150] for p in make_part_images(10, 0, seed=9, size=48)]  # 150x48
    model = PatchCore(
        input_size=48, bank_size=10_000, max_patches=900, backbone="lite0", calibration_fraction=0.3
    )
    model.fit(long_parts)
    assert model.shape_ == (160, 48)  # ratio 3.1: the long side follows, a multiple of 32
    assert model.bank.shape[0] <= 900  # the coreset never saw more than max_patches vectors
    sel = model.selection_
    assert [(c["stages"], c["margin"]) for c in sel["candidates"]] == [
        ([2, 3], 0),
        ([2, 3], 4),
        ([3, 4], 0),
        ([3, 4], 4),
    ]
    assert sel["chosen"]["stages"] == model.stages_ and sel["chosen"]["margin"] == model.margin_
    assert "synthetic defect" in sel["method"]
    for c in sel["candidates"]:
        assert set(c["synthetic_auroc_by_kind"]) == {"patch", "scratch", "spot"}
        assert 0.0 <= c["synthetic_auroc_std"] < 0.5
    heat = model.explain(long_parts[:2])
    assert heat.shape == (2, 150, 48)
    model.save(tmp_path / "b")
    loaded = Estimator.load(tmp_path / "b")
    assert isinstance(loaded, PatchCore) and loaded.shape_ == model.shape_ and loaded.stages_ == model.stages_
    result = BundleRunner(tmp_path / "b").run(graph_input(long_parts[:2]))
    # Compared as squared distances: the graph computes ‖x‖² − 2x·m + ‖m‖², whose float32
    # rounding (~1e-7 × ‖x‖², here ~1e-3) is a large share of a near-zero distance's square root
    # when these tiny parts lie almost on their bank (onnxruntime and torch sum in other orders).
    np.testing.assert_allclose(
        result["score"].astype(np.float64) ** 2,
        model.score(long_parts[:2]).astype(np.float64) ** 2,
        rtol=1e-3,
        atol=1e-2,
    )


def test_train_says_when_the_self_check_is_weak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A product whose normal look hides even pasted defects (KolektorSDD: 70.6 %) gets a plain
    warning from ``train``, in the user's language; a strong one (the toy parts here) gets none."""
    from typer.testing import CliRunner

    from axhub.cli.main import app
    from axhub.ml.vision import selection

    torch.set_num_threads(1)
    monkeypatch.setenv("AXHUB_HOME", str(tmp_path / "home"))
    good = tmp_path / "parts"
    for i, p in enumerate(make_part_images(10, 0, seed=5, size=64)):
        _save(good / f"{i:03d}.png", p.image)
    real = selection.choose_features
    weak_too: list[bool] = []

    def maybe_weak(*args: Any, **kwargs: Any) -> dict[str, Any]:
        result = real(*args, **kwargs)
        if weak_too:
            result["self_check"] = {
                **result["self_check"],
                "synthetic_auroc": 0.706,
                "synthetic_auroc_std": 0.015,
            }
        return result

    monkeypatch.setattr(selection, "choose_features", maybe_weak)
    args = ["vision", "train", "--folder", str(good), "--input-size", "64", "--backbone", "lite0",
            "--bank-size", "100", "--threads", "1", "--no-register"]  # fmt: skip
    runner = CliRunner()
    strong = runner.invoke(app, [*args, "--out", str(tmp_path / "a")], env={"AXHUB_LANG": "en"})
    assert strong.exit_code == 0, strong.output
    assert "synthetic AUROC" in strong.output and "self-check is weak" not in strong.output
    weak_too.append(True)
    weak = runner.invoke(app, [*args, "--out", str(tmp_path / "b")], env={"AXHUB_LANG": "en"})
    assert weak.exit_code == 0, weak.output
    assert "The self-check is weak (70.6% ± 1.5%" in weak.output and "axhub vision evaluate" in weak.output
    korean = runner.invoke(app, [*args, "--out", str(tmp_path / "c")], env={"AXHUB_LANG": "ko"})
    assert korean.exit_code == 0, korean.output
    assert "자체 점검이 약합니다(" in korean.output
    # With labelled defects the threshold already rests on them: the advice is to evaluate, not to label.
    labelled = tmp_path / "labelled"
    for i, p in enumerate(make_part_images(10, 5, seed=6, size=64)):
        _save(labelled / ("good" if p.label == "good" else "defect") / f"{i:03d}.png", p.image)
    args[3] = str(labelled)
    calibrated = runner.invoke(app, [*args, "--out", str(tmp_path / "d")], env={"AXHUB_LANG": "en"})
    assert calibrated.exit_code == 0, calibrated.output
    assert "policy (b), 5 labelled defects" in calibrated.output
    assert "The self-check is weak (70.6%" in calibrated.output and "train again" not in calibrated.output


def test_self_check_tests_on_every_good_image_its_small_bank_did_not_draw() -> None:
    from axhub.ml.vision.selection import MAX_BANK_IMAGES, self_check_images

    bank_imgs = [np.full((4, 4), i, np.uint8) for i in range(100)]
    held_out = [np.full((4, 4), 200 + i, np.uint8) for i in range(28)]
    bank, clean = self_check_images(bank_imgs, held_out, np.random.default_rng(0))
    bank_ids = {int(b[0, 0]) for b in bank}
    clean_ids = [int(c[0, 0]) for c in clean]
    assert len(bank) == MAX_BANK_IMAGES and len(clean) == 100 - MAX_BANK_IMAGES + 28
    assert not bank_ids & set(clean_ids)  # never scored against a bank that holds it
    assert set(range(200, 228)) <= set(clean_ids) and len(set(clean_ids)) == len(clean_ids)


def test_margin_leaves_the_outer_rings_out_of_the_score() -> None:
    from axhub.ml.vision.patchcore import ignore_margin

    grid = torch.ones(1, 1, 12, 10)
    grid[0, 0, 0, 0] = 50.0  # a hot border patch, as on KolektorSDD's surface edges
    grid[0, 0, 6, 5] = 3.0  # a defect inside
    out = ignore_margin(grid, 2)
    assert float(out.max()) == 3.0 and torch.equal(out[..., 2:10, 2:8], grid[..., 2:10, 2:8])
    assert torch.allclose(out[0, 0, 0, 0], grid[..., 2:10, 2:8].mean())
    assert torch.equal(ignore_margin(grid, 0), grid)


def test_the_heatmap_carries_a_defect_that_runs_to_the_edge_through_the_margin() -> None:
    from axhub.ml.vision.patchcore import extend_inner

    grid = torch.ones(1, 1, 12, 10)
    grid[0, 0, 0, 0] = 50.0  # a hot border patch: left out of the map as of the score
    grid[0, 0, 6, 2:] = 9.0  # a crack from inside to the right edge
    out = extend_inner(grid, 2)
    assert torch.equal(out[..., 2:10, 2:8], grid[..., 2:10, 2:8])
    assert float(out.max()) == 9.0
    assert torch.all(out[0, 0, 6, 8:] == 9.0)  # still lit to the edge
    assert torch.all(out[0, 0, :2, :] < 9.0)  # the margin's own hot patch is gone
    assert torch.equal(extend_inner(grid, 0), grid)

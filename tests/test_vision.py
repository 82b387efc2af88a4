"""Vision models on tiny synthetic part images (sim/images.py): behaviour, export, offline backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from axhub.core.errors import InputValidationError  # noqa: E402
from axhub.ml.base import Estimator  # noqa: E402
from axhub.ml.vision.base import graph_input  # noqa: E402
from axhub.ml.vision.classifier import DefectClassifier  # noqa: E402
from axhub.ml.vision.patchcore import PatchCore, greedy_coreset  # noqa: E402
from axhub.registry.bundle import BundleRunner  # noqa: E402
from axhub.sim.images import make_part_image, make_part_images  # noqa: E402

SIZE = 96


@pytest.fixture(scope="module")
def parts() -> dict[str, list]:
    return {
        "train": make_part_images(14, 0, seed=1, size=SIZE),
        "test": make_part_images(6, 6, seed=2, size=SIZE),
    }


@pytest.fixture(scope="module")
def patchcore(parts: dict[str, list]) -> PatchCore:
    torch.set_num_threads(1)
    return PatchCore(input_size=SIZE, bank_size=400, calibration_fraction=0.25).fit(
        [p.image for p in parts["train"]]
    )


def test_sim_is_seeded_and_masks_mark_defects() -> None:
    a, b = make_part_image(5, size=64, defect="crack"), make_part_image(5, size=64, defect="crack")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.mask.sum() > 0
    assert not make_part_image(5, size=64).mask.any()
    assert not np.array_equal(make_part_image(6, size=64).image, make_part_image(7, size=64).image)


def test_defective_parts_score_higher(patchcore: PatchCore, parts: dict[str, list]) -> None:
    test = parts["test"]
    scores = patchcore.score([p.image for p in test])
    good = scores[[p.defect is None for p in test]]
    bad = scores[[p.defect is not None for p in test]]
    assert bad.mean() > good.mean()
    # nearly every defective part above every good one (AUROC ≥ 0.9)
    auroc = (bad[:, None] > good[None, :]).mean()
    assert auroc >= 0.9, (good, bad)


def test_heatmap_peaks_inside_the_defect(patchcore: PatchCore, parts: dict[str, list]) -> None:
    from scipy.ndimage import binary_dilation

    defective = [p for p in parts["test"] if p.defect is not None]
    heatmaps = patchcore.explain([p.image for p in defective])
    assert heatmaps.shape == (len(defective), SIZE, SIZE)
    hits = 0
    for part, heat in zip(defective, heatmaps, strict=True):
        near = binary_dilation(part.mask, iterations=SIZE // 16)  # one patch of tolerance
        hits += bool(near[np.unravel_index(np.argmax(heat), heat.shape)])
    assert hits >= len(defective) - 1


def test_threshold_comes_from_held_out_good_images(parts: dict[str, list]) -> None:
    good = parts["train"][:8]
    frame = pd.DataFrame({"image": [p.image for p in good], "label": ["good"] * 6 + [None] * 2})
    model = PatchCore(
        input_size=64, bank_size=100, calibration_fraction=0.25, backbone="lite0", stages=[2, 3]
    )
    model.fit(frame)
    # unlabelled images count as good: 6 in the bank, 2 held out for the threshold
    assert model.n_train_images_ == 6 and model.calibration_scores_ is not None
    assert len(model.calibration_scores_) == 2
    # policy (a): two good images cannot bound 1 % false alarms, so the threshold is their maximum
    assert model.operating_["policy"] == "good-only" and not model.operating_["target_met"]
    assert model.threshold_ == pytest.approx(float(np.max(model.calibration_scores_)))


def test_labelled_defects_set_a_miss_rate_threshold_and_are_left_out(parts: dict[str, list]) -> None:
    good = parts["train"][:8]
    bad = [p for p in parts["test"] if p.defect is not None]
    frame = pd.DataFrame(
        {"image": [p.image for p in good + bad], "label": ["good"] * len(good) + ["scratch"] * len(bad)}
    )
    model = PatchCore(
        input_size=64, bank_size=100, calibration_fraction=0.25, backbone="lite0", stages=[2, 3]
    )
    model.fit(frame)
    assert model.n_train_images_ == 6  # defects never enter the bank
    op = model.operating_
    assert op["policy"] == "miss-rate" and op["n_defects"] == len(bad) >= 5
    assert op["miss_rate_calibration"] <= model.target_miss
    defect_scores = model.calibration_defect_scores_
    assert defect_scores is not None and (defect_scores > model.threshold_).all()
    assert [pt["threshold"] for pt in op["curve"]] == sorted(pt["threshold"] for pt in op["curve"])
    # evaluating on the training images leaves out those that calibrated the threshold (2 good +
    # the defects) and the 6 in the memory bank; only the unseen ones are scored
    unseen = [p for p in parts["test"] if p.defect is None]
    both = pd.concat(
        [frame, pd.DataFrame({"image": [p.image for p in unseen], "label": ["good"] * len(unseen)})],
        ignore_index=True,
    )
    metrics = model.evaluate(both)
    assert metrics["calibration_images_left_out"] == 2 + len(bad)
    assert metrics["training_images_left_out"] == 6
    assert metrics["n"] == len(unseen) > 0
    with pytest.raises(InputValidationError, match="trained or calibrated"):
        model.evaluate(frame)  # nothing unseen: said so, not a flattering figure


def test_image_files_are_read_when_needed_and_train_the_same_model(
    parts: dict[str, list], tmp_path: Path
) -> None:
    from PIL import Image

    from axhub.ml.vision.base import images_of
    from axhub.ml.vision.images import LazyImages

    good = parts["train"][:8]
    bad = [p for p in parts["test"] if p.defect is not None]
    paths = []
    for i, part in enumerate(good + bad):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(part.image).save(paths[-1])
    labels = ["good"] * len(good) + ["scratch"] * len(bad)
    files = pd.DataFrame({"path": paths, "label": labels})
    lazy = images_of(files, lazy=True)
    assert isinstance(lazy, LazyImages) and all(f.sha256 is None for f in lazy.files)  # nothing read yet
    settings = {"input_size": 64, "bank_size": 100, "calibration_fraction": 0.25, "backbone": "lite0"}
    from_files = PatchCore(**settings, stages=[2, 3]).fit(files)
    from_arrays = PatchCore(**settings, stages=[2, 3]).fit(
        pd.DataFrame({"image": [p.image for p in good + bad], "label": labels})
    )
    np.testing.assert_array_equal(from_files.bank, from_arrays.bank)
    assert from_files.threshold_ == from_arrays.threshold_
    assert from_files.training_hashes_ == from_arrays.training_hashes_
    assert from_files.calibration_hashes_ == from_arrays.calibration_hashes_
    with pytest.raises(InputValidationError, match="trained or calibrated"):
        from_files.evaluate(files)  # the files are recognised as the model's own images
    # a broken file is named before any training starts, not minutes into it
    (tmp_path / "broken.png").write_bytes(b"not an image")
    broken = pd.concat([files, pd.DataFrame({"path": [tmp_path / "broken.png"], "label": ["good"]})])
    calls: list[str] = []
    with pytest.raises(InputValidationError, match=r"broken\.png"):
        PatchCore(**settings, stages=[2, 3]).fit(broken, progress=lambda step, i, n: calls.append(step))
    assert set(calls) <= {"reading images"}


def test_save_load_round_trip_and_onnx_parity(
    patchcore: PatchCore, parts: dict[str, list], tmp_path: Path
) -> None:
    images = [p.image for p in parts["test"][4:8]]
    patchcore.save(tmp_path / "b")
    loaded = Estimator.load(tmp_path / "b")
    assert isinstance(loaded, PatchCore)
    assert loaded.threshold_ == patchcore.threshold_
    np.testing.assert_allclose(loaded.score(images), patchcore.score(images), rtol=1e-5)
    result = BundleRunner(tmp_path / "b").run(graph_input(images))
    np.testing.assert_allclose(result["score"], patchcore.score(images), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(result["heatmap"], patchcore.explain(images), rtol=1e-3, atol=1e-2)
    assert list(result["is_anomaly"]) == list(patchcore.predict(images))


def test_grayscale_colour_and_other_sizes(patchcore: PatchCore, tmp_path: Path) -> None:
    from axhub.ml.vision.onnx_export import image_input, ort_session

    gray = make_part_image(99, size=SIZE, defect="hole").image
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_allclose(patchcore.score([gray]), patchcore.score([rgb]), rtol=1e-5)
    colour = make_part_image(98, size=130, channels=3).image  # another size, colour
    heat = patchcore.explain([colour])
    assert heat.shape == (1, 130, 130)
    session = ort_session(patchcore.export_onnx(tmp_path / "m.onnx"))
    for img in (gray, colour):
        score, heatmap = session.run(None, {"image": image_input(img)})  # type: ignore[attr-defined]
        assert heatmap.shape[1:] == img.shape[:2]
        np.testing.assert_allclose(score, patchcore.score([img]), rtol=1e-4, atol=1e-3)


def test_bad_input_is_refused_clearly(patchcore: PatchCore) -> None:
    from axhub.core.errors import InputValidationError

    with pytest.raises(InputValidationError, match="image"):
        patchcore.score(pd.DataFrame({"picture": [1]}))
    with pytest.raises(InputValidationError, match="NaN"):
        patchcore.score([np.full((32, 32), np.nan, dtype=np.float32)])


def test_coreset_covers_the_points() -> None:
    gen = torch.Generator().manual_seed(0)
    clusters = torch.cat([torch.randn(200, 8, generator=gen) * 0.05 + c for c in (0.0, 5.0, -5.0)])
    chosen = greedy_coreset(clusters, 3, projection=0, seed=1)
    centres = sorted(round(float(clusters[i].mean())) for i in chosen)
    assert centres == [-5, 0, 5]  # k-centre picks one point from each cluster


def test_backbone_loads_with_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import torch.hub
    import torch.utils.model_zoo

    from axhub.ml.vision.backbone import LiteFeatures

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download path was taken")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.utils.model_zoo, "load_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    feats = LiteFeatures(64, [3, 5])
    out = feats(torch.full((1, 1, 64, 64), 100.0))
    assert [o.shape[1] for o in out] == [40, 112]
    # pretrained, not random: the stem's batch-norm statistics are the trained ones
    assert not torch.allclose(feats.stem[1].running_var, torch.ones_like(feats.stem[1].running_var))


def test_classifier_learns_and_calibrates(tmp_path: Path) -> None:
    data = DefectClassifier.example_data(seed=3)
    model = DefectClassifier(input_size=64, max_iter=100, validation_fraction=0.25).fit(data.train)
    proba = model.predict_proba(data.test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert model.calibration_["temperature"] > 0
    assert model.evaluate(data.test)["accuracy"] >= 5 / 6
    model.save(tmp_path / "c")
    result = BundleRunner(tmp_path / "c").run(graph_input(data.test))
    np.testing.assert_allclose(result["probabilities"], proba, atol=1e-4)
    assert list(result["label"]) == list(model.predict(data.test))


def test_int8_quantisation_and_decision(patchcore: PatchCore, parts: dict[str, list], tmp_path: Path) -> None:
    from axhub.ml.vision.onnx_export import image_input, ort_session
    from axhub.ml.vision.quantize import int8_decision, quantize_int8

    fp32 = patchcore.export_onnx(tmp_path / "fp32.onnx")
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", [p.image for p in parts["train"][:4]])
    test = parts["test"]
    y = np.array([p.defect is not None for p in test])
    scores = []
    for path in (fp32, int8):
        session = ort_session(path)
        scores.append(np.array([session.run(["score"], {"image": image_input(p.image)})[0][0] for p in test]))  # type: ignore[attr-defined]
    decision = int8_decision(scores[0], scores[1], y)
    assert decision["basis"] == "validation AUROC"
    assert decision["keep"] == (decision["auroc_fp32"] - decision["auroc_int8"] <= 0.005)
    # scores in reverse order (good and defective swapped) are refused
    assert not int8_decision(scores[0], scores[0][::-1].copy(), y)["keep"]


def test_top_k_image_score_is_the_mean_of_the_highest_patches(parts: dict[str, list], tmp_path: Path) -> None:
    """score_top_k > 1: the image score is the mean of the k highest patch scores (at most the
    maximum), the same in Python, after a save/load and through ONNX."""
    torch.set_num_threads(1)
    model = PatchCore(
        input_size=64,
        bank_size=200,
        backbone="lite0",
        stages=[2, 3],
        score_top_k=5,
        calibration_fraction=0.25,
    ).fit([p.image for p in parts["train"]])
    images = [p.image for p in parts["test"]]
    maps = np.stack([m.ravel() for m in model.patch_score_maps(images)])
    expected = np.sort(maps, axis=1)[:, -5:].mean(axis=1)
    scores = model.score(images)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert (scores < maps.max(axis=1)).any() and (scores <= maps.max(axis=1) + 1e-6).all()
    model.save(tmp_path / "k")
    loaded = Estimator.load(tmp_path / "k")
    assert isinstance(loaded, PatchCore) and loaded.score_top_k == 5
    out = BundleRunner(tmp_path / "k").run(graph_input(images))
    np.testing.assert_allclose(out["score"], scores, rtol=1e-4, atol=1e-3)


def test_patch_pool_sets_the_local_neighbourhood_of_a_patch(parts: dict[str, list], tmp_path: Path) -> None:
    """patch_pool = 1 keeps each patch's own features, 3 (the default) averages its 3×3
    neighbourhood; even sizes are refused; the setting survives save/load and ONNX."""
    from axhub.ml.vision.backbone import to_tensor
    from axhub.ml.vision.patchcore import PatchEmbedding, fuse_maps

    torch.set_num_threads(1)
    x = to_tensor([parts["train"][0].image], 64)
    emb1 = PatchEmbedding(64, [2, 3], "lite0", 0, pool=1).eval()
    emb3 = PatchEmbedding(64, [2, 3], "lite0", 0, pool=3).eval()
    with torch.inference_mode():
        raw = emb1.features(x)[0]  # stage 2, (1, 24, 16, 16)
        f1, f3 = emb1(x), emb3(x)
    torch.testing.assert_close(f1[:, :24], raw)
    torch.testing.assert_close(f3[:, :24, 5, 5], raw[:, :, 4:7, 4:7].mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(f1, f3)
    with pytest.raises(ValueError, match="odd"):
        fuse_maps([raw], [4], 0, pool=2)
    model = PatchCore(
        input_size=64, bank_size=200, backbone="lite0", stages=[2, 3], patch_pool=1, calibration_fraction=0.25
    ).fit([p.image for p in parts["train"]])
    images = [p.image for p in parts["test"]]
    scores = model.score(images)
    assert "1x1 average" in model.preprocessing()["in_graph"]
    model.save(tmp_path / "p1")
    loaded = Estimator.load(tmp_path / "p1")
    assert isinstance(loaded, PatchCore) and loaded.patch_pool == 1
    np.testing.assert_allclose(loaded.score(images), scores, rtol=1e-5)
    out = BundleRunner(tmp_path / "p1").run(graph_input(images))
    np.testing.assert_allclose(out["score"], scores, rtol=1e-4, atol=1e-3)

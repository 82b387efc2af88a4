"""PatchCore's faster scoring path: the reordered distance, the pruned search and the score-only
ONNX graph give the scores of the exact search (within float rounding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from axhub.ml.base import Estimator  # noqa: E402
from axhub.ml.vision.base import graph_input  # noqa: E402
from axhub.ml.vision.onnx_export import image_input, ort_session  # noqa: E402
from axhub.ml.vision.patchcore import PatchCore, nearest_distance, pruned_top_k  # noqa: E402
from axhub.registry.bundle import BundleRunner  # noqa: E402
from axhub.sim.images import make_part_images  # noqa: E402

PARAMS = {"input_size": 64, "bank_size": 200, "backbone": "lite0", "stages": [2, 3], "score_margin": 0}


@pytest.fixture(scope="module")
def parts() -> dict[str, list]:
    return {
        "train": make_part_images(12, 0, seed=3, size=96),
        "test": make_part_images(5, 5, seed=4, size=96),
    }


def test_nearest_distance_is_the_brute_force_minimum() -> None:
    gen = torch.Generator().manual_seed(0)
    flat, bank = torch.randn(2, 300, 24, generator=gen), torch.randn(150, 24, generator=gen)
    got = nearest_distance(flat, bank.t().contiguous(), (bank**2).sum(1)[None, None])
    want = torch.cdist(flat, bank[None].expand(2, -1, -1)).min(dim=2).values
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_pruned_search_is_exact_with_a_full_candidate_set_and_bounded_otherwise() -> None:
    gen = torch.Generator().manual_seed(1)
    flat, bank = torch.randn(3, 400, 16, generator=gen), torch.randn(120, 16, generator=gen)
    bt, bsq = bank.t().contiguous(), (bank**2).sum(1)[None, None]
    exact = nearest_distance(flat, bt, bsq).topk(10, dim=1).values.mean(1)
    torch.testing.assert_close(pruned_top_k(flat, bt, bsq, 20, 400, 10), exact)
    # With fewer candidates the result can only miss patches, never overstate one.
    assert (pruned_top_k(flat, bt, bsq, 20, 12, 10) <= exact + 1e-5).all()


def test_pruned_score_only_model_against_the_exact_one(parts: dict[str, list], tmp_path: Path) -> None:
    """Same bank (same seed), pruned vs exact search: the pruned score never exceeds the exact one
    and equals it where a defect stands out; Python and the score-only bundle (no heatmap output)
    agree after save/load; the heatmap is the exact one either way."""
    torch.set_num_threads(1)
    train, images = [p.image for p in parts["train"]], [p.image for p in parts["test"]]
    y = np.array([p.label != "good" for p in parts["test"]])
    exact = PatchCore(score_top_k=5, **PARAMS).fit(train)
    pruned = PatchCore(
        score_top_k=5, prune_coarse=100, prune_candidates=64, onnx_heatmap=False, **PARAMS
    ).fit(train)
    np.testing.assert_array_equal(pruned.bank, exact.bank)
    assert pruned._graph().prune_coarse == 100
    s_pruned, s_exact = pruned.score(images), exact.score(images)
    assert (s_pruned <= s_exact * (1 + 1e-5)).all()
    np.testing.assert_allclose(s_pruned[y], s_exact[y], rtol=1e-5)
    np.testing.assert_allclose(pruned.explain(images), exact.explain(images), rtol=1e-5, atol=1e-5)
    assert "pruned search" in pruned.preprocessing()["in_graph"]

    pruned.save(tmp_path / "fast")
    loaded = Estimator.load(tmp_path / "fast")
    assert isinstance(loaded, PatchCore) and loaded.prune_coarse == 100 and not loaded.onnx_heatmap
    out = BundleRunner(tmp_path / "fast").run(graph_input(images))
    assert set(out) == {"score", "is_anomaly"}
    np.testing.assert_allclose(out["score"], s_pruned, rtol=1e-4, atol=1e-4)

    exact.save(tmp_path / "full")
    full = BundleRunner(tmp_path / "full").run(graph_input(images))
    assert full["heatmap"].shape == (len(images), 96, 96)
    np.testing.assert_allclose(full["score"], s_exact, rtol=1e-4, atol=1e-4)


def test_pruned_search_with_a_margin_scores_the_inner_patches(parts: dict[str, list], tmp_path: Path) -> None:
    """With a margin the pruned search runs over the inner patches only: with every inner patch
    a candidate it gives the exact score (the margin's inner-mean fill never sets the maximum),
    with fewer it never exceeds it, and the score-only ONNX graph gives the same numbers. A
    coarse cover as large as the bank saves nothing, so the exact search is used then."""
    torch.set_num_threads(1)
    train = [p.image for p in parts["train"]]
    images = [p.image for p in parts["test"]]
    model = PatchCore(**{**PARAMS, "score_margin": 2}).fit(train)
    exact = model.score(images)
    model.use_pruned_search(50, candidates=10_000)
    assert model._graph().prune_coarse == 50 and model._graph().margin == 2
    np.testing.assert_allclose(model.score(images), exact, rtol=1e-5)
    model.use_pruned_search(50, candidates=3)
    narrow = model.score(images)
    assert (narrow <= exact * (1 + 1e-5)).all()
    model.onnx_heatmap = False
    session = ort_session(model.export_onnx(tmp_path / "fast.onnx"), threads=1)
    onnx_scores = np.concatenate([session.run(["score"], {"image": image_input(i)})[0] for i in images])
    np.testing.assert_allclose(onnx_scores, narrow, rtol=1e-4, atol=1e-4)
    model.use_pruned_search(0)
    np.testing.assert_allclose(model.score(images), exact, rtol=1e-5)
    # The heatmap's margin is extended from the inner patches, in the bundle as in Python.
    model.onnx_heatmap = True
    model.save(tmp_path / "margin")
    out = BundleRunner(tmp_path / "margin").run(graph_input(images))
    np.testing.assert_allclose(out["heatmap"], model.explain(images), rtol=1e-3, atol=1e-2)
    big = PatchCore(**PARAMS, prune_coarse=500).fit(train)
    assert big._graph().prune_coarse == 0

"""The supervised fine-tuned model (issue 14): chosen when enough labelled defects exist, learns
beyond its linear-probe start, calibrated on a held-out split, runs the same through ONNX; the
CLI trains it from class folders. Tiny synthetic parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from axhub.ml.base import Estimator  # noqa: E402
from axhub.ml.vision.base import graph_input  # noqa: E402
from axhub.ml.vision.classifier import DefectClassifier  # noqa: E402
from axhub.ml.vision.finetune import MIN_IMAGES_PER_CLASS, FineTunedClassifier, supervised_model_for  # noqa: E402
from axhub.registry.bundle import BundleRunner  # noqa: E402
from axhub.sim.images import make_part_images  # noqa: E402


def _frame(n_good: int, n_bad: int, seed: int) -> pd.DataFrame:
    parts = make_part_images(n_good, n_bad, seed=seed, size=64)
    return pd.DataFrame(
        {
            "image": [p.image for p in parts],
            "label": ["good" if p.defect is None else "defect" for p in parts],
        }
    )


def test_fine_tuned_only_when_every_class_has_enough_images() -> None:
    few = ["good"] * 500 + ["crack"] * (MIN_IMAGES_PER_CLASS - 1)
    enough = ["good"] * 500 + ["crack"] * MIN_IMAGES_PER_CLASS
    assert type(supervised_model_for(few, seed=1)) is DefectClassifier
    chosen = supervised_model_for(enough, seed=1, input_size=64)
    assert isinstance(chosen, FineTunedClassifier) and chosen.input_size == 64 and chosen.seed == 1


def test_fine_tuning_moves_the_blocks_is_calibrated_and_matches_onnx(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    train, test = _frame(16, 16, seed=1), _frame(6, 6, seed=2)
    model = FineTunedClassifier(input_size=64, epochs=3, batch_size=8, seed=0).fit(train)
    from axhub.ml.vision.finetune import TopBlocks

    before = TopBlocks("lite0", 64, 6, 2).blocks.state_dict()  # the pretrained start
    after = model._graph().top.blocks.state_dict()  # type: ignore[union-attr]
    moved = [k for k in before if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k])]
    assert moved, "fine-tuning must change the pretrained blocks, not only the head"
    assert len(model.history_) == 3
    cal = model.calibration_
    assert (
        cal["n_validation"] >= 4 and cal["temperature"] > 0 and cal["nll_after"] <= cal["nll_before"] + 1e-6
    )
    metrics = model.evaluate(test)
    assert metrics["auroc"] >= 0.8
    proba = model.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    bundle = model.save(tmp_path / "ft")
    out = BundleRunner(bundle).run(graph_input(test))
    np.testing.assert_allclose(out["score"], model.score(test), atol=1e-4)
    assert list(out["label"]) == list(model.predict(test))
    again = Estimator.load(bundle)
    assert isinstance(again, FineTunedClassifier)
    np.testing.assert_allclose(again.score(test), model.score(test), atol=1e-6)


def test_cli_trains_the_supervised_model_from_class_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app

    torch.set_num_threads(1)
    monkeypatch.setenv("AXHUB_HOME", str(tmp_path / "home"))
    parts = make_part_images(8, 8, seed=3, size=64)
    for i, p in enumerate(parts):
        path = tmp_path / "parts" / ("ok" if p.defect is None else "crack") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(p.image).save(path)
    res = CliRunner().invoke(
        app,
        ["vision", "train", "--folder", str(tmp_path / "parts"), "--out", str(tmp_path / "b"),
         "--model", "finetuned", "--input-size", "64", "--no-register", "--threads", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "supervised model: finetuned" in res.output
    model = Estimator.load(tmp_path / "b")
    assert isinstance(model, FineTunedClassifier) and model.classes_ == ["crack", "ok"]


def test_vision_benchmarks_publish_like_the_others_and_only_to_out(tmp_path: Path) -> None:
    import json

    from axhub.bench._vision import finish
    from axhub.bench.report import BenchResult, _repo_root

    docs = _repo_root() / "docs" / "benchmarks.md"
    before = docs.read_bytes() if docs.is_file() else b""
    (tmp_path / "p.png").write_bytes(b"png")
    result = BenchResult(
        name="vision-probe-test", title="t", dataset="d", split="s",
        rows=[{"model": "m", "accuracy %": 99.0}], references=[], notes=["n"], plots=["img/p.png"], extra={},
    )  # fmt: skip
    path = finish(result, tmp_path, update_docs=False)
    assert path == tmp_path / "vision-probe-test.json"
    saved = json.loads(path.read_text())
    assert saved["figures"][0]["model"] == "m" and saved["plots"] == [str(tmp_path / "p.png")]
    assert (docs.read_bytes() if docs.is_file() else b"") == before
    assert not (_repo_root() / "bench-results" / "vision-probe-test.json").exists()


def test_temperature_is_fitted_from_errors_and_left_at_one_without_any() -> None:
    from axhub.ml.vision.classifier import fit_temperature

    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (400,), generator=gen)
    # Overconfident logits with 20 % errors: the fitted temperature must soften them (T > 1).
    noisy = torch.where(torch.rand(400, generator=gen) < 0.2, 1 - y, y)
    logits = torch.nn.functional.one_hot(noisy, 2).float() * 8.0
    assert fit_temperature(logits, y) > 2.0
    # No held-out error: the NLL only falls as T -> 0, which says nothing about calibration.
    perfect = torch.nn.functional.one_hot(y, 2).float() * 3.0
    assert fit_temperature(perfect, y) == 1.0


def test_view_averaging_gives_the_same_answer_in_every_orientation() -> None:
    """The 8-view average is invariant to flipping or turning the map (the views are closed under
    those), while the plain top is not; augmentation only ever yields one of the 8 views."""
    from axhub.ml.vision.finetune import TopBlocks, _augment, dihedral_views

    torch.manual_seed(0)
    top = TopBlocks("lite0", 64, 6, 2).eval()
    torch.nn.init.normal_(top.head.weight)
    m = torch.randn(3, 192, 4, 4)
    turned = torch.rot90(m, 1, dims=(2, 3))
    with torch.no_grad():
        assert not torch.allclose(top(m), top(turned), atol=1e-4)
        np.testing.assert_allclose(top.averaged(m).numpy(), top.averaged(turned).numpy(), atol=1e-4)
        np.testing.assert_allclose(top.averaged(m).numpy(), top.averaged(m.flip(2)).numpy(), atol=1e-4)
    assert len(dihedral_views(m)) == 8 and len(dihedral_views(torch.randn(1, 4, 3, 5))) == 4
    out = _augment(m, torch.Generator().manual_seed(1))
    for i in range(len(m)):
        assert any(torch.equal(out[i], v[i]) for v in dihedral_views(m))

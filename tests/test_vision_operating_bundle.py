"""An operating point chosen after training is carried by the bundle (issue 14): the ONNX runner
and the Python estimator loaded from the same bundle give the same verdicts at the chosen
threshold, over the API as well as directly. Tiny synthetic parts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from axhub.ml.base import Estimator  # noqa: E402
from axhub.ml.vision.base import graph_input  # noqa: E402
from axhub.ml.vision.patchcore import PatchCore  # noqa: E402
from axhub.registry.bundle import BundleError, BundleRunner, read_bundle, verify_bundle  # noqa: E402
from axhub.registry.operating_point import with_operating_point  # noqa: E402
from axhub.sim.images import make_part_images  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("opbundle")
    good = make_part_images(10, 0, seed=7, size=64)
    bad = make_part_images(0, 6, seed=8, size=64)
    frame = pd.DataFrame({"image": [p.image for p in good + bad], "label": ["ok"] * 10 + ["dent"] * 6})
    model = PatchCore(input_size=64, bank_size=100, backbone="lite0", stages=[2, 3], calibration_fraction=0.3)
    bundle = model.fit(frame).save(tmp / "bundle")
    new = make_part_images(6, 6, seed=9, size=64)
    return bundle, [p.image for p in new]


def _verdicts(bundle: Path, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    runner = BundleRunner(bundle)
    out = runner.run(graph_input(images))
    python = Estimator.load(bundle)
    return np.asarray(out["is_anomaly"]), np.asarray(python.predict(images)), np.asarray(out["score"])


def test_the_chosen_threshold_travels_in_the_bundle_and_both_runners_agree(
    trained: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    bundle, images = trained
    onnx_before, python_before, scores = _verdicts(bundle, images)
    assert (onnx_before == python_before).all()
    # A threshold that flips verdicts: the median score of the new parts.
    pick = float(np.median(scores))
    moved = with_operating_point(bundle, tmp_path / "moved", {"policy": "chosen", "threshold": pick})
    assert verify_bundle(moved) == []
    onnx_after, python_after, scores_after = _verdicts(moved, images)
    np.testing.assert_allclose(scores_after, scores, rtol=1e-6)  # the graph is untouched
    assert (onnx_after == python_after).all()
    assert (onnx_after == (scores > pick)).all()
    assert (onnx_after != onnx_before).any(), "the chosen point should change some verdicts"
    opened = read_bundle(moved)
    assert opened.preprocessing["threshold"] == pytest.approx(pick)
    assert opened.preprocessing["operating_point"]["policy"] == "chosen"
    assert opened.manifest["operating_point"]["threshold"] == pytest.approx(pick)
    # the estimator's own choice is the new one too (re-export keeps it)
    assert Estimator.load(moved).threshold_ == pytest.approx(pick)  # type: ignore[attr-defined]


def test_a_signed_bundle_is_not_reissued_without_the_key(
    trained: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    bundle, _ = trained
    key = b"hub-secret"
    point = {"policy": "chosen", "threshold": 1.0}
    signed = with_operating_point(bundle, tmp_path / "signed", point, key=key)
    assert verify_bundle(signed, key=key, require_signature=True) == []
    with pytest.raises(BundleError, match="signed"):
        with_operating_point(signed, tmp_path / "unsigned", {"policy": "chosen", "threshold": 2.0})
    again = with_operating_point(signed, tmp_path / "resigned", {"threshold": 2.0}, key=key)
    assert verify_bundle(again, key=key, require_signature=True) == []


def test_choice_over_the_api_reaches_the_downloaded_bundle(
    trained: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    from _api_helpers import make_hub
    from axhub.registry.store import ModelRegistry
    from axhub.store.blobs import BlobStore
    from axhub.store.platform import ensure_org
    from axhub.store.scoped import OrgScope

    bundle, images = trained
    hub = make_hub(tmp_path / "home", f"sqlite:///{tmp_path / 'hub.db'}")
    blobs = BlobStore(hub.settings.blob_root)
    with hub.db.session() as session:
        org = ensure_org(session, "acme", "acme")
        version_id = ModelRegistry(OrgScope(session, org.id), blobs).register(bundle).id
    engineer, viewer = hub.client("a_engineer"), hub.client("a_viewer")
    trained_sha = viewer.get(f"/api/v1/models/{version_id}").json()["bundle_sha256"]
    points = viewer.get(f"/api/v1/models/{version_id}/operating-points").json()
    curve = points["curve"]
    # The self-check that chose the margin travels with the model for the inspection page.
    check = points["self_check"]
    assert set(check) == {"synthetic_auroc", "synthetic_auroc_std", "synthetic_recall_at_max_good", "weak"}
    assert 0.0 <= check["synthetic_auroc"] <= 1.0 and check["synthetic_auroc_std"] >= 0.0
    assert check["weak"] == (check["synthetic_auroc"] < 0.8)
    pick = curve[len(curve) // 2]["threshold"]
    chosen = engineer.post(f"/api/v1/models/{version_id}/operating-point", json={"threshold": pick})
    assert chosen.status_code == 200, chosen.text
    got = viewer.get(f"/api/v1/models/{version_id}").json()
    assert got["bundle_sha256"] != trained_sha
    assert got["params"]["trained_bundle_sha256"] == trained_sha
    assert blobs.path(trained_sha) is not None and blobs.path(trained_sha).is_file()  # nothing lost
    download = viewer.get(f"/api/v1/models/{version_id}/bundle")
    assert download.status_code == 200
    unpacked = tmp_path / "downloaded"
    zipfile.ZipFile(io.BytesIO(download.content)).extractall(unpacked)
    onnx, python, scores = _verdicts(unpacked, images)
    assert BundleRunner(unpacked).threshold == pytest.approx(pick)
    assert (onnx == python).all() and (onnx == (scores > pick)).all()
    # the curve is still there for the next choice, and a second choice replaces the first
    again = engineer.post(f"/api/v1/models/{version_id}/operating-point", json={"target_false_alarm": 0.2})
    assert again.status_code == 200, again.text
    latest = viewer.get(f"/api/v1/models/{version_id}").json()
    assert latest["params"]["trained_bundle_sha256"] == trained_sha
    assert latest["params"]["operating_point"]["policy"] == "good-only"


def test_cli_reissues_a_local_bundle_at_a_chosen_point(
    trained: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app

    bundle, images = trained
    runner = CliRunner()
    both = runner.invoke(
        app, ["vision", "operating-point", str(bundle), "--out", str(tmp_path / "x"), "--threshold", "1",
              "--target-miss", "0.1"],
    )  # fmt: skip
    assert both.exit_code != 0 and "exactly one" in both.output
    res = runner.invoke(
        app, ["vision", "operating-point", str(bundle), "--out", str(tmp_path / "b"), "--target-miss", "0.0"]
    )
    assert res.exit_code == 0, res.output
    assert "misses 0.0% of calibration defects" in res.output
    onnx, python, _ = _verdicts(tmp_path / "b", images)
    assert (onnx == python).all()
    assert read_bundle(tmp_path / "b").preprocessing["operating_point"]["policy"] == "miss-rate"

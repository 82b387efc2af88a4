"""Bundles: round trip, tamper detection, signatures, and running without the training stack."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axhub.ml.anomaly import MSPC
from axhub.ml.anomaly.base import synthetic_sensor_data
from axhub.ml.base import Estimator
from axhub.registry.bundle import (
    BundleError,
    BundleRunner,
    read_bundle,
    rolling,
    sliding_windows,
    verify_bundle,
    write_bundle,
)


@pytest.fixture(scope="module")
def fitted() -> tuple[MSPC, pd.DataFrame]:
    data = synthetic_sensor_data(0)
    return MSPC(window=4, smooth=3).fit(data.train), data.test


def test_round_trip_keeps_manifest_preprocessing_and_scores(
    fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path
) -> None:
    model, test = fitted
    path = model.save(tmp_path / "b", metrics={"f1": 0.5})
    bundle = read_bundle(path)
    assert bundle.manifest["family"] == "anomaly" and bundle.manifest["name"] == "mspc"
    assert bundle.manifest["metrics"] == {"f1": 0.5}
    assert bundle.manifest["params"]["window"] == 4
    assert set(bundle.manifest["files"]) >= {"model.onnx", "preprocessing.json", "state/state.json"}
    assert bundle.preprocessing["columns"] == model.feature_names_in_
    assert bundle.preprocessing["threshold"] == pytest.approx(model.threshold_)
    loaded = Estimator.load(path)
    np.testing.assert_array_equal(loaded.score(test), model.score(test))
    runner = BundleRunner(path)
    np.testing.assert_allclose(runner.run(test)["score"], model.score(test), rtol=1e-4, atol=1e-5)


def test_zip_bundle_reads_and_runs(fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path) -> None:
    model, test = fitted
    zipped = model.save(tmp_path / "b", make_zip=True)
    assert zipped.suffix == ".zip" and zipfile.is_zipfile(zipped)
    out = BundleRunner(zipped).run({c: test[c].to_numpy() for c in test.columns})
    assert out["score"].shape == (len(test),) and out["is_anomaly"].dtype == bool


@pytest.mark.parametrize("target", ["model.onnx", "preprocessing.json", "state/state.json"])
def test_tampered_file_is_refused(fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path, target: str) -> None:
    model, _ = fitted
    path = model.save(tmp_path / "b")
    victim = path / target
    victim.write_bytes(victim.read_bytes().replace(b"0", b"1", 1))
    with pytest.raises(BundleError, match="sha256"):
        read_bundle(path)
    with pytest.raises(BundleError):
        BundleRunner(path)
    with pytest.raises(BundleError):
        Estimator.load(path)


def test_added_or_removed_files_are_refused(fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path) -> None:
    model, _ = fitted
    path = model.save(tmp_path / "b")
    (path / "state" / "extra.npy").write_bytes(b"x")
    assert any("not listed" in p for p in verify_bundle(path))
    (path / "state" / "extra.npy").unlink()
    (path / "preprocessing.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        read_bundle(path)


def test_threshold_edit_with_rehash_still_fails_signature(
    fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path
) -> None:
    """Someone who edits a file and fixes the hash cannot fake the hub's HMAC signature."""
    model, _ = fitted
    key = b"hub-secret"
    path = model.save(tmp_path / "b", key=key)
    assert read_bundle(path, key=key, require_signature=True).manifest["signature"]
    prep = json.loads((path / "preprocessing.json").read_text())
    prep["threshold"] = 1e9
    (path / "preprocessing.json").write_text(json.dumps(prep))
    manifest = json.loads((path / "manifest.json").read_text())
    import hashlib

    manifest["files"]["preprocessing.json"] = hashlib.sha256(
        (path / "preprocessing.json").read_bytes()
    ).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert read_bundle(path)  # hashes are consistent again ...
    with pytest.raises(BundleError, match="signature"):
        read_bundle(path, key=key)  # ... but the signature is not
    with pytest.raises(BundleError, match="signature"):
        read_bundle(path, key=b"other", require_signature=True)


def test_unsigned_bundle_refused_when_signature_required(
    fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path
) -> None:
    model, _ = fitted
    path = model.save(tmp_path / "b")
    with pytest.raises(BundleError, match="not signed"):
        read_bundle(path, key=b"k", require_signature=True)


def test_zip_with_path_traversal_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../escape.txt", "x")
        archive.writestr("manifest.json", "{}")
    with pytest.raises(BundleError, match="unsafe"):
        read_bundle(evil)
    assert not (tmp_path.parent / "escape.txt").exists()


def test_write_bundle_rejects_unsafe_names_and_needs_identity(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="unsafe"):
        write_bundle(
            tmp_path / "a",
            onnx_model=b"x",
            preprocessing={},
            manifest={"family": "f", "name": "n"},
            files={"../x": b""},
        )
    with pytest.raises(BundleError, match="family"):
        write_bundle(tmp_path / "b", onnx_model=b"x", preprocessing={}, manifest={"name": "n"})


def test_runner_checks_inputs(fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path) -> None:
    from axhub.core.errors import InputValidationError

    model, test = fitted
    runner = BundleRunner(model.save(tmp_path / "b"))
    with pytest.raises(InputValidationError, match="pressure"):
        runner.run(test.drop(columns="pressure"))
    broken = test.copy()
    broken.iloc[5, 1] = np.nan
    with pytest.raises(InputValidationError, match="row 5"):
        runner.run(broken)
    with pytest.raises(InputValidationError, match="window"):
        runner.run(test.iloc[:2])


def test_runner_runs_in_a_process_without_torch_sklearn_or_axhub_ml(
    fitted: tuple[MSPC, pd.DataFrame], tmp_path: Path
) -> None:
    model, test = fitted
    path = model.save(tmp_path / "b")
    np.save(tmp_path / "x.npy", test[model.feature_names_in_].to_numpy())
    expected = model.score(test)
    script = f"""
import json, sys
import numpy as np
from axhub.registry.bundle import BundleRunner
x = np.load({str(tmp_path / "x.npy")!r}, allow_pickle=False)
runner = BundleRunner({str(path)!r})
out = runner.run({{c: x[:, i] for i, c in enumerate(runner.columns)}})
np.save({str(tmp_path / "out.npy")!r}, out["score"])
banned = ("torch", "sklearn", "skl2onnx", "onnx", "pandas", "axhub.ml")
print(json.dumps([m for m in banned if m in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-4, atol=1e-5)


def test_numpy_helpers() -> None:
    x = np.arange(12, dtype=float).reshape(6, 2)
    windows = sliding_windows(x, 3)
    assert windows.shape == (4, 3, 2)
    np.testing.assert_array_equal(windows[-1], x[3:])
    values = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(rolling(values, 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(rolling(values, 3, "median"), [1.0, 2.0, 3.0, 5.0])

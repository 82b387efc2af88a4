"""Torch models on the GPU a job was given: placement, CPU fallback, and bundles that behave the
same whichever device trained them (the GPU half runs only where CUDA is visible)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch", reason="torch is not installed (the 'torch' extra)")

from axhub.bench.gpu import bundle_parity  # noqa: E402
from axhub.ml import device as devices  # noqa: E402
from axhub.ml.anomaly.autoencoder import ConvAE  # noqa: E402
from axhub.ml.anomaly.mspc import MSPC  # noqa: E402
from axhub.ml.rul.cnn import RulCNN  # noqa: E402
from axhub.ml.vision.patchcore import PatchCore  # noqa: E402
from axhub.store.models import OrganizationRow  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: the CPU/GPU comparison needs one")


def test_cpu_by_default_and_a_clear_fallback_when_no_gpu_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AXHUB_DEVICE", raising=False)
    assert devices.requested() == "cpu" and devices.current().type == "cpu"
    assert devices.fallback_reason() is None
    assert devices.for_resource_class("gpu") == "cuda" and devices.for_resource_class("cpu") == "cpu"
    with devices.use_device("gpu"):
        assert devices.requested() == "cuda"
        if HAS_CUDA:
            assert devices.current() == torch.device("cuda", 0)
        else:
            assert devices.current().type == "cpu"
            reason = devices.fallback_reason()
            assert reason is not None and "running on the CPU" in reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    if torch.version.cuda is not None and not HAS_CUDA:  # a CUDA build with no GPU given to us
        with devices.use_device("cuda"):
            assert "CUDA_VISIBLE_DEVICES is empty" in (devices.fallback_reason() or "")
    with pytest.raises(ValueError, match="unknown device"):
        devices.use_device("tpu").__enter__()


def test_placed_returns_modules_to_the_cpu() -> None:
    net = torch.nn.Linear(3, 2)
    with devices.use_device("auto"), devices.placed(net) as dev:
        assert next(net.parameters()).device.type == dev.type
    assert next(net.parameters()).device.type == "cpu"
    assert devices.inference_batch(16, torch.device("cpu")) == 16
    assert devices.inference_batch(16, torch.device("cuda", 0)) == devices.GPU_INFERENCE_BATCH


def _trained(cls: Any, device: str, **params: Any) -> tuple[Any, Any]:
    data = cls.example_data(seed=0)
    with devices.use_device(device):
        model = cls(**{**cls.example_params(), **params}).fit(data.train)
    return model, data.test


def test_bundle_parity_tells_same_from_different() -> None:
    # A fast sensor model: the comparison itself is what is tested here.
    a, test = _trained(MSPC, "cpu")
    b, _ = _trained(MSPC, "cpu")
    same = bundle_parity(a, b, test, "score")
    assert same["same_graph"] and same["max_abs_diff"] == 0.0 and same["same_decision"] == 1.0
    c, _ = _trained(MSPC, "cpu", window=5)
    other = bundle_parity(a, c, test, "score")
    assert not other["same_graph"] and other["max_abs_diff"] > 0


def test_a_gpu_job_without_a_gpu_trains_on_the_cpu_and_says_why(tmp_path: Path) -> None:
    from _api_helpers import make_hub  # the API stack (not on every GPU image)

    hub = make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", executor="local", workers=1)
    with hub.db.session() as s:
        for org in s.query(OrganizationRow).all():
            org.compute_class = "gpu"
    with hub.client("a_engineer") as c:
        ds = c.post(
            "/api/v1/datasets",
            json={"name": "pump", "spec": {"source": "example", "estimator": "anomaly/conv_ae"}},
        ).json()
        job = c.post(
            "/api/v1/jobs",
            json={
                "kind": "train",
                "estimator": "anomaly/conv_ae",
                "dataset_id": ds["id"],
                "params": ConvAE.example_params(),
                "resource_class": "gpu",
            },
        )
        assert job.status_code == 201, job.text
        deadline = time.monotonic() + 120
        while (done := c.get(f"/api/v1/jobs/{job.json()['id']}").json())["state"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
        assert done["state"] == "succeeded", done
        logs = [e["message"] for e in c.get(f"/api/v1/jobs/{done['id']}/logs").json()["items"]]
    expected = "computing on" if HAS_CUDA else "a GPU was asked for but"
    assert any(expected in m for m in logs), logs


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is visible: the benchmark runs instead of skipping")
def test_bench_gpu_skips_with_a_message_without_cuda(tmp_path: Path) -> None:
    from axhub.cli.main import app

    result = CliRunner().invoke(app, ["bench", "gpu", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "bench gpu skipped: no CUDA GPU" in result.output and not (tmp_path / "out" / "gpu.json").exists()


@needs_gpu
@pytest.mark.parametrize(
    ("cls", "output", "tolerance"),
    [(ConvAE, "score", 2e-2), (RulCNN, "prediction", 2e-2), (PatchCore, "score", 2e-2)],
)
def test_cpu_and_gpu_trained_bundles_behave_the_same(cls: Any, output: str, tolerance: float) -> None:
    cpu_model, test = _trained(cls, "cpu")
    gpu_model, _ = _trained(cls, "cuda")
    parity = bundle_parity(cpu_model, gpu_model, test, output)
    print(cls.__name__, parity)  # the figures, for the device run's log
    assert parity["same_graph"], "the exported ONNX graph must not depend on the training device"
    assert parity["max_rel_diff"] < tolerance and parity["corr"] > 0.99, parity
    if "same_decision" in parity:
        assert parity["same_decision"] >= 0.9, parity

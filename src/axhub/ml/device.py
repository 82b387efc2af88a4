"""Where the torch models compute: the CPU, or a CUDA GPU when the job asks for one.

A job in the ``gpu`` resource class runs its handler inside ``use_device("cuda")``; every torch
estimator asks :func:`current` where to put its network and batches. Nothing else changes hands:
estimators keep their hyper-parameters, bundles and exported ONNX graphs the same whichever
device trained them (networks go back to the CPU before ONNX export, in fp32).

* **Which GPU.** Always ``cuda:0`` *of the devices this process can see*. Ray gives a task with
  ``num_gpus=1`` its own GPU by setting ``CUDA_VISIBLE_DEVICES`` before the task starts, so
  ``cuda:0`` is that GPU; this module never changes the variable.
* **No GPU.** When a GPU is asked for but none is visible (a CPU-only torch, no driver, or
  ``CUDA_VISIBLE_DEVICES`` empty), the work runs on the CPU and :func:`fallback_reason` says why
  (the job log shows it); nothing fails.
* **Precision.** Frozen feature extractors may run under bf16 autocast (:func:`autocast`) where
  the benchmark showed results stay within tolerance; training and nearest-neighbour distances
  stay fp32 (a squared-distance expansion ``|x|²-2x·m+|m|²`` loses everything in bf16).
  ``AXHUB_AMP=0`` turns autocast off everywhere.
* **Batches.** Inference batch sizes grow on the GPU (:func:`inference_batch`) because they do not
  change results; training batch sizes are hyper-parameters (they change the model) and are kept.

torch is imported lazily so that importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# "cpu" or "cuda"; "auto" means CUDA when visible. The default comes from AXHUB_DEVICE (cpu).
_REQUESTED: ContextVar[str | None] = ContextVar("axhub_device", default=None)
# Images per inference batch on a GPU: enough to keep an H100/H200 busy with Lite0 at 224 px.
GPU_INFERENCE_BATCH = 256
_warned: set[str] = set()


def _normalise(requested: str) -> str:
    value = requested.strip().lower()
    if value in ("gpu", "cuda"):
        return "cuda"
    if value.startswith("cuda:"):  # an explicit index is ignored: see the module docstring
        return "cuda"
    if value in ("cpu", "auto"):
        return value
    raise ValueError(f"unknown device {requested!r}: use 'cpu', 'cuda' (or 'gpu') or 'auto'")


def requested() -> str:
    """What the caller asked for: the innermost :func:`use_device`, else ``AXHUB_DEVICE``."""
    value = _REQUESTED.get()
    return _normalise(value if value is not None else os.environ.get("AXHUB_DEVICE", "cpu"))


def for_resource_class(resource_class: str) -> str:
    """The device a job of this resource class asks for."""
    return "cuda" if resource_class == "gpu" else "cpu"


@contextlib.contextmanager
def use_device(device: str) -> Iterator[None]:
    """Run the block's torch work on ``device`` ('cpu', 'cuda'/'gpu' or 'auto')."""
    token = _REQUESTED.set(_normalise(device))
    try:
        yield
    finally:
        _REQUESTED.reset(token)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is an extra
        return False
    return bool(torch.cuda.is_available())


def fallback_reason() -> str | None:
    """Why a requested GPU is not used (None when it is, or when none was asked for)."""
    if requested() == "cpu" or cuda_available():
        return None
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if torch.version.cuda is None:
        why = f"this torch build ({torch.__version__}) has no CUDA support"
    elif visible is not None and visible.strip() in ("", "-1"):
        why = "CUDA_VISIBLE_DEVICES is empty (no GPU was given to this process)"
    else:
        why = "no CUDA device is visible (driver missing or GPU busy)"
    return f"a GPU was asked for but {why}: running on the CPU instead"


def current() -> torch.device:
    """The device torch work should use now (the CPU fallback is logged once per reason)."""
    import torch

    want = requested()
    if want != "cpu" and torch.cuda.is_available():
        # Deterministic cuBLAS needs a fixed workspace; set before the first cuBLAS call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        return torch.device("cuda", 0)
    reason = fallback_reason() if want == "cuda" else None
    if reason is not None and reason not in _warned:
        _warned.add(reason)
        log.warning(reason)
    return torch.device("cpu")


def describe(device: torch.device | None = None) -> str:
    """A line for logs and benchmark tables, e.g. 'NVIDIA H200 (cuda:0 of CUDA_VISIBLE_DEVICES=3)'."""
    import torch

    device = device or current()
    if device.type != "cuda":
        return f"CPU ({torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{name} (cuda:{device.index or 0}" + (f" of CUDA_VISIBLE_DEVICES={visible})" if visible else ")")


def amp_enabled(device: torch.device) -> bool:
    return device.type == "cuda" and os.environ.get("AXHUB_AMP", "1") != "0"


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a GPU (unless ``AXHUB_AMP=0``); nothing on the CPU."""
    import torch

    if amp_enabled(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_batch(batch_size: int, device: torch.device) -> int:
    """Batch size for inference: the estimator's own on the CPU, at least GPU_INFERENCE_BATCH on a GPU."""
    return max(int(batch_size), GPU_INFERENCE_BATCH) if device.type == "cuda" else int(batch_size)


@contextlib.contextmanager
def placed(module: Any) -> Iterator[torch.device]:
    """Move ``module`` to the current device for the block and back to the CPU after it, so that
    what the estimator keeps (state, ONNX export) is always on the CPU."""
    import torch

    device = current()
    if device.type == "cpu":
        yield device
        return
    # Moves happen outside inference mode even when the caller is inside it: parameters copied
    # there would become inference tensors, which ONNX export and training later refuse.
    with torch.inference_mode(False):
        module.to(device)
    try:
        yield device
    finally:
        with torch.inference_mode(False):
            module.to("cpu")


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms for a training loop. On a GPU a kernel without a deterministic
    version warns instead of failing (the run is then reproducible only up to float rounding)."""
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (for honest timings); nothing on the CPU."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)

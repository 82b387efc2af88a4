"""Shared plumbing of the vision benchmarks: where results go, plots, timing, ONNX latency.

Results (JSON and plots) go under ``--out`` or ``AXHUB_HOME/bench/<name>``; ``docs/benchmarks.md``,
``docs/img`` and ``bench-results/`` are touched only with ``--update-docs``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer


def output_dir(name: str, out: Path | None) -> Path:
    from axhub.core.settings import Settings

    path = out if out is not None else Settings().home / "bench" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def finish(result: Any, out_dir: Path, update_docs: bool) -> Path:
    """Print the table and write ``<out>/<name>.json``; with ``update_docs`` also the plots to
    ``docs/img``, the JSON to ``bench-results/`` and this benchmark's docs section. One code path
    with the sensor benchmarks (``_output.BenchIO.publish``)."""
    from axhub.bench._output import BenchIO

    return BenchIO(name=result.name, data=out_dir, out=out_dir, update_docs=update_docs).publish(result)


def dataset_root(data: Path | None, name: str, must_have: str) -> Path:
    from axhub.core.settings import Settings

    root = data if data is not None else Settings().datasets / name
    if not (root / must_have).is_dir():
        raise typer.BadParameter(
            f"{name} dataset not found at {root} (no {must_have}/); pass --data or set AXHUB_DATASETS"
        )
    return root


def load(paths: list[Path], what: str) -> list[np.ndarray]:
    from rich.progress import track

    from axhub.ml.vision.images import decode_image

    return [decode_image(p) for p in track(paths, description=f"loading {what}", transient=True)]


def latency_ms(onnx_path: Path, image: np.ndarray, runs: int = 30) -> float:
    """Median ms per image, onnxruntime, one thread, batch 1, the image at its own size."""
    from axhub.ml.vision.onnx_export import image_input, ort_session

    session: Any = ort_session(onnx_path, threads=1)
    feed = {"image": image_input(image)}
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)

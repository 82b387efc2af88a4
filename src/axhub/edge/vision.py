"""Visual inspection at the edge: score each new image dropped in a watched folder.

A camera (or its PC) writes image files into a folder; the agent scores every new file with the
deployed vision bundle (a "tensor" bundle: raw pixels in, ``score`` out, its operating point as
``threshold``), buffers the result durably and raises a local alert for a defect.

Exactly once across restarts: a file is named by ``name|size|mtime_ns`` (a camera reusing a
file name for a new part writes a new file) and that key is committed in the buffer in the same
transaction as the result (``Buffer.add_inspection``). A file still being written is left for a
later pass (it must be unchanged for ``settle_s``); a settled file that does not decode is
recorded as an unreadable result, not retried forever.

Decoding is a few lines of Pillow here rather than ``axhub.ml.vision.images``: the agent imports
no ``axhub.ml`` (its light-install rule), and the graph takes raw pixels. The pixel-depth rule
(16-bit camera images scaled to 8 bits, not clipped) is the hub's own, from ``core.pixels``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from axhub.core.pixels import to_uint8
from axhub.edge.buffer import Buffer
from axhub.edge.scoring import model_info
from axhub.registry.bundle import BundleRunner

log = logging.getLogger("axhub.edge.vision")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def is_vision_bundle(runner: BundleRunner) -> bool:
    """A bundle that takes images (no input columns) and can decide defects on its own."""
    return not runner.columns and runner.threshold is not None


def image_tensor(path: Path) -> np.ndarray:
    """An image file → the graph input float32 (1, C, H, W) in 0..255 (C = 1 grey or 3 colour)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()  # full decode now: a truncated file fails here, not inside the model
        arr = to_uint8(img).astype(np.float32)  # the hub's own rule: 16-bit images scaled, not clipped
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def sample_images(folder: Path, limit: int = 3) -> list[tuple[str, np.ndarray]]:
    """The newest readable images in the folder (name, graph input), newest first.

    Samples for a new vision bundle's health check: the camera's own images, so size and colour
    are what the bundle will get. Files that do not decode are passed over (a broken file says
    nothing about the bundle).
    """
    try:
        files = [
            (p.stat().st_mtime_ns, p)
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        ]
    except OSError:
        return []  # no folder (yet), or a file went away while listing: try again later
    samples: list[tuple[str, np.ndarray]] = []
    for _, path in sorted(files, key=lambda item: item[0], reverse=True):
        try:
            samples.append((path.name, image_tensor(path)))
        except (OSError, ValueError, SyntaxError):
            continue
        if len(samples) == limit:
            break
    return samples


def vision_health_problem(runner: BundleRunner, samples: list[tuple[str, np.ndarray]]) -> str | None:
    """Why a vision bundle is not fit to score these images (None: healthy): it must accept each
    one and give it one finite score."""
    for name, tensor in samples:
        try:
            scores = np.asarray(runner.run(tensor)["score"], dtype=np.float64).reshape(-1)
        except Exception as exc:  # any failure on a real image is a failed health check
            return f"the bundle fails on the image {name}: {exc}"
        if scores.size != 1 or not np.all(np.isfinite(scores)):
            return f"the bundle gives no finite score for the image {name}"
    return None


@dataclass
class InspectionStats:
    images: int = 0
    defects: int = 0
    unreadable: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class FolderInspector:
    """Scores new images of one folder with one vision bundle (``scan`` does one pass)."""

    def __init__(
        self,
        runner: BundleRunner,
        folder: Path,
        buffer: Buffer,
        *,
        asset: str,
        bundle_sha: str = "",
        settle_s: float = 1.0,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not is_vision_bundle(runner):
            raise ValueError("not a vision bundle with an operating point (threshold)")
        self.runner = runner
        self.folder = folder
        self.buffer = buffer
        self.asset = asset
        self.bundle_sha = bundle_sha
        self.settle_s = settle_s
        self.threshold = float(runner.threshold or 0.0)
        self.model = model_info(runner)
        self.on_alert = on_alert
        self.stats = InspectionStats()

    def _candidates(self) -> dict[str, Path]:
        now = time.time()
        found: dict[str, Path] = {}
        try:
            entries = sorted(self.folder.iterdir())
        except OSError:
            return found  # not there (yet): the camera's share may mount later
        for path in entries:
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if not path.is_file() or now - st.st_mtime < self.settle_s:
                continue
            found[f"{path.name}|{st.st_size}|{st.st_mtime_ns}"] = path
        return found

    def scan(self) -> list[dict[str, Any]]:
        """Score every settled file not scored before; returns the results recorded now."""
        candidates = self._candidates()
        done = self.buffer.inspected(candidates)
        results = []
        for key, path in candidates.items():
            if key not in done:
                result = self._inspect(key, path)
                if result is not None:
                    results.append(result)
        return results

    def _inspect(self, key: str, path: Path) -> dict[str, Any] | None:
        mtime_ns = int(key.rsplit("|", 1)[1])
        result: dict[str, Any] = {
            "id": f"einsp_{uuid.uuid4().hex[:24]}",
            "asset": self.asset,
            "ts": datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat(),
            "file": path.name,
            "threshold": self.threshold,
            "bundle": self.model["name"],
            "bundle_sha256": self.bundle_sha,
        }
        alert = None
        started = time.perf_counter()
        try:
            tensor = image_tensor(path)
        except (OSError, ValueError, SyntaxError) as exc:
            result |= {"defect": None, "error": f"not a readable image ({exc})"}
            self.stats.unreadable += 1
            log.error("%s: not a readable image: %s", path.name, exc)
        else:
            score = float(np.asarray(self.runner.run(tensor)["score"]).reshape(-1)[0])
            defect = score > self.threshold
            result |= {"score": score, "defect": defect}
            if defect:
                alert = self._alert(result)
        if not self.buffer.add_inspection(key, result, alert):
            return None  # another pass recorded it meanwhile
        if result.get("defect") is not None:  # an unreadable image was not inspected
            self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            del self.stats.latencies_ms[:-1000]
            self.stats.images += 1
        if alert is not None:
            self.stats.defects += 1
            if self.on_alert is not None:
                self.on_alert(alert)  # local log and webhook: after the commit, like sensor alerts
        return result

    def _alert(self, result: dict[str, Any]) -> dict[str, Any]:
        score = float(result["score"])
        ratio = score / self.threshold if self.threshold > 0 else float("inf")
        return {
            "id": f"ealert_{uuid.uuid4().hex[:24]}",
            "asset": self.asset,
            "ts": result["ts"],
            "severity": "critical" if ratio >= 2 else "warning",
            "kind": "model",
            "source": f"edge:{self.model['name']}",
            "title": f"{self.asset}: defect in {result['file']} "
            f"(score {score:.3g} over {self.threshold:.3g})",
            "score": score,
            "threshold": self.threshold,
            "explanation": [{"file": result["file"], "inspection": result["id"]}],
            "bundle_sha256": self.bundle_sha,
        }

"""Heatmap overlays an operator can read: the colour scale is anchored to the threshold.

Colouring each image from 0 to its own maximum makes every good part glow red somewhere. Here
the scale is the model's own: a pixel whose heat is below ``CALM`` × threshold gets no colour at
all, colour rises through yellow to full red at the threshold and stays red above it. A good part
therefore looks calm and a defect lights up, and two overlays of one model compare directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CALM = 0.5  # heat below this share of the threshold is left uncoloured
# (position on the anchored scale, RGB, opacity): transparent yellow → orange → red at the threshold.
_STOPS = np.array([0.0, 0.5, 1.0])
_RGB = np.array([[255, 230, 0], [255, 140, 0], [230, 0, 0]], dtype=np.float32)
_ALPHA = np.array([0.0, 0.35, 0.6], dtype=np.float32)


def anchored(heatmap: np.ndarray, threshold: float) -> np.ndarray:
    """Heat on the anchored scale: 0 at ``CALM`` × threshold, 1 at the threshold (clipped)."""
    thr = max(float(threshold), 1e-12)
    return np.clip((np.asarray(heatmap, dtype=np.float32) / thr - CALM) / (1 - CALM), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, threshold: float) -> np.ndarray:
    """RGB uint8 image with the anchored heat blended on top (heatmap at the image's size)."""
    img = np.asarray(image)
    rgb = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]
    rgb = rgb.astype(np.float32)
    a = anchored(heatmap, threshold)
    colour = np.stack([np.interp(a, _STOPS, _RGB[:, c]) for c in range(3)], axis=2)
    alpha = np.interp(a, _STOPS, _ALPHA)[:, :, None]
    return np.clip(rgb * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def save_overlay(image: np.ndarray, heatmap: np.ndarray, threshold: float, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(image, heatmap, threshold)).save(path)
    return path


def overlay_png(image: np.ndarray, heatmap: np.ndarray, threshold: float) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(overlay(image, heatmap, threshold)).save(buffer, format="PNG")
    return buffer.getvalue()


def unique_names(paths: list[Path], suffix: str = "-heatmap.png") -> list[str]:
    """One output name per input path, unique even when stems repeat in different folders:
    the stem alone where it is unique, else the path below the common parent joined with '__'."""
    stems = [p.stem for p in paths]
    common = Path(*_common_parts(paths)) if len(paths) > 1 else None
    names = []
    for p, stem in zip(paths, stems, strict=True):
        if stems.count(stem) == 1 or common is None:
            names.append(stem + suffix)
        else:
            full = p.resolve().with_suffix("")
            rel = full.relative_to(common) if full.is_relative_to(common) else full
            names.append("__".join(part for part in rel.parts if part not in ("/", "")) + suffix)
    # Still equal (e.g. a.png and a.jpg in one folder): number the repeats.
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else n.replace(suffix, f"-{seen[n]}{suffix}"))
    return out


def _common_parts(paths: list[Path]) -> tuple[str, ...]:
    parts = [p.resolve().parent.parts for p in paths]
    common: list[str] = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    return tuple(common) if common else ("/",)


def heat_rgba_png(heatmap: np.ndarray, threshold: float) -> bytes:
    """The anchored heat alone as a transparent PNG, for pages that lay it over the part image."""
    import io

    from PIL import Image

    a = anchored(heatmap, threshold)
    rgba = np.zeros((*a.shape, 4), dtype=np.uint8)
    for c in range(3):
        rgba[:, :, c] = np.interp(a, _STOPS, _RGB[:, c]).astype(np.uint8)
    rgba[:, :, 3] = (np.interp(a, _STOPS, _ALPHA) / _ALPHA.max() * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()

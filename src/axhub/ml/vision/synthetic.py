"""Synthetic defects pasted into good images: a self-check that needs no defect image.

Used to choose a product's backbone and feature layers from its good images alone
(``selection.py``): a configuration that cannot tell a held-out good image from the same image
with a small scratch, spot or misplaced patch will not find real defects either, and one that
scores held-out good images as far from the bank as the synthetic defects (normal texture as
far as cracks) is exactly the failure to avoid. Three kinds, all small (a few % of the short
side), placed anywhere including the border:

* **patch**: a rectangle cut from elsewhere in the image (flipped) pasted over another place,
  which keeps the product's own texture but breaks its local structure (CutPaste, Li et al. 2021);
* **scratch**: a thin random-walk line, darker or brighter than its surroundings (cracks, scratches);
* **spot**: a soft-edged ellipse of shifted intensity (pits, stains, porosity).
"""

from __future__ import annotations

import numpy as np


def _patch(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    side = min(h, w)
    ph = max(4, int(side * rng.uniform(0.04, 0.10)))
    pw = max(4, int(side * rng.uniform(0.04, 0.10)))
    y0, x0 = rng.integers(0, h - ph), rng.integers(0, w - pw)
    y1, x1 = rng.integers(0, h - ph), rng.integers(0, w - pw)
    piece = img[y0 : y0 + ph, x0 : x0 + pw].copy()
    piece = piece[::-1] if rng.random() < 0.5 else piece[:, ::-1]
    out = img.copy()
    out[y1 : y1 + ph, x1 : x1 + pw] = piece
    return out


def _shift_mask(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift the intensity under a soft mask (0..1) darker or brighter by 40-90 grey levels."""
    delta = rng.uniform(40, 90) * (1 if rng.random() < 0.5 else -1)
    m = mask if img.ndim == 2 else mask[:, :, None]
    return np.clip(img.astype(np.float32) + delta * m, 0, 255).astype(np.uint8)


def _scratch(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    side = min(h, w)
    length = int(side * rng.uniform(0.08, 0.25))
    width = max(1.0, side * rng.uniform(0.004, 0.012))
    y, x = rng.uniform(0, h), rng.uniform(0, w)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=np.float32)
    for _ in range(length):
        angle += rng.normal(0, 0.15)
        y = float(np.clip(y + np.sin(angle), 0, h - 1))
        x = float(np.clip(x + np.cos(angle), 0, w - 1))
        r = int(np.ceil(width)) + 1
        ys, xs = slice(max(0, int(y) - r), int(y) + r + 1), slice(max(0, int(x) - r), int(x) + r + 1)
        d = np.hypot(yy[ys, xs] - y, xx[ys, xs] - x)
        mask[ys, xs] = np.maximum(mask[ys, xs], np.clip(width - d + 0.5, 0, 1))
    return _shift_mask(img, mask, rng)


def _spot(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    side = min(h, w)
    ry, rx = side * rng.uniform(0.015, 0.05), side * rng.uniform(0.015, 0.05)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    mask = np.clip(1.5 - r, 0, 1).astype(np.float32)
    return _shift_mask(img, mask, rng)


KINDS = {"patch": _patch, "scratch": _scratch, "spot": _spot}


def add_defect(img: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A copy of ``img`` (uint8, (H, W) or (H, W, 3)) with one synthetic defect."""
    name = kind or str(rng.choice(sorted(KINDS)))
    return KINDS[name](np.asarray(img), rng)

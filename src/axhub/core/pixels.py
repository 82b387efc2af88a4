"""The one rule for turning a decoded image of any pixel depth into the 8-bit pixels models see.

Shared by the hub (``ml.vision.images.decode_image``) and the edge agent (``edge.vision``), so a
camera's image reads the same on both sides.

Industrial, X-ray and thermal cameras often write 16-bit grey PNG or TIFF files, usually holding
10- or 12-bit values. PIL's ``convert("L")`` clips such pixels at 255 instead of scaling them: a
12-bit image came out 94 % white. Here deep grey images are scaled from the smallest usual full
scale that holds their brightest pixel: 255 (8-bit values in a 16-bit file), 4,095 (10-/12-bit
cameras), 65,535 (16-bit); floats in 0..1 from 1.0. The choice is made per image, so a very dark
image (every pixel below 256 from a 12-bit camera) reads brighter than its siblings; a folder of
one camera's images otherwise reads consistently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Modes PIL gives grey images of more than 8 bits (I;16 little/big/native endian, 32-bit int, float).
DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
GREY_MODES = ("L", "1", "LA", "La", *DEEP_GREY_MODES)
FULL_SCALES = (255.0, 4095.0, 65535.0)


def full_scale(brightest: float, *, floating: bool) -> float:
    """The full scale pixel values were written at, from the brightest (module docstring)."""
    if floating and brightest <= 1.0:
        return 1.0
    for scale in FULL_SCALES:
        if brightest <= scale:
            return scale
    return brightest  # beyond 16 bits (32-bit counts): the image's own range


def deep_grey_to_uint8(values: np.ndarray) -> np.ndarray:
    """Grey values of any depth → uint8, scaled from their full scale; NaN and negatives → 0."""
    arr = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    arr = np.clip(arr, 0.0, None)
    scale = full_scale(float(arr.max(initial=0.0)), floating=np.asarray(values).dtype.kind == "f")
    return np.clip(np.rint(arr * (255.0 / max(scale, 1e-12))), 0, 255).astype(np.uint8)


def to_uint8(img: Any) -> np.ndarray:
    """A loaded PIL image → uint8 (H, W) for grey or (H, W, 3) for colour (alpha and palettes
    resolved by PIL)."""
    if img.mode in DEEP_GREY_MODES:
        return deep_grey_to_uint8(np.asarray(img))
    return np.asarray(img.convert("L" if img.mode in GREY_MODES else "RGB"))

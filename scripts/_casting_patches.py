"""Patch vectors of casting images, shared by the validation scripts beside this file (they run
as ``python scripts/<name>.py``, so this module is importable by its bare name)."""

from __future__ import annotations

from pathlib import Path

import torch

from axhub.ml.vision.backbone import to_tensor
from axhub.ml.vision.images import decode_image
from axhub.ml.vision.patchcore import PatchEmbedding


def embed_patches(
    emb: PatchEmbedding,
    paths: list[Path],
    size: int,
    *,
    keep: int | None = None,
    generator: torch.Generator | None = None,
    batch: int = 8,
) -> torch.Tensor:
    """(images, patches, dims) patch vectors at ``size`` px; with ``keep``, that many random
    patches per image (drawn from ``generator``, so a bank is the same from run to run)."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(paths), batch):
            f = emb(to_tensor([decode_image(p) for p in paths[s : s + batch]], (size, size)))
            f = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])
            if keep:
                idx = torch.stack([torch.randperm(f.shape[1], generator=generator)[:keep] for _ in f])
                f = torch.gather(f, 1, idx[:, :, None].expand(-1, -1, f.shape[2]))
            out.append(f.clone())
    return torch.cat(out)

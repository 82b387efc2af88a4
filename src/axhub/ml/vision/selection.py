"""Choosing a product's backbone and feature layers from its good images alone.

The self-check: a small memory bank from some good training images; the held-out good images
(the calibration images, which never enter the final bank either) against the same images with
one synthetic defect each (``synthetic.py``). A configuration is worth what it separates there:
the mean of the image AUROC and the share of synthetic defects scored above every clean
held-out image (the second is what an inspector feels at a strict threshold, and it keeps
"normal texture as far as a crack" from passing). Ties (within ``TIE``) go to the cheaper
candidate, which comes first. Backbone maps are computed once per backbone for all its stages
(a cache for the run), so each extra stage pair costs only a small coreset and a kNN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from axhub.ml.vision.backbone import LiteFeatures, to_tensor

# Cheapest first. Stage pairs: texture (2, 3) and mid-level parts (3, 4) of each network.
CANDIDATE_STAGES: tuple[tuple[int, ...], ...] = ((2, 3), (3, 4))
CANDIDATE_BACKBONES: tuple[str, ...] = ("lite0", "lite2")
TIE = 0.005
MAX_BANK_IMAGES = 60
MAX_HELD_OUT = 40


# Outer patch rings left out of the image score (patches of the stride-4 grid): none, or 4
# (16 px at model resolution; 7 % of a 224 px side).
CANDIDATE_MARGINS: tuple[int, ...] = (0, 4)


def candidate_margins(margin: int | None) -> list[int]:
    return list(CANDIDATE_MARGINS) if margin is None else [int(margin)]


def candidates_for(backbone: str, stages: Sequence[int] | None) -> list[tuple[str, list[int]]]:
    backbones = list(CANDIDATE_BACKBONES) if backbone == "auto" else [backbone]
    stage_sets = [list(s) for s in CANDIDATE_STAGES] if stages is None else [list(stages)]
    return [(b, s) for b in backbones for s in stage_sets]


def _maps(
    features: LiteFeatures, images: list[np.ndarray], shape: tuple[int, int], batch: int = 8
) -> list[torch.Tensor]:
    out: list[list[torch.Tensor]] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            out.append(features(to_tensor(images[start : start + batch], shape)))
    return [torch.cat([o[i] for o in out]) for i in range(len(features.stages))]


def choose_features(
    bank_imgs: list[np.ndarray],
    held_out: list[np.ndarray],
    candidates: Sequence[tuple[str, Sequence[int]]],
    *,
    shape: tuple[int, int],
    border: int,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    margins: Sequence[int] = (0,),
    patch_pool: int = 3,
) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from axhub.ml.vision.patchcore import fuse_maps, greedy_coreset, ignore_margin, nearest_distance
    from axhub.ml.vision.synthetic import add_defect

    rng = np.random.default_rng(seed)
    bank = [bank_imgs[i] for i in np.sort(rng.permutation(len(bank_imgs))[:MAX_BANK_IMAGES])]
    clean = [held_out[i] for i in np.sort(rng.permutation(len(held_out))[:MAX_HELD_OUT])]
    if len(clean) < 10:  # a few images: two synthetic defects each, so the check is not a coin toss
        clean = clean * 2
    synthetic = [add_defect(img, rng) for img in clean]
    gen = torch.Generator().manual_seed(seed)
    results: list[dict[str, Any]] = []
    backbones = list(dict.fromkeys(b for b, _ in candidates))
    done = 0
    for backbone in backbones:
        union = sorted({s for b, st in candidates if b == backbone for s in st})
        features = LiteFeatures(shape, union, backbone, border)
        cached = {
            name: _maps(features, imgs, shape)
            for name, imgs in (("bank", bank), ("clean", clean), ("synthetic", synthetic))
        }
        for b, stages in candidates:
            if b != backbone:
                continue
            idx = [union.index(s) for s in stages]
            strides = [features.strides[i] for i in idx]

            def fused(
                name: str,
                idx: list[int] = idx,
                strides: list[int] = strides,
                cached: dict[str, list[torch.Tensor]] = cached,
            ) -> torch.Tensor:
                f = fuse_maps([cached[name][i] for i in idx], strides, border, patch_pool)
                return f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])

            pool = fused("bank").reshape(-1, sum(features.channels[i] for i in idx))
            if len(pool) > 50_000:
                pool = pool[torch.randperm(len(pool), generator=gen)[:50_000]]
            memory = pool[greedy_coreset(pool, 1000, projection=128, seed=seed)]
            bank_t, bank_sq = memory.t().contiguous(), (memory**2).sum(dim=1)[None, None, :]
            maps = {}
            for name in ("clean", "synthetic"):
                f = fuse_maps([cached[name][i] for i in idx], strides, border, patch_pool)
                h, w = f.shape[-2:]
                flat = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])
                maps[name] = torch.cat(
                    [nearest_distance(flat[i : i + 4], bank_t, bank_sq) for i in range(0, len(flat), 4)]
                ).reshape(-1, 1, h, w)
            y = np.r_[np.zeros(len(clean)), np.ones(len(synthetic))]
            for margin in margins:
                scores = {
                    k: ignore_margin(v, margin).flatten(1).max(dim=1).values.numpy() for k, v in maps.items()
                }
                auroc = float(roc_auc_score(y, np.r_[scores["clean"], scores["synthetic"]]))
                strict_recall = float((scores["synthetic"] > scores["clean"].max()).mean())
                results.append(
                    {
                        "backbone": b,
                        "stages": list(stages),
                        "margin": int(margin),
                        "synthetic_auroc": auroc,
                        "synthetic_recall_at_max_good": strict_recall,
                        "value": (auroc + strict_recall) / 2,
                    }
                )
            done += 1
            if progress is not None:
                progress("choosing layers", done, len(candidates))
    best = results[0]
    for r in results[1:]:
        if r["value"] > best["value"] + TIE:
            best = r
    return {
        "method": (
            f"self-check on good images only: {len(bank)} bank images, {len(clean)} held-out good images "
            "vs the same with one synthetic defect each"
        ),
        "candidates": results,
        "chosen": {"backbone": best["backbone"], "stages": best["stages"], "margin": best["margin"]},
    }

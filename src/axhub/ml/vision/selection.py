"""Choosing a product's backbone and feature layers from its good images alone.

The self-check: a small memory bank from some good training images; clean images the bank never
saw (the calibration images and the good images the small bank did not draw) against the same
images with one synthetic defect of each kind (``synthetic.py``). A configuration is worth what
it separates there: the mean of the image AUROC and the share of synthetic defects scored above
every clean image (the second is what an inspector feels at a strict threshold, and it keeps
"normal texture as far as a crack" from passing). Ties (within ``TIE``) go to the cheaper
candidate, which comes first; each candidate's bootstrap spread is kept beside its AUROC. The
bank's backbone maps are computed once per backbone for all its stages, and the clean and
synthetic images stream through each backbone once, scored against every stage pair's bank.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from axhub.ml.vision.backbone import LiteFeatures, to_tensor
from axhub.ml.vision.images import join, pick

# Cheapest first. Stage pairs: texture (2, 3) and mid-level parts (3, 4) of each network.
CANDIDATE_STAGES: tuple[tuple[int, ...], ...] = ((2, 3), (3, 4))
CANDIDATE_BACKBONES: tuple[str, ...] = ("lite0", "lite2")
TIE = 0.005
MAX_BANK_IMAGES = 60
MAX_HELD_OUT = 80


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
    features: LiteFeatures, imgs: Sequence[np.ndarray], shape: tuple[int, int], batch: int = 8
) -> list[torch.Tensor]:
    out: list[list[torch.Tensor]] = []
    with torch.inference_mode():
        for start in range(0, len(imgs), batch):
            out.append(features(to_tensor(imgs[start : start + batch], shape)))
    return [torch.cat([o[i] for o in out]) for i in range(len(features.stages))]


def self_check_images(
    bank_imgs: Sequence[np.ndarray], held_out: Sequence[np.ndarray], rng: np.random.Generator
) -> tuple[Sequence[np.ndarray], Sequence[np.ndarray]]:
    """The self-check's bank and its clean images.

    The clean images are the held-out ones plus the good images the check's small bank did not
    draw (they are just as unseen by it): with 28 clean images, as on a product of 139 good
    images, the AUROC of one candidate moved by several points between draws, which was more than
    the candidates differed."""
    order = rng.permutation(len(bank_imgs))
    bank = pick(bank_imgs, np.sort(order[:MAX_BANK_IMAGES]))
    pool = join(held_out, pick(bank_imgs, np.sort(order[MAX_BANK_IMAGES:])))
    clean = pick(pool, np.sort(rng.permutation(len(pool))[:MAX_HELD_OUT]))
    if len(clean) < 10:  # a few images: each twice, so the check is not a coin toss
        clean = join(clean, clean)
    return bank, clean


def _bootstrap_std(clean: np.ndarray, synthetic: np.ndarray, seed: int, rounds: int = 200) -> float:
    """Spread of the synthetic AUROC over resampled clean images and their defects (paired: an
    image's defects go with it), shown beside each candidate so a reader sees what a gap is worth."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = len(clean)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        y = np.r_[np.zeros(n), np.ones(synthetic.shape[1] * n)]
        values.append(roc_auc_score(y, np.r_[clean[idx], synthetic[idx].ravel()]))
    return float(np.std(values))


def choose_features(
    bank_imgs: Sequence[np.ndarray],
    held_out: Sequence[np.ndarray],
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
    from axhub.ml.vision.synthetic import KINDS, add_defect

    rng = np.random.default_rng(seed)
    bank, clean = self_check_images(bank_imgs, held_out, rng)
    kinds = sorted(KINDS)
    per_batch = 2  # clean images per backbone batch, each with its synthetic copies

    def batches() -> Iterator[tuple[int, list[np.ndarray]]]:
        """(first clean index, [clean..., their synthetic copies...]) for a few clean images at a
        time. One defect of every kind per clean image: the kinds weigh the same in every draw,
        and the synthetic side of the AUROC has three times the samples. The copies are made when
        needed (bounded memory whatever the image size) from the same random state for every
        backbone, so each backbone sees the same defects."""
        draw = copy.deepcopy(rng)
        for start in range(0, len(clean), per_batch):
            chunk = list(clean[start : start + per_batch])
            yield start, chunk + [add_defect(img, draw, kind) for img in chunk for kind in kinds]

    gen = torch.Generator().manual_seed(seed)
    results: list[dict[str, Any]] = []
    backbones = list(dict.fromkeys(b for b, _ in candidates))
    for done, backbone in enumerate(backbones):
        union = sorted({s for b, st in candidates if b == backbone for s in st})
        features = LiteFeatures(shape, union, backbone, border)
        mine = [list(st) for b, st in candidates if b == backbone]
        bank_maps = _maps(features, bank, shape)
        memories = []
        for stages in mine:
            idx = [union.index(s) for s in stages]
            strides = [features.strides[i] for i in idx]
            f = fuse_maps([bank_maps[i] for i in idx], strides, border, patch_pool)
            pool = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
            if len(pool) > 50_000:
                pool = pool[torch.randperm(len(pool), generator=gen)[:50_000]]
            memory = pool[greedy_coreset(pool, 1000, projection=128, seed=seed)]
            memories.append((idx, strides, memory.t().contiguous(), (memory**2).sum(dim=1)[None, None, :]))
        del bank_maps
        # Clean and synthetic images stream through the backbone once for all stage pairs; only
        # each image's score per margin is kept (memory stays that of a few images). Scores:
        # [candidate, margin, clean image, 0 = clean / 1.. = its synthetic copy of each kind].
        scores = np.zeros((len(mine), len(margins), len(clean), 1 + len(kinds)), dtype=np.float64)
        for start, images in batches():
            n = len(images) // (1 + len(kinds))
            maps = _maps(features, images, shape)
            for c, (idx, strides, bank_t, bank_sq) in enumerate(memories):
                f = fuse_maps([maps[i] for i in idx], strides, border, patch_pool)
                h, w = f.shape[-2:]
                flat = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])
                dist = nearest_distance(flat, bank_t, bank_sq).reshape(-1, 1, h, w)
                for m, margin in enumerate(margins):
                    top = ignore_margin(dist, margin).flatten(1).max(dim=1).values.numpy()
                    scores[c, m, start : start + n, 0] = top[:n]
                    scores[c, m, start : start + n, 1:] = top[n:].reshape(n, len(kinds))
            if progress is not None:
                progress("choosing layers", done * len(clean) + start + n, len(backbones) * len(clean))
        y = np.r_[np.zeros(len(clean)), np.ones(len(clean) * len(kinds))]
        y_kind = np.r_[np.zeros(len(clean)), np.ones(len(clean))]
        for c, stages in enumerate(mine):
            for m, margin in enumerate(margins):
                s_clean, per_image = scores[c, m, :, 0], scores[c, m, :, 1:]
                auroc = float(roc_auc_score(y, np.r_[s_clean, per_image.ravel()]))
                strict_recall = float((per_image > s_clean.max()).mean())
                results.append(
                    {
                        "backbone": backbone,
                        "stages": stages,
                        "margin": int(margin),
                        "synthetic_auroc": auroc,
                        "synthetic_auroc_std": _bootstrap_std(s_clean, per_image, seed),
                        "synthetic_auroc_by_kind": {
                            kind: float(roc_auc_score(y_kind, np.r_[s_clean, per_image[:, k]]))
                            for k, kind in enumerate(kinds)
                        },
                        "synthetic_recall_at_max_good": strict_recall,
                        "value": (auroc + strict_recall) / 2,
                    }
                )
    # Candidates in the caller's order (cheapest first), whatever order the backbones ran in.
    order = {(b, tuple(st)): i for i, (b, st) in enumerate(candidates)}
    results.sort(key=lambda r: (order[(r["backbone"], tuple(r["stages"]))], r["margin"]))
    best = results[0]
    for r in results[1:]:
        if r["value"] > best["value"] + TIE:
            best = r
    return {
        "method": (
            f"self-check on good images only: {len(bank)} bank images, {len(clean)} held-out good images "
            f"vs the same with one synthetic defect of each kind ({', '.join(kinds)})"
        ),
        "bank_images": len(bank),
        "clean_images": len(clean),
        "kinds": kinds,
        "candidates": results,
        "chosen": {"backbone": best["backbone"], "stages": best["stages"], "margin": best["margin"]},
        # How well the chosen model finds defects pasted into its own good images: the one
        # label-free sign of a weak model the inspection page can show (see operating.js).
        "self_check": {
            k: best[k] for k in ("synthetic_auroc", "synthetic_auroc_std", "synthetic_recall_at_max_good")
        },
    }


def describe_candidate(c: dict[str, Any]) -> str:
    """One candidate's self-check figures in a line (printed by ``train``, kept in bench notes)."""
    kinds = ", ".join(f"{k} {100 * v:.0f}" for k, v in c.get("synthetic_auroc_by_kind", {}).items())
    spread = f" ± {100 * c['synthetic_auroc_std']:.1f}" if "synthetic_auroc_std" in c else ""
    return (
        f"{c['backbone']} {c['stages']} margin {c.get('margin', 0)}: synthetic AUROC "
        f"{100 * c['synthetic_auroc']:.1f}{spread} %"
        + (f" ({kinds})" if kinds else "")
        + f", recall at max good {100 * c['synthetic_recall_at_max_good']:.0f} %"
    )

"""Issue 14 follow-up: more casting PatchCore settings, compared on a validation split of train/ only.

Split (test/ takes no part): 200 train/ok_front + 200 train/def_front images to score (the first
100 + 100 are the split of ``casting_patchcore_validation.py``, same seed), 1,200 other good images
for the bank and 200 further good images as the calibration set of a policy-(b) simulation
(10 random validation defects set the threshold, F1 on the remaining validation images, 200 draws).

One backbone pass per (backbone, input size): the stage maps are fused several ways (stage sets,
local-average kernel), the bank is a greedy coreset of at most 200,000 patches, and the image
score is computed several ways from the same k-NN search (max, mean of the k highest patches,
PatchCore's eq. 7 re-weighting by the nearest bank vector's neighbourhood, horizontal-flip
average). Usage (one configuration, 10-13 minutes on 2 shared cores):

    PYTHONPATH=src python scripts/casting_patchcore_search.py DATA lite2 224 2,3,4 [bank sizes...]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from axhub.ml.vision.backbone import LiteFeatures, to_tensor
from axhub.ml.vision.images import decode_image, list_images
from axhub.ml.vision.operating import choose
from axhub.ml.vision.patchcore import greedy_coreset

torch.set_num_threads(2)
root, backbone, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
taps = [int(s) for s in sys.argv[4].split(",")]
bank_sizes = [int(b) for b in sys.argv[5:]] or [2000]
ok, de = list_images(root / "train" / "ok_front"), list_images(root / "train" / "def_front")
rng = np.random.default_rng(123)
o, d = rng.permutation(len(ok)), rng.permutation(len(de))
val_ok = [ok[i] for i in o[:100]] + [ok[i] for i in o[1300:1400]]
val_def = [de[i] for i in d[:200]]
bank_paths = [ok[i] for i in o[100:1300]]
cal_paths = [ok[i] for i in o[1400:1600]]
y = np.r_[np.zeros(len(val_ok)), np.ones(len(val_def))]
feats = LiteFeatures(size, taps, backbone, 16).eval()

# Fusions to compare: (stages, local-average kernel). PatchCore uses 3x3 on layers 2 and 3.
FUSIONS: dict[str, tuple[tuple[int, ...], int]] = {}
for st in ([2, 3], [2, 3, 4], [3, 4]):
    if set(st) <= set(taps):
        FUSIONS[f"{st}"] = (tuple(st), 3)
if {2, 3} <= set(taps):
    FUSIONS["[2, 3] pool1"] = ((2, 3), 1)
    FUSIONS["[2, 3] pool5"] = ((2, 3), 5)


def fuse(maps: Sequence[torch.Tensor], stages: tuple[int, ...], k: int) -> torch.Tensor:
    out, grid = [], None
    for m, s in zip(maps, feats.stages, strict=True):
        if s not in stages:
            continue
        if k > 1:
            m = F.avg_pool2d(m, kernel_size=k, stride=1, padding=k // 2, count_include_pad=False)
        m = feats.crop(m, feats.spec.stage_stride[s])
        if grid is None:
            grid = tuple(m.shape[-2:])
        elif tuple(m.shape[-2:]) != grid:
            m = F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
        out.append(m)
    return torch.cat(out, 1)


def embed(paths: list[Path], flip: bool = False, keep: int | None = None) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    acc: dict[str, list[torch.Tensor]] = {k: [] for k in FUSIONS}
    with torch.inference_mode():
        for s in range(0, len(paths), 8):
            x = to_tensor([decode_image(p) for p in paths[s : s + 8]], (size, size))
            if flip:
                x = x.flip(-1)
            maps = feats(x)
            for name, (st, k) in FUSIONS.items():
                f = fuse(maps, st, k)
                f = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])
                if keep:
                    idx = torch.stack([torch.randperm(f.shape[1], generator=gen)[:keep] for _ in f])
                    f = torch.gather(f, 1, idx[:, :, None].expand(-1, -1, f.shape[2]))
                acc[name].append(f.clone())
    return {k: torch.cat(v) for k, v in acc.items()}


def knn(x: torch.Tensor, bank: torch.Tensor, b: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, D) → nearest distance (N, P) and index (N, P) into the bank."""
    bt, bsq = bank.t().contiguous(), (bank**2).sum(1)[None, None]
    ds, ix = [], []
    for s in range(0, len(x), 10):
        v = x[s : s + 10]
        d2 = (v**2).sum(2, keepdim=True) - 2 * v @ bt + bsq
        m = d2.min(dim=2)
        ds.append(m.values.clamp(min=0).sqrt())
        ix.append(m.indices)
    return torch.cat(ds), torch.cat(ix)


def reweighted(
    x: torch.Tensor, dist: torch.Tensor, idx: torch.Tensor, bank: torch.Tensor, b: int = 9
) -> torch.Tensor:
    """PatchCore eq. 7: the max patch score times 1 - softmax weight of its nearest bank vector
    among that vector's b nearest bank neighbours (as anomalib implements it)."""
    top = dist.argmax(1)
    s_star = dist.gather(1, top[:, None])[:, 0]
    m_test = x[torch.arange(len(x)), top]  # (N, D)
    m_star = bank[idx.gather(1, top[:, None])[:, 0]]  # (N, D)
    nb = torch.cdist(m_star, bank).topk(b, dim=1, largest=False).indices  # m* itself first
    dd = torch.cdist(m_test[:, None], bank[nb])[:, 0]  # (N, b)
    w = 1 - torch.softmax(dd, dim=1)[:, 0]
    return w * s_star


def scores(x: torch.Tensor, bank: torch.Tensor) -> dict[str, torch.Tensor]:
    dist, idx = knn(x, bank)
    out = {"max": dist.amax(1)}
    for k in (3, 10, 30):
        out[f"top-{k}"] = dist.topk(k, dim=1).values.mean(1)
    out["eq7"] = reweighted(x, dist, idx, bank)
    return out


def policy_b(good_cal: np.ndarray, val: np.ndarray, draws: int = 200) -> tuple[float, float]:
    """Mean F1 and recall over random draws of 10 calibration defects from the validation defects."""
    r = np.random.default_rng(7)
    f1s, recs = [], []
    n_ok = int((y == 0).sum())
    for _ in range(draws):
        pick = r.choice(len(val_def), 10, replace=False)
        thr = choose(good_cal, val[n_ok + pick])["threshold"]
        keep = np.ones(len(val), bool)
        keep[n_ok + pick] = False
        pred, yy = val[keep] > thr, y[keep] == 1
        tp = (pred & yy).sum()
        prec = tp / max(1, pred.sum())
        rec = tp / yy.sum()
        f1s.append(2 * prec * rec / max(1e-9, prec + rec))
        recs.append(rec)
    return 100 * float(np.mean(f1s)), 100 * float(np.mean(recs))


t0 = time.perf_counter()
V = embed(val_ok + val_def)
VF = embed(val_ok + val_def, flip=True)
C = embed(cal_paths)
CF = embed(cal_paths, flip=True)
B = embed(bank_paths, keep=200_000 // len(bank_paths))
print(f"# {backbone} {size}px taps {taps}: embedding {time.perf_counter() - t0:.0f} s", flush=True)
for name in FUSIONS:
    feats_b = B[name].reshape(-1, B[name].shape[2])
    for bs in bank_sizes:
        bank = feats_b[greedy_coreset(feats_b, bs, projection=128, seed=0)]
        sv, sf = scores(V[name], bank), scores(VF[name], bank)
        sc, scf = scores(C[name], bank), scores(CF[name], bank)
        for kind in sv:
            variants = {kind: (sv[kind], sc[kind])}
            if kind in ("top-10", "max"):
                variants[kind + " +flip"] = ((sv[kind] + sf[kind]) / 2, (sc[kind] + scf[kind]) / 2)
            for label, (s, c) in variants.items():
                sn = s.numpy()
                good = np.sort(sn[y == 0])
                f1, rec = policy_b(c.numpy(), sn)
                print(
                    f"{backbone} {size} {name} bank {bs} {label}: AUROC {100 * roc_auc_score(y, sn):.2f} "
                    f"rec@maxgood {100 * (sn[y == 1] > good[-1]).mean():.0f} "
                    f"rec@5%FA {100 * (sn[y == 1] > good[int(0.95 * len(good)) - 1]).mean():.1f} "
                    f"polb F1 {f1:.1f} rec {rec:.1f}",
                    flush=True,
                )
print(f"# total {time.perf_counter() - t0:.0f} s", flush=True)

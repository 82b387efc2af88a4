"""Issue 14 latency follow-up: what the casting PatchCore loses when the nearest-neighbour search
is made cheaper, on a validation split of train/ only (test/ takes no part).

Same split as ``casting_patchcore_search.py`` (seed 123): 200 train/ok_front + 200 train/def_front
images to score, 1,200 other good images for the bank, 200 further good images for the simulated
policy (b). Model: Lite2 stages (2, 3), 288 px, no patch averaging, top-10 mean, margin 0.

Compared per bank size: the exact score, and the *pruned* score of ``PatchCoreGraph`` with
``prune_coarse`` / ``prune_candidates``: every patch is searched against the first S bank vectors
only (the greedy coreset's first picks, a coarser cover), the K patches with the largest such
distances are searched exactly against the whole bank, and the image score is the top-10 mean of
those. Usage (2 shared cores, a few minutes):

    PYTHONPATH=src python scripts/casting_patchcore_latency_validation.py DATA [bank sizes...]

``SEED=7`` (environment) draws another split of train/ the same way, to see how much of a
difference between settings is the split's noise.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _casting_patches import embed_patches
from sklearn.metrics import roc_auc_score

from axhub.ml.vision.images import list_images
from axhub.ml.vision.patchcore import PatchEmbedding, greedy_coreset, nearest_distance, pruned_top_k

torch.set_num_threads(2)
root = Path(sys.argv[1])
bank_sizes = [int(b) for b in sys.argv[2:]] or [2000]
ok, de = list_images(root / "train" / "ok_front"), list_images(root / "train" / "def_front")
rng = np.random.default_rng(int(os.environ.get("SEED", "123")))
o, d = rng.permutation(len(ok)), rng.permutation(len(de))
val_paths = [ok[i] for i in o[:100]] + [ok[i] for i in o[1300:1400]] + [de[i] for i in d[:200]]
bank_paths = [ok[i] for i in o[100:1300]]
y = np.r_[np.zeros(200), np.ones(200)]
emb = PatchEmbedding(288, [2, 3], "lite2", 16, 1).eval()


t0 = time.perf_counter()
V = embed_patches(emb, val_paths, 288)
B = embed_patches(
    emb, bank_paths, 288, keep=200_000 // len(bank_paths), generator=torch.Generator().manual_seed(0)
)
feats_b = B.reshape(-1, B.shape[2])
print(f"# embedding {time.perf_counter() - t0:.0f} s", flush=True)
with torch.inference_mode():
    for bs in bank_sizes:
        bank = feats_b[greedy_coreset(feats_b, bs, projection=128, seed=0)]
        bt, bsq = bank.t().contiguous(), (bank**2).sum(1)[None, None]
        exact = torch.cat([nearest_distance(V[s : s + 10], bt, bsq) for s in range(0, len(V), 10)])
        s_exact = exact.topk(10, dim=1).values.mean(1).numpy()
        print(f"bank {bs} exact: AUROC {100 * roc_auc_score(y, s_exact):.2f}", flush=True)
        for coarse in (125, 250, 500):
            for cand in (64, 128, 256):
                if os.environ.get("SEED") and (coarse, cand) not in ((250, 256), (500, 256)):
                    continue
                if coarse >= bs:
                    continue
                s = torch.cat(
                    [pruned_top_k(V[i : i + 10], bt, bsq, coarse, cand, 10) for i in range(0, len(V), 10)]
                ).numpy()
                same = float(np.mean(np.abs(s - s_exact) <= 1e-4 * np.abs(s_exact)))
                print(
                    f"bank {bs} pruned S={coarse} K={cand}: AUROC {100 * roc_auc_score(y, s):.2f} "
                    f"images with the exact score {100 * same:.1f} % "
                    f"max rel. diff {float(np.max(np.abs(s - s_exact) / s_exact)):.2e}",
                    flush=True,
                )
print(f"# total {time.perf_counter() - t0:.0f} s", flush=True)

"""How the casting PatchCore settings were chosen: on a validation split of train/ only.

100 held-out train/ok_front images against 100 train/def_front images (test/ takes no part);
Lite2 or Lite0 stages (2, 3) at 224 px with the model's 16 px mirrored border; banks from 300 or 1200
other good images (at most 200 000 patches, greedy coreset) and three image scores (max patch,
max of the 3-NN mean, mean of the 10 highest patches). Prints AUROC and recall at the largest
good score and at 5 % false alarms. Usage (about 12 min on 2 shared cores):

    PYTHONPATH=src python scripts/casting_patchcore_validation.py DIR lite2 300:2000 1200:2000 1200:5000
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from _casting_patches import embed_patches
from sklearn.metrics import roc_auc_score

from axhub.ml.vision.images import list_images
from axhub.ml.vision.patchcore import PatchEmbedding, greedy_coreset

torch.set_num_threads(2)
root = Path(sys.argv[1])
backbone = sys.argv[2]
plans = [(int(a), int(b)) for a, b in (x.split(":") for x in sys.argv[3:])]
ok, de = list_images(root / "train" / "ok_front"), list_images(root / "train" / "def_front")
rng = np.random.default_rng(123)
o, d = rng.permutation(len(ok)), rng.permutation(len(de))
n_bank = max(n for n, _ in plans)
val = [ok[i] for i in o[:100]] + [de[i] for i in d[:100]]
bank_paths = [ok[i] for i in o[100 : 100 + n_bank]]
y = np.r_[np.zeros(100), np.ones(100)]
emb = PatchEmbedding(224, [2, 3], backbone, 16).eval()
gen = torch.Generator().manual_seed(0)


V = embed_patches(emb, val, 224)
B = embed_patches(emb, bank_paths, 224, keep=400, generator=gen)
for n_img, bank_size in plans:
    per = max(1, min(B.shape[1], 200_000 // n_img))
    feats = B[:n_img, :per].reshape(-1, B.shape[2])
    bank = feats[greedy_coreset(feats, bank_size, projection=128, seed=0)]
    bt, bsq = bank.t().contiguous(), (bank**2).sum(1)[None, None]
    knn = []
    for s in range(0, len(V), 10):
        x = V[s : s + 10]
        d2 = (x**2).sum(2, keepdim=True) - 2 * x @ bt + bsq
        knn.append(d2.topk(3, dim=2, largest=False).values.clamp(min=0).sqrt())
    kk = torch.cat(knn)
    variants = {
        "max": kk[..., 0].amax(1),
        "3-NN max": kk.mean(2).amax(1),
        "top-10 mean": kk[..., 0].topk(10, dim=1).values.mean(1),
    }
    for name, sc_t in variants.items():
        sc = sc_t.numpy()
        good = np.sort(sc[:100])
        print(
            f"{backbone}, {n_img} images, bank {bank_size}, {name}: "
            f"AUROC {100 * roc_auc_score(y, sc):.2f} %, "
            f"recall at max good {100 * (sc[100:] > good[-1]).mean():.0f} %, "
            f"recall at 5 % false alarms {100 * (sc[100:] > good[94]).mean():.0f} %"
        )

"""How the casting fine-tuning epochs were chosen: on a hold-out of train/ only.

Uses the trunk maps of all train/ images at the given input size from CACHE_DIR (the cache of
``axhub bench casting-supervised``, ``AXHUB_HOME/bench/casting-supervised``) and computes and
caches them there when missing, under the bench's own key (a later bench run reuses them; no
test/ image is touched). A stratified 20 % of train/ (seed 7) is held out;
``FineTunedClassifier`` is fitted on the rest for each number of epochs given (0 = the linear
probe) and its hold-out errors and log-loss are printed. Usage:

    PYTHONPATH=src python scripts/casting_supervised_validation.py CASTING_DIR CACHE_DIR SIZE [lite2] 0 1 3 6

(``lite2``: the Lite2 trunk instead of Lite0.)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from axhub.bench.casting_supervised import _maps
from axhub.ml.vision.finetune import FineTunedClassifier
from axhub.ml.vision.images import list_images

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
root, cache, size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
rest = sys.argv[4:]
backbone = rest.pop(0) if rest and rest[0].startswith("lite") else "lite0"
train_ok = list_images(root / "train" / "ok_front")
train_def = list_images(root / "train" / "def_front")
n_ok, n_def = len(train_ok), len(train_def)
cache.mkdir(parents=True, exist_ok=True)
# The bench's order and key (all train/ images, ok then defective), so its cache is shared.
maps = _maps(FineTunedClassifier(input_size=size, backbone=backbone), train_ok + train_def, "train/", cache)
y = np.array([False] * n_ok + [True] * n_def)
rng = np.random.default_rng(7)
hold = np.zeros(len(y), bool)
for c in (False, True):
    idx = rng.permutation(np.flatnonzero(y == c))
    hold[idx[: len(idx) // 5]] = True
tr, ho = np.flatnonzero(~hold), np.flatnonzero(hold)
frame = pd.DataFrame({"label": ["defect" if v else "good" for v in y[tr]]})
for epochs in [int(e) for e in rest]:
    start = time.perf_counter()
    model = FineTunedClassifier(input_size=size, backbone=backbone, epochs=epochs, seed=0)
    model.fit(frame, features=maps[torch.as_tensor(tr)])
    graph = model._graph()
    with torch.no_grad():
        logits = torch.cat(
            [
                graph.logits_of_maps(maps[torch.as_tensor(ho[s : s + 256])].float())
                for s in range(0, len(ho), 256)
            ]
        )
    good = graph.good_index if graph.good_index is not None else 0
    yt = torch.as_tensor(np.where(y[ho], 1 - good, good))
    p = F.softmax(logits / graph.temperature, 1)
    errors = int((p.argmax(1) != yt).sum())
    nll = float(F.nll_loss(p.clamp(min=1e-12).log(), yt))
    print(
        f"{backbone} {size} px, epochs {epochs}: hold-out {len(ho)} images, errors {errors} "
        f"({100 * (1 - errors / len(ho)):.2f} %), NLL {nll:.4f}, {time.perf_counter() - start:.0f} s"
    )

"""The good-only self-check of PatchCore's feature choice, alone, at several seeds (label-free).

Runs ``selection.choose_features`` on KolektorSDD's train/good images exactly as
``PatchCore(backbone="auto").fit`` would (same calibration split per seed, same candidates and
margins) and prints every candidate's synthetic AUROC with its bootstrap spread, per kind, and
the choice. No test image and no defect label is read: this is how the stability of the choice
was checked (docs/benchmarks.md, KolektorSDD). Usage:

    PYTHONPATH=src python scripts/kolektorsdd_self_check.py KOLEKTORSDD_DIR 0 1 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from axhub.bench._vision import load
from axhub.ml.vision.images import list_images
from axhub.ml.vision.patchcore import PatchCore, model_shape
from axhub.ml.vision.selection import candidate_margins, candidates_for, choose_features, describe_candidate

torch.set_num_threads(2)
root = Path(sys.argv[1])
imgs = load(list_images(root / "train" / "good"), "train/good")
for seed in [int(s) for s in sys.argv[2:]]:
    start = time.perf_counter()
    model = PatchCore(input_size=224, backbone="auto", seed=seed)
    order = np.random.default_rng(seed).permutation(len(imgs))  # fit()'s calibration split
    n_cal = min(max(1, round(model.calibration_fraction * len(imgs))), len(imgs) - 1)
    cal, bank = [imgs[i] for i in order[:n_cal]], [imgs[i] for i in order[n_cal:]]
    selection = choose_features(
        bank, cal, candidates_for("auto", None),
        shape=model_shape([i.shape for i in imgs], model.input_size, model.keep_aspect),
        border=model.border, seed=seed,
        margins=candidate_margins(None), patch_pool=model.patch_pool,
    )  # fmt: skip
    took = time.perf_counter() - start
    print(f"seed {seed}: {selection['method']}; chosen {selection['chosen']}; {took:.0f} s")
    for candidate in selection["candidates"]:
        print(f"   {describe_candidate(candidate)}")

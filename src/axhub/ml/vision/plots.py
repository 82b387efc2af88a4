"""Plots for vision benchmarks and reports: ROC, score histograms, heatmap grids (Agg, small PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_plot(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4))
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {100 * roc_auc_score(y, s):.1f} %)")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate (good parts flagged)")
    ax.set_ylabel("true positive rate (defects caught)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def score_histogram(y: np.ndarray, scores: np.ndarray, threshold: float | None, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    bins = np.linspace(float(np.min(scores)), float(np.max(scores)), 40)
    ax.hist(scores[~y], bins=bins, alpha=0.6, label="good")
    ax.hist(scores[y], bins=bins, alpha=0.6, label="defective")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label="threshold (good images only)")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def heatmap_grid(
    model: Any, images: list[np.ndarray], y: np.ndarray, threshold: float | None, path: Path
) -> Path:
    """2×4 grid: the first four defective and first four good images (no cherry-picking), each
    with its heatmap overlaid and its score in the title."""
    plt = _plt()
    picks = list(np.flatnonzero(y)[:4]) + list(np.flatnonzero(~y)[:4])
    fig, axes = plt.subplots(2, 4, figsize=(8, 4.3))
    heat = model.explain([images[i] for i in picks])
    scores = model.score([images[i] for i in picks])
    vmax = float(max(np.max(h) for h in heat))
    for ax, idx, h, s in zip(axes.ravel(), picks, heat, scores, strict=True):
        img = images[idx]
        ax.imshow(img, cmap=None if img.ndim == 3 else "gray")
        ax.imshow(h, cmap="jet", alpha=0.4, vmin=0, vmax=vmax)
        flag = "" if threshold is None else (" ⚠" if s > threshold else " ✓")
        ax.set_title(f"{'defect' if y[idx] else 'good'} {s:.1f}{flag}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=60)
    plt.close(fig)
    return path


def save_overlay(image: np.ndarray, heatmap: np.ndarray, path: Path, vmax: float | None = None) -> Path:
    """One image with its anomaly heatmap on top (PNG)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(image, cmap=None if image.ndim == 3 else "gray")
    ax.imshow(heatmap, cmap="jet", alpha=0.4, vmin=0, vmax=vmax or float(np.max(heatmap)))
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def anchored_heatmap_grid(
    images: list[np.ndarray],
    heatmaps: list[np.ndarray],
    scores: np.ndarray,
    y: np.ndarray,
    threshold: float,
    path: Path,
    per_class: int = 4,
) -> Path:
    """The first ``per_class`` defective and good images (no cherry-picking), each overlaid with
    its heatmap on the threshold-anchored scale (``overlay.py``) and its score in the title."""
    from axhub.ml.vision.overlay import overlay

    plt = _plt()
    picks = list(np.flatnonzero(y)[:per_class]) + list(np.flatnonzero(~y)[:per_class])
    cols = max(1, len(picks) // 2 if len(picks) > per_class else len(picks))
    rows = 2 if len(picks) > per_class else 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, idx in zip(axes.ravel(), picks, strict=False):
        ax.imshow(overlay(images[idx], heatmaps[idx], threshold))
        flag = " ⚠" if scores[idx] > threshold else " ✓"
        ax.set_title(f"{'defect' if y[idx] else 'good'} {scores[idx] / threshold:.2f}×thr{flag}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path

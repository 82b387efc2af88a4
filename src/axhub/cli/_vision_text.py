"""What `axhub vision` prints about a trained model, in the user's language (texts in `_lang`)."""

from __future__ import annotations

from typing import Any

from axhub.cli._lang import TEXTS, t


def step_label(step: str) -> str:
    """A training step's name for its progress bar (the estimators name steps in English)."""
    key = f"vision.step.{step}"
    return t(key) if key in TEXTS else step


def _kind(kind: str) -> str:
    key = f"vision.kind.{kind}"
    return t(key) if key in TEXTS else kind


def describe_method(selection: dict[str, Any]) -> str:
    """How the backbone and stages were chosen."""
    if "bank_images" in selection:
        kinds = ", ".join(_kind(k) for k in selection.get("kinds", []))
        return t(
            "vision.features.self_check",
            bank=selection["bank_images"],
            clean=selection["clean_images"],
            kinds=kinds,
        )
    if selection.get("method") == "given":
        return t("vision.features.given")
    if str(selection.get("method", "")).startswith("default"):
        return t("vision.features.default")
    return str(selection.get("method", ""))


def describe_candidate(c: dict[str, Any]) -> str:
    """One self-check candidate's figures in a line."""
    kinds = ", ".join(f"{_kind(k)} {100 * v:.0f}" for k, v in c.get("synthetic_auroc_by_kind", {}).items())
    spread = f" ± {100 * c['synthetic_auroc_std']:.1f}" if "synthetic_auroc_std" in c else ""
    return t(
        "vision.candidate",
        backbone=c["backbone"],
        stages=c["stages"],
        margin=c.get("margin", 0),
        auroc=100 * c["synthetic_auroc"],
        spread=spread,
        kinds=kinds,
        recall=100 * c["synthetic_recall_at_max_good"],
    )


def describe_threshold(op: dict[str, Any], threshold: float) -> str:
    """The operating point a training chose, and what it promises."""
    if op.get("policy") == "miss-rate":
        return t(
            "vision.threshold_b",
            threshold=threshold,
            n=op["n_defects"],
            miss=op["miss_rate_calibration"],
            target=op["target_miss_rate"],
        )
    needs = "" if op["target_met"] else t("vision.threshold_needs", n=op["good_images_needed"])
    return t(
        "vision.threshold_a",
        threshold=threshold,
        n=op["n_good"],
        bound=op["false_alarm_rate_upper_bound"],
        confidence=op["confidence"],
        target=op["target_false_alarm_rate"],
        needs=needs,
    )

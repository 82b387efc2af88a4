"""Normal ranges carried by a model and what one scored row looks like against them, in the
machine's own units: "4.40 mm/s, normal 1.80 ± 0.10".

Used by the hub's scorers (``serve.explain``, ``serve.scorer``) and by the edge agent, which
explains its alerts on the device from the bundle alone (numpy only, no training libraries).

* **Normal statistics** come from the model: its standardisation (mean, std of the normal
  training data) or, better, the per-operating-state statistics recorded at training
  (``normal_states``: idle and cutting each have their own mean and std, so a reading is never
  compared with an average of both). A bundle carries them in its manifest's ``params`` when
  the hub signs it for edge devices.
* **The state of a row** is the one whose statistics fit the row best by the *median* |z| over
  the signals: one signal gone wild does not move the row into another state.
* **Explanation**: signals sorted by |z|; those within ``MIN_Z`` of normal are dropped (at least
  one stays), so "z -0.0" never heads an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_Z = 1.0
TOP_K = 5


@dataclass(frozen=True)
class NormalState:
    mean: np.ndarray
    std: np.ndarray
    share: float = 1.0


@dataclass(frozen=True)
class NormalStats:
    """Per-signal normal statistics, one set per operating state (one state when unknown)."""

    columns: list[str]
    states: list[NormalState]

    @classmethod
    def from_params(cls, columns: list[str], params: dict[str, Any]) -> NormalStats | None:
        raw = params.get("normal_states")
        if not raw:
            return None
        states = [
            NormalState(np.asarray(s["mean"], float), np.asarray(s["std"], float), float(s.get("share", 1.0)))
            for s in raw
        ]
        return cls(list(columns), states)

    @classmethod
    def from_bundle_steps(cls, columns: list[str], steps: list[dict[str, Any]]) -> NormalStats | None:
        for step in steps:
            if step.get("op") == "standardize":
                mean = np.asarray(step["mean"], float)[: len(columns)]
                std = np.asarray(step["scale"], float)[: len(columns)]
                return cls(list(columns), [NormalState(mean, std)])
        return None

    @classmethod
    def from_bundle(
        cls, columns: list[str], manifest: dict[str, Any], preprocessing: dict[str, Any]
    ) -> NormalStats | None:
        """What a bundle knows of normal: its recorded states, else its standardisation (a
        preprocessing step or one noted as done inside the graph)."""
        params = manifest.get("params")
        from_states = cls.from_params(columns, params) if isinstance(params, dict) else None
        steps = list(preprocessing.get("steps", [])) + list(preprocessing.get("in_graph", []))
        return from_states or cls.from_bundle_steps(columns, steps)

    def z(self, row: np.ndarray) -> tuple[int, np.ndarray]:
        """(state index, z per signal) of one row, in the state that fits it best."""
        best: tuple[float, int, np.ndarray] | None = None
        for k, state in enumerate(self.states):
            z = (row - state.mean) / np.where(state.std > 0, state.std, 1.0)
            fit = float(np.median(np.abs(z)))
            if best is None or fit < best[0]:
                best = (fit, k, z)
        assert best is not None
        return best[1], best[2]


def _decimals(value: float) -> int:
    magnitude = abs(value)
    if magnitude >= 1000:
        return 0
    if magnitude >= 100:
        return 1
    if magnitude >= 1 or magnitude == 0:
        return 2
    return min(6, 2 - int(np.floor(np.log10(magnitude))))


def _fmt(value: float, decimals: int | None = None) -> str:
    places = _decimals(value) if decimals is None else decimals
    return f"{value:,.{places}f}"


def describe(item: dict[str, Any], lang: str = "en") -> str:
    """'4.40 mm/s, normal 1.80 ± 0.10' (or '정상 1.80 ± 0.10')."""
    unit = f" {item['unit']}" if item.get("unit") else ""
    if item.get("normal_mean") is None:
        return f"{_fmt(item['value'])}{unit}"
    word = "정상" if lang == "ko" else "normal"
    # One precision for reading, mean and spread (that of the mean, finer if the spread needs it).
    std = float(item.get("normal_std") or 0.0)
    places = _decimals(item["normal_mean"])
    if 0 < std < 10 ** (-places):
        places = _decimals(std)
    normal = f"{_fmt(item['normal_mean'], places)} ± {_fmt(std, places)}"
    return f"{_fmt(item['value'], places)}{unit}, {word} {normal}"


def explain_row(
    row: np.ndarray,
    columns: list[str],
    normal: NormalStats | None,
    contributions: np.ndarray | None = None,
    units: dict[str, str] | None = None,
    top_k: int = TOP_K,
) -> list[dict[str, Any]]:
    """The signals behind one scored row, most off first (see the module docstring)."""
    units = units or {}
    if normal is None:
        if contributions is None or contributions.shape[-1] != len(columns):
            return []
        weight = np.abs(contributions)
        total = float(weight.sum()) or 1.0
        return [
            {
                "signal": columns[j],
                "value": float(row[j]),
                "share": round(float(weight[j]) / total, 4),
                "unit": units.get(columns[j], ""),
            }
            for j in np.argsort(-weight)[:top_k]
        ]
    state_index, z = normal.z(row)
    state = normal.states[state_index]
    share = None
    if contributions is not None and contributions.shape[-1] == len(columns):
        weight = np.abs(contributions)
        share = weight / (float(weight.sum()) or 1.0)
    order = [j for j in np.argsort(-np.abs(z)) if np.isfinite(z[j])]
    kept = [j for j in order if abs(z[j]) >= MIN_Z][:top_k] or order[:1]
    out = []
    for j in kept:
        item: dict[str, Any] = {
            "signal": columns[j],
            "value": float(row[j]),
            "z": round(float(z[j]), 2),
            "normal_mean": float(state.mean[j]),
            "normal_std": float(state.std[j]),
            "unit": units.get(columns[j], ""),
        }
        if len(normal.states) > 1:
            item["state"] = state_index
        if share is not None:
            item["share"] = round(float(share[j]), 4)
        item["text"] = describe(item, "en")
        item["text_ko"] = describe(item, "ko")
        out.append(item)
    return out

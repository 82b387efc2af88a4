"""Per-part quality records: process parameters in, surface roughness and dimension out.

The measured quality comes from a known, nonlinear response surface plus noise, so that a
quality model has something real to learn and a process optimiser has a real optimum to
find (it lies inside the parameter space, away from today's nominal recipe):

* roughness Ra grows with feed per tooth (cusp geometry) but also with too small a feed
  (rubbing below the minimum chip thickness); it rises at low spindle speed (built-up edge),
  near a chatter-prone speed band, and at very high speed (runout); deeper cuts deflect the
  tool; a worn tool and chatter make it worse; clamping off its sweet spot too;
* dimension deviation comes from tool deflection (depth of cut, material hardness), thermal
  growth (coolant temperature above 20 °C), tool wear, and clamping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from axhub.sim._common import asset_rng

TEETH = 4
RADIAL_WIDTH_MM = 10.0

# Bounds a process engineer may choose from (the optimiser's search space).
PARAMETER_SPACE: dict[str, tuple[float, float]] = {
    "spindle_speed_rpm": (6000.0, 12000.0),
    "feed_per_tooth_mm": (0.03, 0.12),
    "depth_of_cut_mm": (0.2, 1.5),
    "coolant_temp_c": (18.0, 30.0),
    "clamp_pressure_bar": (40.0, 80.0),
}
PARAMETER_UNITS = {
    "spindle_speed_rpm": "rpm",
    "feed_per_tooth_mm": "mm",
    "depth_of_cut_mm": "mm",
    "coolant_temp_c": "°C",
    "clamp_pressure_bar": "bar",
}
# Today's production recipe: workable, but not the best the process can do.
NOMINAL_RECIPE: dict[str, float] = {
    "spindle_speed_rpm": 8000.0,
    "feed_per_tooth_mm": 0.08,
    "depth_of_cut_mm": 0.8,
    "coolant_temp_c": 22.0,
    "clamp_pressure_bar": 55.0,
}
# Material batches and their hardness relative to nominal (harder: more deflection).
MATERIAL_BATCHES: dict[str, float] = {"SM45C-A23": 1.0, "SM45C-B07": 1.12, "SM45C-C11": 0.94}


@dataclass(frozen=True)
class QualitySpec:
    """Drawing tolerances: a part passes when both are met."""

    max_ra_um: float = 1.6
    max_abs_deviation_mm: float = 0.025


SPEC = QualitySpec()


def _column(params: pd.DataFrame | Mapping[str, object], name: str) -> np.ndarray:
    return np.asarray(params[name], dtype=np.float64)


def hardness_of(batches: pd.Series | np.ndarray | list[str]) -> np.ndarray:
    """Relative hardness per material batch name (unknown batches count as nominal)."""
    return np.array([MATERIAL_BATCHES.get(str(b), 1.0) for b in np.asarray(batches)], dtype=np.float64)


def quality_response(
    params: pd.DataFrame | Mapping[str, object],
    tool_wear_mm: np.ndarray | float = 0.0,
    chatter: np.ndarray | bool = False,
) -> pd.DataFrame:
    """Expected (noise-free) Ra in µm and dimension deviation in mm for each row of ``params``.

    ``params`` has the columns of ``PARAMETER_SPACE`` and optionally ``material_batch``.
    """
    speed = np.atleast_1d(_column(params, "spindle_speed_rpm"))
    fz = np.atleast_1d(_column(params, "feed_per_tooth_mm"))
    doc = np.atleast_1d(_column(params, "depth_of_cut_mm"))
    coolant = np.atleast_1d(_column(params, "coolant_temp_c"))
    clamp = np.atleast_1d(_column(params, "clamp_pressure_bar"))
    if "material_batch" in params:
        hardness = hardness_of(np.atleast_1d(np.asarray(params["material_batch"])))
    else:
        hardness = np.ones_like(speed)
    wear = np.broadcast_to(np.asarray(tool_wear_mm, dtype=np.float64), speed.shape)
    chat = np.broadcast_to(np.asarray(chatter, dtype=bool), speed.shape)

    geometry = 0.05 + 60.0 * fz**2
    rubbing = 0.02 / fz
    built_up_edge = 0.5 * np.exp(-(speed - 6000.0) / 1200.0)
    lobe = 0.6 * np.exp(-(((speed - 8600.0) / 500.0) ** 2)) * (doc / 0.8) ** 1.5
    runout = 0.25 * (np.clip(speed - 10500.0, 0.0, None) / 1500.0) ** 2
    deflection = 0.15 * doc * hardness
    thermal = 0.01 * np.abs(coolant - 21.0)
    clamping = 0.15 * ((clamp - 62.0) / 15.0) ** 2
    ra = geometry + rubbing + built_up_edge + lobe + runout + deflection + thermal + clamping + 0.9 * wear
    ra = np.where(chat, ra * 1.8, ra)

    deviation = (
        0.012 * doc * hardness
        + 0.0015 * (coolant - 20.0)
        + 0.04 * wear
        - 0.0003 * (clamp - 62.0)
        - 0.004  # the programme's offset compensation
    )
    return pd.DataFrame({"surface_roughness_ra_um": ra, "dimension_deviation_mm": deviation})


def measure_parts(
    params: pd.DataFrame,
    tool_wear_mm: np.ndarray,
    chatter: np.ndarray,
    rng: np.random.Generator,
    spec: QualitySpec = SPEC,
) -> pd.DataFrame:
    """Measured quality (response + gauge and process noise) and the pass/fail verdict."""
    expected = quality_response(params, tool_wear_mm, chatter)
    n = len(params)
    clamp = _column(params, "clamp_pressure_bar")
    ra = expected["surface_roughness_ra_um"].to_numpy() * np.exp(rng.normal(0.0, 0.06, n))
    # Loose clamping lets the part move: more scatter, not just more bias.
    dev_sigma = 0.002 + 0.004 * np.clip((50.0 - clamp) / 10.0, 0.0, None)
    dev = expected["dimension_deviation_mm"].to_numpy() + rng.normal(0.0, 1.0, n) * dev_sigma
    ra = np.round(ra, 3)
    dev = np.round(dev, 4)
    ra_bad = ra > spec.max_ra_um
    dev_bad = np.abs(dev) > spec.max_abs_deviation_mm
    reason = np.where(
        ra_bad & dev_bad, "ra+dimension", np.where(ra_bad, "ra", np.where(dev_bad, "dimension", ""))
    )
    return pd.DataFrame(
        {
            "surface_roughness_ra_um": ra,
            "dimension_deviation_mm": dev,
            "passed": ~(ra_bad | dev_bad),
            "fail_reason": reason.astype(object),
        }
    )


def sample_recipes(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Process parameters of ``n`` consecutive parts as production actually runs them.

    Engineers try programme variants around the nominal recipe and material batches change
    every few hundred parts, so the records span enough of the space to learn from.
    """
    lo = {k: v[0] for k, v in PARAMETER_SPACE.items()}
    hi = {k: v[1] for k, v in PARAMETER_SPACE.items()}
    spread = {
        "spindle_speed_rpm": 900.0,
        "feed_per_tooth_mm": 0.015,
        "depth_of_cut_mm": 0.2,
        "coolant_temp_c": 1.0,
        "clamp_pressure_bar": 6.0,
    }
    out: dict[str, np.ndarray] = {}
    for name, nominal in NOMINAL_RECIPE.items():
        out[name] = np.clip(nominal + rng.normal(0.0, spread[name], n), lo[name], hi[name])
    out["spindle_speed_rpm"] = np.round(out["spindle_speed_rpm"], -1)
    out["feed_per_tooth_mm"] = np.round(out["feed_per_tooth_mm"], 3)
    out["depth_of_cut_mm"] = np.round(out["depth_of_cut_mm"], 2)
    out["clamp_pressure_bar"] = np.round(out["clamp_pressure_bar"], 1)
    out["coolant_temp_c"] = np.round(out["coolant_temp_c"], 1)
    names = list(MATERIAL_BATCHES)
    lot_len = rng.integers(150, 400, size=n // 150 + 2)
    lots = np.repeat(rng.integers(0, len(names), size=len(lot_len)), lot_len)[:n]
    frame = pd.DataFrame(out)
    frame["material_batch"] = np.array([names[i] for i in lots], dtype=object)
    return frame


def simulate_quality_records(n_parts: int, seed: int) -> pd.DataFrame:
    """A stand-alone table of ``n_parts`` records (no machine signals behind it).

    Tool wear is drawn over a whole tool life and chatter is rare; both are returned as
    ``true_*`` columns, hidden state that a real factory would not record.
    """
    rng = asset_rng(seed, "quality-records")
    params = sample_recipes(rng, n_parts)
    wear = np.round(rng.uniform(0.02, 0.3, n_parts), 3)
    chatter = rng.random(n_parts) < 0.03
    measured = measure_parts(params, wear, chatter, rng)
    frame = pd.concat([params, measured], axis=1)
    frame.insert(0, "part_id", [f"Q{i:06d}" for i in range(n_parts)])
    frame["true_tool_wear_mm"] = wear
    frame["true_chatter"] = chatter
    return frame

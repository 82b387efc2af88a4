"""A seeded, deterministic factory simulator with labelled ground truth.

``simulate_plant(days, seed)`` is the entry point; ``write_plant`` puts the result in files.
Same seed, same data, bit for bit.
"""

from axhub.sim._common import AssetData, AssetSpec, SignalSpec
from axhub.sim.files import read_asset_csv, write_plant
from axhub.sim.plant import (
    DEFAULT_ASSETS,
    AssetPlan,
    Plant,
    PlantSpec,
    frame_to_readings,
    label_anomalies,
    simulate_plant,
)
from axhub.sim.quality import quality_response, simulate_quality_records
from axhub.sim.turbine import simulate_turbine_fleet, turbine_fleet

__all__ = [
    "DEFAULT_ASSETS",
    "AssetData",
    "AssetPlan",
    "AssetSpec",
    "Plant",
    "PlantSpec",
    "SignalSpec",
    "frame_to_readings",
    "label_anomalies",
    "quality_response",
    "read_asset_csv",
    "simulate_plant",
    "simulate_quality_records",
    "simulate_turbine_fleet",
    "turbine_fleet",
    "write_plant",
]

"""Loaders for the public benchmark datasets (C-MAPSS, CWRU, CNC mill).

Each loader reads the files in their published format from ``Settings().datasets`` (or a
folder given explicitly), checks them, and raises :class:`axhub.core.errors.InputValidationError`
naming the file, row and field of the first bad values. SKAB lives with the anomaly family.
"""

from axhub.ml.datasets.cmapss import CmapssSubset, load_cmapss, read_cmapss_table
from axhub.ml.datasets.cnc import CncExperiment, CncMill, load_cnc_mill, read_cnc_experiment
from axhub.ml.datasets.common import dataset_folder
from axhub.ml.datasets.cwru import CwruRecording, list_cwru_recordings, load_cwru_signal

__all__ = [
    "CmapssSubset",
    "CncExperiment",
    "CncMill",
    "CwruRecording",
    "dataset_folder",
    "list_cwru_recordings",
    "load_cmapss",
    "load_cnc_mill",
    "load_cwru_signal",
    "read_cmapss_table",
    "read_cnc_experiment",
]

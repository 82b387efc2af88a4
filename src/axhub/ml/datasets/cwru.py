"""Case Western Reserve University bearing data, 12 kHz drive end (``.npz`` per recording).

File names are ``<rpm>_<fault>_<diameter mils>_DE12.npz`` (fault IR, B, OR@6) and
``<rpm>_Normal.npz``; each holds (N, 1) arrays ``DE`` (drive end), ``FE``, ``BA`` in g.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axhub.core.errors import InputProblem, InputValidationError
from axhub.ml.datasets.common import dataset_folder

SAMPLE_RATE_HZ = 12_000.0
# Motor load in HP at each nominal speed of the CWRU test rig.
LOAD_BY_RPM = {1797: 0, 1772: 1, 1750: 2, 1730: 3}
FAULT_CLASSES = ("Normal", "IR", "B", "OR")

_NAME = re.compile(r"^(?P<rpm>\d{4})_(?:(?P<normal>Normal)|(?P<fault>IR|B|OR@\d+)_(?P<size>\d+)_DE12)\.npz$")


@dataclass(frozen=True)
class CwruRecording:
    path: Path
    rpm: int
    load_hp: int | None
    fault: str  # one of FAULT_CLASSES
    size_mils: int  # 0 for Normal
    position: str  # outer-race position, e.g. "@6"; "" otherwise

    @property
    def label(self) -> str:
        return self.fault if self.fault == "Normal" else f"{self.fault}_{self.size_mils}"


def parse_cwru_name(path: Path) -> CwruRecording:
    match = _NAME.match(path.name)
    if match is None:
        raise InputValidationError(
            InputProblem(
                str(path),
                None,
                None,
                "file name does not follow <rpm>_<fault>_<mils>_DE12.npz or <rpm>_Normal.npz",
            ),
            hint="rename the recording, or move it out of the dataset folder",
        )
    rpm = int(match["rpm"])
    if match["normal"]:
        return CwruRecording(path, rpm, LOAD_BY_RPM.get(rpm), "Normal", 0, "")
    fault_token = match["fault"]
    fault, _, position = fault_token.partition("@")
    return CwruRecording(
        path, rpm, LOAD_BY_RPM.get(rpm), fault, int(match["size"]), f"@{position}" if position else ""
    )


def list_cwru_recordings(root: Path | None = None, *, folder: Path | None = None) -> list[CwruRecording]:
    """Every recording under ``<datasets>/cwru_12k_de`` (or ``folder``), sorted by path."""
    base = Path(folder) if folder is not None else dataset_folder("cwru_12k_de", root)
    return [parse_cwru_name(p) for p in sorted(base.rglob("*.npz"))]


def load_cwru_signal(recording: CwruRecording | Path, channel: str = "DE") -> np.ndarray:
    """The 1-D float64 signal of one channel; checked for shape and finite values."""
    path = recording.path if isinstance(recording, CwruRecording) else Path(recording)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if channel not in archive.files:
                raise InputValidationError(
                    InputProblem(
                        str(path),
                        None,
                        channel,
                        f"channel missing (has {', '.join(archive.files) or 'none'})",
                    ),
                    hint="CWRU recordings hold DE, FE and BA arrays",
                )
            data = np.asarray(archive[channel])
    except (OSError, ValueError) as exc:
        raise InputValidationError(
            InputProblem(str(path), None, None, f"not a readable .npz archive ({exc})"),
            hint="re-download the recording",
        ) from exc
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 1 or data.size == 0 or not np.issubdtype(data.dtype, np.number):
        raise InputValidationError(
            InputProblem(
                str(path),
                None,
                channel,
                f"expected an (N, 1) numeric array, found shape {data.shape} {data.dtype}",
            ),
        )
    signal = data.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(signal))
    if bad.size:
        raise InputValidationError(
            InputProblem(str(path), int(bad[0]), channel, "value is not finite"),
            hint="drop or repair the recording",
        )
    return signal

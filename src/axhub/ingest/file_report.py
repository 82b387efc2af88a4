"""What a file ingest reports: counts, the signals seen, and the rejects file beside it.

Rejects CSV columns: file, row, field, reason, raw, code, params (the last two let the reason be
shown again in Korean or English; ``params`` is JSON). ``row`` is the line number in a CSV file
(header = line 1), the sheet row in an ``.xlsx`` file, the 1-based row in a Parquet file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from axhub.core.errors import InputProblem, problem

FIRST_REJECTS_KEPT = 20


@dataclass(frozen=True)
class SignalSeen:
    """A signal found in a file, for registering it in the metadata database."""

    asset: str
    signal: str
    unit: str | None = None


@dataclass
class IngestReport:
    """What one file ingest did (or, for a dry run, would do)."""

    file: str
    rows_read: int = 0
    points_written: int = 0
    duplicates: int = 0
    rows_rejected: int = 0
    values_rejected: int = 0
    empty_cells: int = 0
    rejects_path: Path | None = None
    first_rejects: list[InputProblem] = field(default_factory=list)
    signals: list[SignalSeen] = field(default_factory=list)
    elapsed_s: float = 0.0
    # The settings the file was read with, detected or given (encoding, delimiter, decimal...).
    settings: dict[str, Any] = field(default_factory=dict)
    # First and last reading time written (UTC), None when nothing was.
    first_ts: datetime | None = None
    last_ts: datetime | None = None

    @property
    def points_per_s(self) -> float:
        return self.points_written / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def note_times(self, min_us: int, max_us: int) -> None:
        lo = datetime.fromtimestamp(min_us / 1e6, UTC)
        hi = datetime.fromtimestamp(max_us / 1e6, UTC)
        self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
        self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)


class Rejects:
    """Rejects CSV (file, row, field, reason, raw), opened on the first problem only."""

    HEADER = ("file", "row", "field", "reason", "raw", "code", "params")

    def __init__(self, path: Path | None, file_label: str) -> None:
        self.path = path  # None: count and keep the first ones, write nothing (previews)
        self.file_label = file_label
        self.count = 0
        self.first: list[InputProblem] = []
        self._fh: io.TextIOWrapper | None = None
        self._writer: Any = None

    def add(self, row: int | None, field_name: str | None, code: str, raw: object, **params: Any) -> None:
        raw_text = "" if raw is None else str(raw)
        found = problem(self.file_label, row, field_name, code, raw=raw_text, **params)
        if self.path is not None:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
                self._writer = csv.writer(self._fh)
                self._writer.writerow(self.HEADER)
            self._writer.writerow(
                (
                    self.file_label,
                    "" if row is None else row,
                    field_name or "",
                    found.problem,
                    raw_text,
                    code,
                    json.dumps(dict(found.params), ensure_ascii=False, default=str),
                )
            )
        self.count += 1
        if len(self.first) < FIRST_REJECTS_KEPT:
            self.first.append(found)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def written_path(self) -> Path | None:
        return self.path if self.count and self.path is not None else None


class RowNumbers:
    """Maps the index of a parsed row to its line in the file, skipping rows the parser dropped."""

    def __init__(self, first_line: int) -> None:
        self.first_line = first_line
        self.skipped: list[int] = []

    def lines(self, parsed_index: np.ndarray) -> np.ndarray:
        if not self.skipped:
            return parsed_index + self.first_line
        skipped = np.asarray(self.skipped, dtype=np.int64)
        adjusted = skipped - self.first_line - np.arange(len(skipped))
        return parsed_index + self.first_line + np.searchsorted(adjusted, parsed_index, side="right")


def default_rejects_path(directory: Path, source: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{source.name}.{stamp}.rejects.csv"

"""How the columns of a CSV/Parquet export map to assets and signals.

Loaded from YAML/JSON or built from CLI options. Example (YAML)::

    layout: wide                 # wide | long | auto (default: long if signal+value columns exist)
    encoding: cp949              # CSV only; detected when absent (UTF-8, UTF-8 with BOM, CP949/EUC-KR)
    delimiter: ";"               # CSV only; sniffed when absent
    decimal: ","                 # decimal comma; detected from the values when absent
    thousands: "."               # thousands separator ('1.234,5'); detected when absent
    sheet: Daten                 # .xlsx only; default the first sheet
    time_column: Zeitstempel     # default: a column named time/timestamp/ts/datetime/date, else the first
    time_format: "%d.%m.%Y %H:%M:%S"   # default ISO 8601; or epoch_s / epoch_ms / epoch_us
    timezone: Asia/Seoul         # for times without an offset (default: the site's); stored as UTC
    asset: cnc-01                # default asset (wide files; long files without an asset column)
    columns:                     # wide: column -> signal; long: raw tag name -> signal
      SpindleLoad: {signal: spindle_load, unit: "%"}
      T_bearing: {signal: bearing_temp, unit: degC, asset: cnc-02}
      진동: {signal: 진동, unit: mm/s, display_name: "주축 진동"}
      비고: {ignore: true}
    ignore: [Operator, Comment]  # wide: columns that are not signals
    only_mapped: false           # wide: true = ingest only the columns listed above

Times without ``time_format`` may be ISO 8601 or what Korean Excel and PLC loggers write:
``2026-03-02 오후 2:15:00``, ``2026. 3. 2. 오후 2:15``, ``2026/03/02 14:15``, ``... 2:15 PM``.
Timestamps that carry an offset ('...+09:00', '...Z') keep it; the others are read in
``timezone``. Ambiguous local times (the repeated hour when DST ends) take the earlier
instant; non-existent ones (the skipped hour) are shifted to the earlier offset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from axhub.core.errors import AxHubError
from axhub.core.ids import check_path_safe
from axhub.core.timeutil import parse_timezone

TIME_COLUMN_NAMES = ("time", "timestamp", "ts", "datetime", "date_time", "date", "시간", "일시")
EPOCH_FORMATS = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1}


class ColumnMap(BaseModel):
    """Where one column (wide) or one tag (long) goes."""

    model_config = ConfigDict(extra="forbid")

    signal: str | None = None
    asset: str | None = None
    unit: str | None = None
    # A name for people (e.g. Korean) shown beside the stable signal id.
    display_name: str | None = Field(default=None, max_length=200)
    # Not a signal: the column is skipped (wide layout).
    ignore: bool = False

    @field_validator("asset")
    @classmethod
    def _asset_safe(cls, value: str | None) -> str | None:
        return None if value is None else check_path_safe(value, "asset")


class FileMapping(BaseModel):
    """Column → asset/signal mapping and time parsing rules for one file."""

    model_config = ConfigDict(extra="forbid")

    layout: Literal["auto", "wide", "long"] = "auto"
    encoding: str | None = None
    delimiter: str | None = None
    # None: detected from the values (decimal comma, thousands separators).
    decimal: Literal[".", ","] | None = None
    thousands: Literal["", ",", ".", " ", "'"] | None = None
    sheet: str | None = None
    time_column: str | None = None
    time_format: str | None = None
    # None: the caller's default (the site's zone, else the company's; UTC in the bare engine).
    timezone: str | None = None
    asset: str | None = None
    # long layout
    signal_column: str | None = None
    asset_column: str | None = None
    value_column: str | None = None
    quality_column: str | None = None
    unit_column: str | None = None
    # wide layout (and tag renaming for long)
    columns: dict[str, ColumnMap] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)
    only_mapped: bool = False

    @field_validator("asset")
    @classmethod
    def _asset_safe(cls, value: str | None) -> str | None:
        return None if value is None else check_path_safe(value, "asset")

    @field_validator("timezone")
    @classmethod
    def _zone_known(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_timezone(value)
        except AxHubError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("encoding")
    @classmethod
    def _codec_known(cls, value: str | None) -> str | None:
        if not value:
            return None
        import codecs

        try:
            return codecs.lookup(value).name
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}; use e.g. utf-8, cp949, euc-kr") from exc

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = {"\\t": "\t", "tab": "\t"}.get(value, value)
        if len(value) != 1:
            raise ValueError("the delimiter must be one character, e.g. ',' ';' '\\t' '|'")
        return value

    @classmethod
    def load(cls, path: Path) -> FileMapping:
        """Read a mapping from a .yaml/.yml/.json file with a clear error when it is wrong."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise AxHubError(f"cannot read mapping file {path}: {exc}") from exc
        try:
            raw = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise AxHubError(f"mapping file {path} is not valid YAML/JSON: {exc}") from exc
        try:
            return cls.model_validate(raw or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise AxHubError(
                f"mapping file {path} is not valid: {problems}",
                hint="see the example at the top of axhub/ingest/file_mapping.py",
            ) from exc

    def with_overrides(self, **overrides: object) -> FileMapping:
        """A copy with the given fields replaced (CLI options win over the file); None = keep."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return self.model_validate({**self.model_dump(), **given})

    def signal_for(self, name: str) -> tuple[str, str | None, str | None]:
        """(signal, asset override, unit) for a wide column or a long-layout tag."""
        entry = self.columns.get(name)
        if entry is None:
            return name, None, None
        return entry.signal or name, entry.asset, entry.unit


def guess_time_column(header: list[str]) -> str:
    """The column that most likely holds the time (by name), else the first one."""
    lowered = {h.strip().lower(): h for h in header}
    for name in TIME_COLUMN_NAMES:
        if name in lowered:
            return lowered[name]
    return header[0]

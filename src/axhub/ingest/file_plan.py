"""Deciding what each column of a file is, before anything is written.

A problem that makes the whole file unusable (a missing column, no machine, no signal
columns) raises ``InputValidationError(whole_file=True)`` here, so nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from axhub.core.errors import InputValidationError, problem
from axhub.core.reading_rules import signal_name_problem
from axhub.ingest.file_mapping import FileMapping, guess_time_column


@dataclass
class Plan:
    layout: str
    time_column: str
    # wide: column -> (signal, asset, unit)
    value_columns: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    # long
    signal_column: str | None = None
    value_column: str | None = None
    asset_column: str | None = None
    quality_column: str | None = None
    unit_column: str | None = None

    def needed(self) -> list[str]:
        if self.layout == "wide":
            return [self.time_column, *self.value_columns]
        cols = [self.time_column, self.signal_column, self.value_column]
        cols += [self.asset_column, self.quality_column, self.unit_column]
        return [c for c in cols if c]


def _find(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def refuse(label: str, field_name: str | None, code: str, **params: object) -> InputValidationError:
    return InputValidationError(problem(label, None, field_name, code, **params), whole_file=True)


def plan_columns(header: list[str], mapping: FileMapping, label: str) -> Plan:
    """Decide what each column is; raise before any write if the file cannot be used."""

    def missing(column: str, what: str) -> InputValidationError:
        return refuse(label, column, "column_missing", column=column, what=what, header=", ".join(header))

    time_column = mapping.time_column or guess_time_column(header)
    if time_column not in header:
        raise missing(time_column, "time")
    signal_col = mapping.signal_column or _find(header, ("signal", "tag", "name", "sensor"))
    value_col = mapping.value_column or _find(header, ("value", "val", "reading"))
    layout = mapping.layout
    if layout == "auto":
        layout = "long" if signal_col in header and value_col in header else "wide"
    if layout == "long":
        for col, what in ((signal_col, "signal name"), (value_col, "value")):
            if col is None or col not in header:
                raise missing(str(col or what), what)
        asset_col = mapping.asset_column or _find(header, ("asset", "machine", "equipment"))
        if mapping.asset_column and mapping.asset_column not in header:
            raise missing(mapping.asset_column, "machine")
        if asset_col is None and mapping.asset is None:
            raise refuse(label, None, "no_asset")
        quality_col = mapping.quality_column or _find(header, ("quality", "status_code"))
        unit_col = mapping.unit_column or _find(header, ("unit", "units"))
        for col, key in ((mapping.quality_column, "quality_column"), (mapping.unit_column, "unit_column")):
            if col and col not in header:
                raise missing(col, key)
        return Plan(
            "long",
            time_column,
            signal_column=signal_col,
            value_column=value_col,
            asset_column=asset_col,
            quality_column=quality_col,
            unit_column=unit_col,
        )
    for col in mapping.columns:
        if col not in header and not mapping.columns[col].ignore:
            raise missing(col, "mapped signal")
    ignore = {time_column, *mapping.ignore, *(c for c, m in mapping.columns.items() if m.ignore)}
    if mapping.only_mapped:
        chosen = [c for c in mapping.columns if c not in ignore]
    else:
        chosen = [h for h in header if h not in ignore]
    if not chosen:
        raise refuse(label, None, "no_signal_columns")
    value_columns: dict[str, tuple[str, str, str | None]] = {}
    for col in chosen:
        signal, asset, unit = mapping.signal_for(col)
        asset = asset or mapping.asset
        if asset is None:
            raise refuse(label, col, "no_asset")
        bad_name = signal_name_problem(signal)
        if bad_name is not None:
            raise refuse(label, col, "signal_name_bad", reason_en=bad_name.en, reason_ko=bad_name.ko)
        value_columns[col] = (signal, asset, unit)
    return Plan("wide", time_column, value_columns=value_columns)

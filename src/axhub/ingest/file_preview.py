"""A preview of a file before it is stored: the settings it would be read with (detected or
given, all editable), what each column is, the first rows as parsed, and counts over the WHOLE
file (a dry run of the real engine into a ``CountingSink``: no 64 KB guesswork).

The suggested mapping (``FilePreview.mapping``) is what the engine would use; a client edits
it (encoding, delimiter, decimal, time zone, column roles, units, Korean display names) and
previews again, then ingests with it. A whole-file refusal comes back in ``refused`` with the
settings that led to it, so the user can change them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from axhub.core.errors import InputProblem, InputValidationError
from axhub.core.timeutil import parse_timezone
from axhub.ingest.file_mapping import ColumnMap, FileMapping, guess_time_column
from axhub.ingest.file_plan import Plan
from axhub.ingest.file_readers import Source, open_source
from axhub.ingest.file_report import IngestReport, Rejects, RowNumbers
from axhub.ingest.file_values import parse_numbers, parse_times
from axhub.ingest.files import CountingSink, ingest_file, resolve_settings

Role = Literal["time", "signal", "ignore", "signal_name", "value", "asset", "quality", "unit"]
# A column is offered as a signal when at least this share of its filled cells are numbers.
NUMERIC_SHARE = 0.8


@dataclass
class PreviewColumn:
    name: str
    role: Role
    signal: str | None = None
    unit: str | None = None
    display_name: str | None = None
    numeric_share: float = 0.0
    sample: list[str] = field(default_factory=list)


@dataclass
class PreviewRow:
    line: int
    time: str | None  # ISO 8601 in the file's time zone; None when unreadable
    raw_time: str | None
    values: dict[str, float | None]


@dataclass
class FilePreview:
    file: str
    settings: dict[str, Any]
    mapping: FileMapping
    columns: list[PreviewColumn] = field(default_factory=list)
    rows: list[PreviewRow] = field(default_factory=list)
    report: IngestReport | None = None
    points: dict[str, int] = field(default_factory=dict)
    refused: list[InputProblem] = field(default_factory=list)


def _head(source: Source, time_column: str, rows: int) -> tuple[pa.RecordBatch | None, RowNumbers]:
    """The first ``rows`` data rows, every column, as the engine reads them."""
    plan = Plan(
        "wide", time_column, value_columns={c: (c, "-", None) for c in source.header if c != time_column}
    )
    numbers = RowNumbers(source.first_line)
    report = IngestReport(file=source.label)
    for batch in source.batches(plan, numbers, 1 << 20, Rejects(None, source.label), report, lambda _n: None):
        return batch.slice(0, rows), numbers
    return None, numbers


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _columns(
    source: Source, head: pa.RecordBatch | None, mapping: FileMapping, time_column: str
) -> list[PreviewColumn]:
    out: list[PreviewColumn] = []
    for name in source.header:
        sample = [_text(v) for v in head.column(name).to_pylist()[:5]] if head is not None else []
        if name == time_column:
            out.append(PreviewColumn(name, "time", sample=sample))
            continue
        share = 0.0
        if head is not None:
            _v, present, bad = parse_numbers(head.column(name), mapping.decimal, mapping.thousands)
            filled = int(present.sum() + bad.sum())
            share = float(present.sum()) / filled if filled else 0.0
        entry = mapping.columns.get(name, ColumnMap())
        ignored = entry.ignore or name in mapping.ignore
        if name not in mapping.columns and not ignored:
            ignored = share < NUMERIC_SHARE  # text or empty: offered as 'ignore'
        signal, _asset, unit = mapping.signal_for(name)
        out.append(
            PreviewColumn(
                name,
                "ignore" if ignored else "signal",
                signal=None if ignored else signal,
                unit=unit,
                display_name=entry.display_name,
                numeric_share=round(share, 3),
                sample=sample,
            )
        )
    return out


def _rows(
    head: pa.RecordBatch | None, numbers: RowNumbers, mapping: FileMapping, columns: list[PreviewColumn]
) -> list[PreviewRow]:
    if head is None or head.num_rows == 0:
        return []
    time_column = mapping.time_column or ""
    zone = parse_timezone(mapping.timezone or "UTC")
    ts, ok = parse_times(head.column(time_column), mapping.time_format, mapping.timezone or "UTC")
    signals = [c.name for c in columns if c.role == "signal"]
    parsed = {c: parse_numbers(head.column(c), mapping.decimal, mapping.thousands)[:2] for c in signals}
    lines = numbers.lines(np.arange(head.num_rows, dtype=np.int64))
    raw = head.column(time_column).to_pylist()
    out = []
    for i in range(head.num_rows):
        when = datetime.fromtimestamp(int(ts[i]) / 1e6, UTC).astimezone(zone).isoformat() if ok[i] else None
        values = {c: float(v[i]) if p[i] else None for c, (v, p) in parsed.items()}
        out.append(PreviewRow(int(lines[i]), when, None if raw[i] is None else str(raw[i]), values))
    return out


def preview_file(
    path: Path, mapping: FileMapping, *, label: str, rows: int = 20, count: bool = True
) -> FilePreview:
    """Preview ``path`` as it would be ingested with ``mapping`` (see the module docstring).

    ``count=False`` skips the dry run over the whole file (settings and column roles only)."""
    preview = FilePreview(file=label, settings={}, mapping=mapping)
    try:
        source = open_source(path, mapping, label)
    except InputValidationError as exc:
        preview.refused = exc.problems
        preview.settings = mapping.model_dump(
            include={"encoding", "delimiter", "decimal", "thousands", "sheet"}
        )
        return preview
    time_column = mapping.time_column or guess_time_column(source.header)
    plan = Plan("wide", time_column)
    plan.value_columns = {c: (c, "-", None) for c in source.header if c != time_column}
    resolved = resolve_settings(source, mapping.model_copy(update={"time_column": time_column}), plan)
    if mapping.layout == "long":
        resolved = resolved.model_copy(update={"layout": "long"})
    head, numbers = (
        _head(source, time_column, rows) if time_column in source.header else (None, RowNumbers(0))
    )
    columns = _columns(source, head, resolved, time_column)
    if resolved.layout != "long":
        auto_ignored = [c.name for c in columns if c.role == "ignore" and c.name not in resolved.ignore]
        resolved = resolved.model_copy(update={"ignore": [*resolved.ignore, *auto_ignored]})
    preview.mapping = resolved
    preview.columns = columns
    preview.settings = {
        "kind": source.kind,
        **resolved.model_dump(
            include={"encoding", "delimiter", "decimal", "thousands", "sheet", "time_column", "time_format"}
        ),
        "timezone": resolved.timezone or "UTC",
        "layout": resolved.layout,
    }
    try:
        preview.rows = _rows(head, numbers, resolved, columns)
        if not count:
            return preview
        sink = CountingSink()
        # Without a machine yet, the dry run counts for a stand-in one.
        dry = (
            resolved
            if resolved.asset or resolved.layout == "long"
            else resolved.model_copy(update={"asset": "preview"})
        )
        preview.report = ingest_file(path, sink, "preview", dry, label=label, write_rejects=False)
        preview.points = {}
        for (_asset, signal), n in sink.points.items():
            preview.points[signal] = preview.points.get(signal, 0) + n
    except InputValidationError as exc:
        preview.refused = exc.problems
    return preview
